"""Simulated through-going muon tracks in the open event format (``skydriver.event/1``).

A toy, but with the ingredients the reco must cope with: for each live DOM the expected number
of detected photons falls with the closest-approach distance (absorption and cylindrical spread)
and rises with the muon energy; the count is Poisson; each photon arrives with a delay drawn from
the Pandel PDF (scattering) plus Gaussian PMT jitter; photons close in time merge into one pulse
with a smeared charge; every DOM adds dark-noise hits uniformly over the readout window; pulses
with a neighbour (+-2 DOMs on the string) hit within 1 us are flagged HLC. The truth (IceCube
convention: the direction the muon comes from, radians; energy in GeV) is stored with the event.
Deterministic for a seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from skyscan.physics.event import EVENT_SCHEMA, Event, parse_event
from skyscan.physics.geometry import Geometry, icecube_like_geometry
from skyscan.physics.pandel_model import (
    C_VACUUM_M_PER_NS,
    DEFAULT_ICE,
    get_ice_model,
    track_geometry,
    transverse_basis,
    travel_direction,
)

DEFAULT_MJD = 60676.0  # 2025-01-01


@dataclass(frozen=True)
class SimulationConfig:
    """Knobs of the toy detector response (defaults give a few hundred pulses at 10-100 TeV)."""

    ice_model: str = DEFAULT_ICE
    jitter_ns: float = 3.0  # PMT transit-time spread
    # Detected photons per DOM: yield * (E/1 TeV)^energy_index * exp(-rho/attenuation) / (1 + rho/r0).
    photons_at_1tev: float = 7.0
    energy_index: float = 0.6
    attenuation_m: float = 40.0
    spread_m: float = 10.0
    impact_radius_m: float = 350.0  # tracks pass this close to the detector centre (uniform in area)
    readout_before_ns: float = 4000.0
    readout_after_ns: float = 6000.0
    pulse_merge_ns: float = 8.0
    charge_resolution: float = 0.3
    hlc_window_ns: float = 1000.0
    hlc_om_span: int = 2
    max_photons_per_dom: int = 20000


@dataclass(frozen=True)
class TrackTruth:
    zenith: float
    azimuth: float
    energy_gev: float
    vertex: tuple[float, float, float]  # closest approach to the detector centre
    time_ns: float


def expected_photons(
    rho: np.ndarray, energy_gev: float, efficiency: np.ndarray, config: SimulationConfig
) -> np.ndarray:
    scale = config.photons_at_1tev * (energy_gev / 1000.0) ** config.energy_index
    return efficiency * scale * np.exp(-rho / config.attenuation_m) / (1.0 + rho / config.spread_m)


def _merge_photons(times: np.ndarray, merge_ns: float) -> tuple[np.ndarray, np.ndarray]:
    """Group sorted photon times: a new pulse starts when a photon is merge_ns after the pulse's first one."""
    starts = [0]
    first = times[0]
    for k in range(1, len(times)):
        if times[k] - first > merge_ns:
            starts.append(k)
            first = times[k]
    start_idx = np.asarray(starts)
    counts = np.diff(np.append(start_idx, len(times)))
    return times[start_idx], counts


def hlc_flags(
    strings: np.ndarray, oms: np.ndarray, times: np.ndarray, window_ns: float, om_span: int
) -> np.ndarray:
    """True for a pulse with another DOM within +-om_span on its string hit within +-window_ns."""
    flags = np.zeros(len(times), bool)
    order = np.lexsort((times, oms, strings))
    for s in np.unique(strings):
        on_string = order[strings[order] == s]
        for i in on_string:
            others = on_string[(oms[on_string] != oms[i]) & (np.abs(oms[on_string] - oms[i]) <= om_span)]
            if others.size and np.any(np.abs(times[others] - times[i]) <= window_ns):
                flags[i] = True
    return flags


