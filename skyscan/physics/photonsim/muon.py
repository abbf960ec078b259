"""Light of a TeV muon: continuous Cherenkov emission along the track plus stochastic losses.

Yields, in photons that a DOM would detect head-on (the Cherenkov spectrum 1/lambda^2 times the
DOM's wavelength efficiency, so every tracer is a "detectable" photon and wavelengths are drawn
from that product):

* the bare muon: Frank-Tamm, ``dN/dx dlambda = 2 pi alpha (1 - 1/n(lambda)^2) / lambda^2``, times
  1.17 for the light of delta electrons and other small continuous losses, on the Cherenkov cone
  of each wavelength (cos theta_c = 1/n_phase(lambda));
* stochastic losses (bremsstrahlung, pair production, photonuclear) as point cascades along the
  track: energy fractions v with ``dN/dv ~ 1/v`` (bremsstrahlung-like, b = 1.7e-4 /m) and
  ``~ 1/v^2`` up to v = 0.1 (pair-like, b = 1.6e-4 /m), above 1 GeV; cascade light 4.37 m of
  Cherenkov track per GeV (electromagnetic), emitted with the cascade angular profile
  ``dN/dcos ~ exp(-b |cos - 1/n|^a) |cos - 1/n|^(a-1)`` (a = 0.39, b = 2.61);
* the muon energy falls along the track with the mean loss ``dE/dx = -(a + b E)``, a = 0.268 GeV/m,
  b = 3.3e-4 /m; its value at the point of closest approach to the detector is the event energy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from skyscan.physics.photonsim.ice import WAVELENGTHS_NM, LayeredIce, dom_efficiency
from skyscan.physics.photonsim.propagate import C_VACUUM_M_PER_NS, Photons, rotate

FINE_STRUCTURE = 1.0 / 137.035999
ION_LOSS_GEV_PER_M = 0.268
RADIATIVE_LOSS_PER_M = 3.3e-4
BREMS_LIKE_PER_M = 1.7e-4
PAIR_LIKE_PER_M = 1.6e-4
PAIR_MAX_FRACTION = 0.1
MIN_CASCADE_GEV = 1.0
CONTINUOUS_LIGHT_FACTOR = 1.17
CASCADE_TRACK_M_PER_GEV = 4.37
CASCADE_ANGULAR_A = 0.39
CASCADE_ANGULAR_B = 2.61


def detectable_yield_per_m(ice: LayeredIce) -> tuple[float, np.ndarray]:
    """Detectable photons per metre of a bare charged track (beta = 1), and the wavelength-bin weights."""
    lam_m = WAVELENGTHS_NM * 1e-9
    dlam = 10e-9
    per_bin = 2 * math.pi * FINE_STRUCTURE * (1.0 - 1.0 / ice.n_phase**2) * dlam / lam_m**2
    detectable = per_bin * dom_efficiency(WAVELENGTHS_NM)
    return float(detectable.sum()), detectable / detectable.sum()


def energy_along(energy_gev: float, s: np.ndarray) -> np.ndarray:
    """Mean muon energy at track coordinate s (m; 0 at closest approach, positive downstream)."""
    ratio = ION_LOSS_GEV_PER_M / RADIATIVE_LOSS_PER_M
    return np.maximum((energy_gev + ratio) * np.exp(-RADIATIVE_LOSS_PER_M * s) - ratio, 0.0)


@dataclass(frozen=True)
class Cascades:
    s: np.ndarray  # track coordinate, m
    energy_gev: np.ndarray


def sample_cascades(energy_gev: float, s_range: tuple[float, float], rng: np.random.Generator) -> Cascades:
    """Stochastic losses above 1 GeV along [s0, s1], with the muon energy of each metre."""
    s0, s1 = s_range
    grid = np.arange(s0, s1, 1.0) + 0.5
    e_mu = energy_along(energy_gev, grid)
    positions: list[np.ndarray] = []
    energies: list[np.ndarray] = []
    with np.errstate(divide="ignore", invalid="ignore"):
        v_min = np.where(e_mu > 0, np.minimum(MIN_CASCADE_GEV / e_mu, 1.0), 1.0)
    live = v_min < PAIR_MAX_FRACTION
    # Bremsstrahlung-like: dN/dv = C/v on [v_min, 1], C = b / (1 - v_min).
    c_b = BREMS_LIKE_PER_M / np.maximum(1.0 - v_min, 1e-9)
    n_b = np.where(live, c_b * np.log(1.0 / np.maximum(v_min, 1e-12)), 0.0)
    # Pair-like: dN/dv = C/v^2 on [v_min, v_max], energy C E ln(v_max / v_min) per metre.
    ln_pair = np.log(PAIR_MAX_FRACTION / np.maximum(v_min, 1e-12))
    c_p = np.where(live, PAIR_LIKE_PER_M / np.maximum(ln_pair, 1e-9), 0.0)
    n_p = np.where(live, c_p * (1.0 / np.maximum(v_min, 1e-12) - 1.0 / PAIR_MAX_FRACTION), 0.0)
    for counts_per_m, kind in ((n_b, "b"), (n_p, "p")):
        counts = rng.poisson(counts_per_m)
        rows = np.repeat(np.arange(len(grid)), counts)
        if rows.size == 0:
            continue
        u = rng.uniform(size=rows.size)
        vmin = v_min[rows]
        if kind == "b":
            v = vmin ** (1.0 - u)  # log-uniform on [v_min, 1]
        else:
            v = 1.0 / (1.0 / vmin - u * (1.0 / vmin - 1.0 / PAIR_MAX_FRACTION))
        positions.append(grid[rows] + rng.uniform(-0.5, 0.5, rows.size))
        energies.append(v * e_mu[rows])
    if not positions:
        return Cascades(np.zeros(0), np.zeros(0))
    return Cascades(np.concatenate(positions), np.concatenate(energies))


def cascade_cos_theta(n_phase: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Photon angle to the cascade axis: y = |cos - 1/n|^a ~ Exp(b), the side chosen at random."""
    n = len(n_phase)
    c0 = 1.0 / n_phase
    out = np.empty(n)
    todo = np.arange(n)
    while todo.size:
        y = rng.exponential(1.0 / CASCADE_ANGULAR_B, todo.size)
        x = y ** (1.0 / CASCADE_ANGULAR_A)
        sign = np.where(rng.uniform(size=todo.size) < 0.5, -1.0, 1.0)
        c = c0[todo] + sign * x
        ok = np.abs(c) <= 1.0
        out[todo[ok]] = c[ok]
        todo = todo[~ok]
    return out


