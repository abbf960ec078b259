"""Through-going muon events from photon propagation in layered ice (``skyscan.physics.photonsim/1``).

Independent of every fit in this project: photons are emitted by the muon (continuous Cherenkov
light and stochastic cascades, :mod:`.muon`), tracked through SPICE-Mie layered ice with
wavelength-dependent scattering and absorption (:mod:`.propagate`), and detected by DOMs:

* DOM spheres oversized by ``oversize`` (IceCube's propagators do the same for speed); a tracer
  reaching a sphere becomes ``Poisson(w acc(cos) eff / oversize^2)`` photoelectrons, w the photons
  per tracer, acc the angular acceptance of the down-facing PMT, eff the DOM's relative efficiency
  (0 for the dead DOMs of the geometry); the hit time is moved by the mean extra path to the real
  sphere;
* per photoelectron: PMT transit-time spread (Gaussian, 2 ns), late pulses (3.5%, 10-70 ns
  later), charge from an SPE spectrum (Gaussian 1 +- 0.3 with a 10% exponential low-charge part);
* photoelectrons within 8 ns of the DOM's first one of a group form one pulse; a DOM's charge
  saturates softly above ``saturation_pe``;
* dark noise at each DOM's own rate over the readout window, HLC flags from neighbours.

Deterministic for a seed. Speed: see ``docs/physics.md`` (a few seconds per event on one core).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skyscan.physics.event import Event
from skyscan.physics.geometry import Geometry, find_default_geometry, icecube_like_geometry, load_geometry_csv
from skyscan.physics.pandel_model import travel_direction
from skyscan.physics.photonsim.ice import LayeredIce, spice_mie
from skyscan.physics.photonsim.muon import muon_light
from skyscan.physics.photonsim.propagate import DOM_RADIUS_M, DomSpheres, propagate
from skyscan.physics.simulate import DEFAULT_MJD, assemble_event, check_track, track_vertex


@dataclass(frozen=True)
class PhotonSimConfig:
    oversize: float = 10.0
    photons_per_hit: float = 1.0  # target PE per tracer hit (sets the tracer count)
    max_tracers: int = 200_000
    margin_m: float = 120.0  # light emitted / tracked within this distance of the strings
    impact_radius_m: float = 350.0
    tts_ns: float = 2.0
    late_pulse_fraction: float = 0.035
    spe_width: float = 0.3
    pulse_merge_ns: float = 8.0
    saturation_pe: float = 3000.0
    readout_before_ns: float = 4000.0
    readout_after_ns: float = 6000.0
    hlc_window_ns: float = 1000.0
    hlc_om_span: int = 2
    dom_efficiency_scale: float = 1.0  # on every DOM's relative efficiency (a systematic variation)


def angular_acceptance(cos_incidence: np.ndarray) -> np.ndarray:
    """Relative acceptance of a down-facing DOM for a photon moving with direction z-component c.

    1 head-on (c = +1, moving up into the PMT), 0.35 side-on, 0 from behind; a smooth generic shape
    (the hole ice and the PMT's own curve are not modelled separately).
    """
    c = np.asarray(cos_incidence, float)
    return np.clip(0.35 + 0.5 * c + 0.15 * c * c, 0.0, 1.0)


def default_photonsim_geometry() -> Geometry:
    path = find_default_geometry()
    return load_geometry_csv(path) if path is not None else icecube_like_geometry()


class NearArray:
    """Points within ``margin_m`` of the instrumented volume: near a string in xy and in its z range.

    A 10 m grid of the distance to the nearest string makes the test a lookup; light emitted or
    scattered farther out than the margin rarely comes back (it is 3-6 scattering lengths away).
    """

    def __init__(self, positions: np.ndarray, margin_m: float, cell_m: float = 10.0) -> None:
        strings = np.unique(np.round(positions[:, :2], 1), axis=0)
        self.lo = strings.min(axis=0) - margin_m - cell_m
        self.cell = cell_m
        self.margin = margin_m
        hi = strings.max(axis=0) + margin_m + cell_m
        self.shape = (int((hi[0] - self.lo[0]) / cell_m) + 1, int((hi[1] - self.lo[1]) / cell_m) + 1)
        gx = self.lo[0] + cell_m * np.arange(self.shape[0])
        gy = self.lo[1] + cell_m * np.arange(self.shape[1])
        pts = np.stack(np.meshgrid(gx, gy, indexing="ij"), axis=-1).reshape(-1, 2)
        d2 = ((pts[:, None, :] - strings[None, :, :]) ** 2).sum(axis=2).min(axis=1)
        self.inside_xy = (np.sqrt(d2) <= margin_m + cell_m).reshape(self.shape)
        self.z_range = (positions[:, 2].min() - margin_m, positions[:, 2].max() + margin_m)

    def __call__(self, pos: np.ndarray) -> np.ndarray:
        ij = np.floor((pos[:, :2] - self.lo) / self.cell + 0.5).astype(np.int64)
        ok = (ij[:, 0] >= 0) & (ij[:, 0] < self.shape[0]) & (ij[:, 1] >= 0) & (ij[:, 1] < self.shape[1])
        ok &= (pos[:, 2] >= self.z_range[0]) & (pos[:, 2] <= self.z_range[1])
        out = np.zeros(len(pos), bool)
        out[ok] = self.inside_xy[ij[ok, 0], ij[ok, 1]]
        return out

    def track_interval(
        self, vertex: np.ndarray, direction: np.ndarray, step_m: float = 5.0
    ) -> tuple[float, float] | None:
        """The span of track coordinates whose points are near the array (None: the track misses it)."""
        s = np.arange(-3000.0, 3000.0 + step_m, step_m)
        inside = self(vertex[None, :] + s[:, None] * direction[None, :])
        if not inside.any():
            return None
        k = np.flatnonzero(inside)
        return float(s[k[0]]), float(s[k[-1]])


def _pulses(
    dom: np.ndarray, times: np.ndarray, charges: np.ndarray, merge_ns: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Photoelectrons to pulses: groups of merge_ns from each DOM's first photoelectron of a group."""
    order = np.lexsort((times, dom))
    dom, times, charges = dom[order], times[order], charges[order]
    first_of_dom = np.r_[True, dom[1:] != dom[:-1]]
    t_first = np.maximum.accumulate(np.where(first_of_dom, np.arange(len(dom)), 0))
    group = np.floor((times - times[t_first]) / merge_ns).astype(np.int64)
    new = first_of_dom | np.r_[True, group[1:] != group[:-1]]
    starts = np.flatnonzero(new)
    return dom[starts], times[starts], np.add.reduceat(charges, starts)


def _spe_charges(n: int, width: float, rng: np.random.Generator) -> np.ndarray:
    low = rng.uniform(size=n) < 0.1
    q = np.where(low, rng.exponential(0.3, n), rng.normal(1.0, width, n))
    return np.maximum(q, 0.05)


def simulate_track_photons(
    zenith: float,
    azimuth: float,
    energy_gev: float,
    seed: int = 0,
    mjd: float = DEFAULT_MJD,
    geometry: Geometry | None = None,
    config: PhotonSimConfig | None = None,
    run_id: int = 0,
    event_id: int | None = None,
    ice: LayeredIce | None = None,
) -> Event:
    """One through-going muon, photon by photon through layered ice (truth attached)."""
    check_track(zenith, azimuth, energy_gev)
    geometry = geometry or default_photonsim_geometry()
    config = config or PhotonSimConfig()
    if not 0.0 < config.dom_efficiency_scale <= 2.0:
        raise ValueError("dom_efficiency_scale must be within (0, 2]")
    ice = ice or spice_mie()
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0xF07051])

    direction = travel_direction(zenith, azimuth)
    vertex, impact = track_vertex(geometry, direction, config.impact_radius_m, rng)
    t0 = 10_000.0
    near_array = NearArray(geometry.positions, config.margin_m)
    interval = near_array.track_interval(vertex, direction)
    if interval is None:
        raise ValueError("the track misses the detector")
    radius = DOM_RADIUS_M * config.oversize
    light = muon_light(
        vertex,
        direction,
        t0,
        energy_gev,
        interval,
        ice,
        config.max_tracers,
        rng,
        min_photons_per_tracer=config.photons_per_hit * config.oversize**2,
    )
    n_tracers = len(light.photons)
    weight = light.detectable_photons / n_tracers
    spheres = DomSpheres(geometry.positions, radius, max_step_m=15.0)
    t_hi = t0 + config.readout_after_ns
    t_lo = t0 - config.readout_before_ns

    result = propagate(
        light.photons, ice, rng, doms=spheres, t_max_ns=t_hi, max_step_m=15.0, region=near_array
    )
    hits = result.hits
    mean_pe = (
        weight
        / config.oversize**2
        * angular_acceptance(hits.dir_z)
        * geometry.efficiency[hits.dom]
        * config.dom_efficiency_scale
    )
    n_pe = rng.poisson(mean_pe)
    dom = np.repeat(hits.dom, n_pe)
    speed = 0.299792458 / ice.n_group[hits.wl]
    t_hit = hits.time + (2.0 / 3.0) * (radius - DOM_RADIUS_M) / speed
    times = np.repeat(t_hit, n_pe) + rng.normal(0.0, config.tts_ns, dom.size)
    late = rng.uniform(size=dom.size) < config.late_pulse_fraction
    times[late] += rng.uniform(10.0, 70.0, int(late.sum()))
    charges = _spe_charges(dom.size, config.spe_width, rng)

    # Dark noise on every live DOM, uniform over the readout window.
    live = np.flatnonzero(geometry.live)
    n_noise = rng.poisson(geometry.noise_rate_hz[live] * (t_hi - t_lo) * 1e-9)
    noise_dom = np.repeat(live, n_noise)
    dom = np.concatenate([dom, noise_dom])
    times = np.concatenate([times, rng.uniform(t_lo, t_hi, noise_dom.size)])
    charges = np.concatenate([charges, _spe_charges(noise_dom.size, config.spe_width, rng)])
    keep = (times >= t_lo) & (times <= t_hi)
    dom, times, charges = dom[keep], times[keep], charges[keep]
    if dom.size == 0:
        raise ValueError("the simulated event has no pulses")
    p_dom, p_time, p_charge = _pulses(dom, times, charges, config.pulse_merge_ns)
    total = np.bincount(p_dom, weights=p_charge, minlength=len(geometry))
    scale = np.where(
        total > 0,
        config.saturation_pe * -np.expm1(-total / config.saturation_pe) / np.maximum(total, 1e-9),
        1.0,
    )
    p_charge = p_charge * scale[p_dom]
    return assemble_event(
        geometry,
        p_dom,
        p_time,
        p_charge,
        truth={"zenith": float(zenith), "azimuth": float(azimuth), "energy": float(energy_gev)},
        vertex=vertex,
        t0=t0,
        mjd=mjd,
        run_id=run_id,
        event_id=int(seed if event_id is None else event_id),
        hlc_window_ns=config.hlc_window_ns,
        hlc_om_span=config.hlc_om_span,
        metadata={
            "simulator": "skyscan.physics.photonsim/1",
            "seed": int(seed),
            "ice_model": ice.name,
            "dom_efficiency_scale": config.dom_efficiency_scale,
            "impact_m": round(impact, 3),
            "tracers": n_tracers,
            "photons_per_tracer": round(weight, 3),
            "oversize": config.oversize,
            "cascades": light.n_cascades,
            "cascade_energy_gev": round(light.cascade_energy_gev, 3),
            "signal_pe": float(n_pe.sum()),
        },
    )