def check_track(zenith: float, azimuth: float, energy_gev: float) -> None:
    """A track's direction (radians) and energy, as every simulator accepts them."""
    if not (0.0 <= zenith <= math.pi and 0.0 <= azimuth <= 2 * math.pi):
        raise ValueError("zenith must be within [0, pi] and azimuth within [0, 2 pi] (radians)")
    if not energy_gev > 0:
        raise ValueError("energy must be positive (GeV)")


def simulate_track(
    zenith: float,
    azimuth: float,
    energy_gev: float,
    seed: int = 0,
    mjd: float = DEFAULT_MJD,
    geometry: Geometry | None = None,
    config: SimulationConfig | None = None,
    run_id: int = 0,
    event_id: int | None = None,
) -> Event:
    """One through-going muon as an open-format event (truth attached)."""
    check_track(zenith, azimuth, energy_gev)
    geometry = geometry or icecube_like_geometry()
    config = config or SimulationConfig()
    ice = get_ice_model(config.ice_model)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x5D17])

    direction = travel_direction(zenith, azimuth)
    vertex, radius = track_vertex(geometry, direction, config.impact_radius_m, rng)
    t0 = 10_000.0

    idx_live = np.flatnonzero(geometry.live)
    geo = track_geometry(geometry.positions[idx_live], vertex, t0, direction)
    mean_photons = expected_photons(geo.rho, energy_gev, geometry.efficiency[idx_live], config)
    n_photons = np.minimum(rng.poisson(mean_photons), config.max_photons_per_dom)
    d_eff = ice.effective_distance(geo.rho, geo.cos_eta)
    xi = d_eff / ice.scattering_m
    t_lo = t0 - config.readout_before_ns
    t_hi = t0 + config.readout_after_ns

    dom_rows: list[int] = []
    pulse_times: list[np.ndarray] = []
    pulse_counts: list[np.ndarray] = []
    for k in np.flatnonzero(n_photons):
        delays = rng.gamma(xi[k], 1.0 / ice.rate_per_ns, size=n_photons[k])
        times = np.sort(geo.t_geo[k] + delays + rng.normal(0.0, config.jitter_ns, size=n_photons[k]))
        times = times[(times >= t_lo) & (times <= t_hi)]
        if times.size == 0:
            continue
        starts, counts = _merge_photons(times, config.pulse_merge_ns)
        dom_rows.append(int(idx_live[k]))
        pulse_times.append(starts)
        pulse_counts.append(counts)

    # Dark noise on every live DOM, uniform over the readout window.
    n_noise = rng.poisson(geometry.noise_rate_hz[idx_live] * (t_hi - t_lo) * 1e-9)
    for k in np.flatnonzero(n_noise):
        dom_rows.append(int(idx_live[k]))
        pulse_times.append(np.sort(rng.uniform(t_lo, t_hi, size=n_noise[k])))
        pulse_counts.append(np.ones(n_noise[k], int))

    if not dom_rows:
        raise ValueError("the simulated event has no pulses (energy too low?)")
    rows = np.concatenate([np.full(len(t), r) for r, t in zip(dom_rows, pulse_times, strict=True)])
    times = np.concatenate(pulse_times)
    counts = np.concatenate(pulse_counts)
    charges = np.maximum(counts * (1.0 + config.charge_resolution * rng.standard_normal(len(counts))), 0.25)
    return assemble_event(
        geometry,
        rows,
        times,
        charges,
        truth={"zenith": float(zenith), "azimuth": float(azimuth), "energy": float(energy_gev)},
        vertex=vertex,
        t0=t0,
        mjd=mjd,
        run_id=run_id,
        event_id=int(seed if event_id is None else event_id),
        hlc_window_ns=config.hlc_window_ns,
        hlc_om_span=config.hlc_om_span,
        metadata={
            "simulator": "skyscan.physics.simulate/1",
            "seed": int(seed),
            "ice_model": config.ice_model,
            "jitter_ns": config.jitter_ns,
            "impact_m": round(radius, 3),
        },
    )