@dataclass(frozen=True)
class MuonLight:
    photons: Photons
    detectable_photons: float  # physical photons the tracers stand for
    n_cascades: int
    cascade_energy_gev: float


def muon_light(
    vertex: np.ndarray,
    direction: np.ndarray,
    t0: float,
    energy_gev: float,
    s_range: tuple[float, float],
    ice: LayeredIce,
    n_tracers: int,
    rng: np.random.Generator,
    min_photons_per_tracer: float = 0.0,
) -> MuonLight:
    """Tracer photons of a muon passing ``vertex`` at ``t0`` along ``direction`` over [s0, s1].

    The tracers are shared between the continuous light and the cascades in proportion to their
    detectable photons; with ``min_photons_per_tracer`` the number is lowered so that one tracer
    stands for at least that many photons.
    """
    per_m, wl_weights = detectable_yield_per_m(ice)
    s0, s1 = s_range
    cascades = sample_cascades(energy_gev, s_range, rng)
    continuous = CONTINUOUS_LIGHT_FACTOR * per_m * (s1 - s0)
    cascade_photons = CASCADE_TRACK_M_PER_GEV * per_m * cascades.energy_gev
    total = continuous + float(cascade_photons.sum())
    if min_photons_per_tracer > 0:
        n_tracers = max(1, min(n_tracers, int(total / min_photons_per_tracer)))
    # Tracers per source: multinomial in proportion to the photons.
    shares = np.append(continuous, cascade_photons) / total
    counts = rng.multinomial(n_tracers, shares)
    n_cont = int(counts[0])
    src = np.repeat(np.arange(len(cascade_photons)), counts[1:])

    n = n_tracers
    wl = rng.choice(len(wl_weights), size=n, p=wl_weights)
    cos_c = 1.0 / ice.n_phase[wl]
    s = np.empty(n)
    s[:n_cont] = rng.uniform(s0, s1, n_cont)
    s[n_cont:] = cascades.s[src]
    cos_t = cos_c.copy()
    cos_t[n_cont:] = cascade_cos_theta(ice.n_phase[wl[n_cont:]], rng)
    dirs = rotate(np.broadcast_to(direction, (n, 3)).copy(), cos_t, rng.uniform(0.0, 2 * math.pi, n))
    pos = vertex[None, :] + s[:, None] * direction[None, :]
    time = t0 + s / C_VACUUM_M_PER_NS
    return MuonLight(
        Photons(pos, dirs, time, wl.astype(np.int64)),
        detectable_photons=total,
        n_cascades=len(cascades.s),
        cascade_energy_gev=float(cascades.energy_gev.sum()),
    )