def track_vertex(
    geometry: Geometry, direction: np.ndarray, impact_radius_m: float, rng: np.random.Generator
) -> tuple[np.ndarray, float]:
    """A point of the track, uniform in the disc of ``impact_radius_m`` about the array centre across it."""
    u, v = transverse_basis(direction)
    centre = geometry.positions[geometry.live].mean(axis=0)
    radius = impact_radius_m * math.sqrt(rng.uniform())
    angle = rng.uniform(0.0, 2 * math.pi)
    return centre + radius * (math.cos(angle) * u + math.sin(angle) * v), radius


def assemble_event(
    geometry: Geometry,
    rows: np.ndarray,
    times: np.ndarray,
    charges: np.ndarray,
    truth: dict[str, float],
    vertex: np.ndarray,
    t0: float,
    mjd: float,
    run_id: int,
    event_id: int,
    hlc_window_ns: float,
    hlc_om_span: int,
    metadata: dict[str, str | int | float | bool | None],
) -> Event:
    """Pulses (DOM row, time, charge) to an open-format event: sorted per DOM, HLC flags, truth, vertex."""
    order = np.lexsort((times, rows))
    rows, times, charges = rows[order], times[order], charges[order]
    strings, oms = geometry.string[rows], geometry.om[rows]
    hlc = hlc_flags(strings, oms, times, hlc_window_ns, hlc_om_span)
    pulses = [
        {
            "x": round(float(geometry.x[r]), 3),
            "y": round(float(geometry.y[r]), 3),
            "z": round(float(geometry.z[r]), 3),
            "time": round(float(t), 2),
            "charge": round(float(q), 3),
            "string": int(s),
            "om": int(o),
            "hlc": bool(h),
        }
        for r, t, q, s, o, h in zip(rows, times, charges, strings, oms, hlc, strict=True)
    ]
    doc = {
        "schema": EVENT_SCHEMA,
        "run_id": int(run_id),
        "event_id": int(event_id) & 0x7FFFFFFF,
        "mjd": float(mjd),
        "event_type": "simulated-track",
        "is_real_event": False,
        "pulses": pulses,
        "truth": truth,
        "metadata": {
            **metadata,
            "geometry": geometry.name,
            "vertex_x": round(float(vertex[0]), 3),
            "vertex_y": round(float(vertex[1]), 3),
            "vertex_z": round(float(vertex[2]), 3),
            "vertex_t": t0,
            "c_m_per_ns": C_VACUUM_M_PER_NS,
        },
    }
    return parse_event(doc)


def simulate_batch(
    n: int,
    energy_min_gev: float = 1e3,
    energy_max_gev: float = 1e5,
    seed: int = 0,
    mjd_range: tuple[float, float] = (DEFAULT_MJD, DEFAULT_MJD + 365.0),
    geometry: Geometry | None = None,
    config: Any = None,
    track_simulator: Callable[..., Event] | None = None,
) -> list[Event]:
    """``n`` tracks, isotropic (uniform in cos zenith and azimuth), energies log-uniform.

    ``track_simulator`` (default :func:`simulate_track`) takes the arguments of
    :func:`simulate_track`, e.g. the photon simulator ``simulate_track_photons`` with its config.
    """
    simulate = track_simulator or simulate_track
    if n < 1:
        raise ValueError("n must be positive")
    if not 0 < energy_min_gev <= energy_max_gev:
        raise ValueError("need 0 < emin <= emax")
    geometry = geometry or icecube_like_geometry()
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0xBA7C])
    cos_zen = rng.uniform(-1.0, 1.0, n)
    azimuth = rng.uniform(0.0, 2 * math.pi, n)
    log_e = rng.uniform(math.log10(energy_min_gev), math.log10(energy_max_gev), n)
    mjds = rng.uniform(*mjd_range, n)
    event_seeds = rng.integers(0, 2**31 - 1, n)
    return [
        simulate(
            float(np.arccos(cos_zen[i])),
            float(azimuth[i]),
            float(10 ** log_e[i]),
            seed=int(event_seeds[i]),
            mjd=float(mjds[i]),
            geometry=geometry,
            config=config,
            run_id=int(seed) & 0x7FFFFFFF,
            event_id=i,
        )
        for i in range(n)
    ]
