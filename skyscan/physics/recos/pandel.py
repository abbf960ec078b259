"""``pandel-spe`` and ``pandel-mpe``: track likelihoods on the Gaussian-convolved Pandel PDF.

Per pixel the direction is fixed and the vertex is fitted: two coordinates transverse to the
track and the time (the position along an infinite track is degenerate with the time).

Likelihood per hit DOM i (first pulse after seeded-RT cleaning, residual t_i, effective distance
d_i; physics in ``skyscan.physics.pandel_model``):

* SPE: ``L_i = p_sigma(t_i | d_i) + eps``
* MPE: ``L_i = N_i p_sigma(t_i | d_i) S_sigma(t_i | d_i)^(N_i - 1) + eps``, N_i the DOM's charge
  rounded to photons (at least 1, capped at ``max_photons``)

and ``llh = -sum_i ln L_i``. ``eps`` is a noise floor (density per ns) so one stray hit cannot
dominate. ln p_sigma and ln S_sigma come from a table built once per process.

Fit: a batched compass search (all 26 neighbours of the current point and the point itself are
evaluated in one vectorised call, the step halves when none improves) after a coarse scan of the
time; deterministic and robust to the kinks of a tabulated PDF. Seeds: the task's vertex seed
(from the coarser pixel) or the event's charge-weighted centroid of first hits; variation k >= 1
shifts the seed by ``variation_radius_m`` in the plane transverse to the track at angle
2 pi (k - 1) / (variations - 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from skyscan.physics.cleaning import first_hits, seeded_rt_cleaning
from skyscan.physics.event import Event
from skyscan.physics.pandel_model import (
    C_VACUUM_M_PER_NS,
    COS_CHERENKOV,
    DEFAULT_ICE,
    GEO_FACTOR,
    ICE_MODELS,
    SIN_CHERENKOV,
    clamp,
    convolved_pandel_table,
    log_add_floor,
    transverse_basis,
    travel_direction,
)
from skyscan.physics.recos.base import FitResult, RecoUnsuitable
from skyscan.physics.recos.pattern_search import AXES, CUBE, pattern_search
from skyscan.wire import Direction, Vertex

# Rough energy proxy: GeV of muon energy per PE of total charge (order of magnitude only; E_tot is
# reported for the skymap's energy column, not used by the fit).
GEV_PER_PE = 30.0
MIN_DOMS = 5  # 3 fitted parameters plus some redundancy
CLEANING_MODES = ("srt", "hlc", "none")
# IceCube's own Pandel SPE fits (lilliput's standard segments: 10 Hz noise, i.e. 1e-8 per ns, 15 ns
# jitter, H2 bulk ice) on the pulses each filter fits: the HESE filter's HESE_SPEFit2 on HLC pulses,
# OnlineL2's SPEFit2 on SRT-cleaned pulses. With these options pandel-spe reproduces IceCube's -lnL
# at IceCube's fitted direction (docs/physics.md, "Our likelihood against IceCube's").
ICECUBE_SPE_OPTIONS: dict[str, dict[str, Any]] = {
    "HESE_SPEFit2": {"pulse_cleaning": "hlc", "noise_floor": 1e-8},
    "SPEFit2": {"pulse_cleaning": "srt", "noise_floor": 1e-8},
}


@dataclass(frozen=True, eq=False)
class PandelPrepared:
    """What a fit needs from the event: one row per hit DOM."""

    positions: np.ndarray  # (n, 3) DOM positions of the first hits
    times: np.ndarray  # first-hit times (ns)
    charges: np.ndarray  # total charge per DOM (PE)
    log_photons: np.ndarray  # ln N_i for MPE
    photons_minus_one: np.ndarray  # N_i - 1 for MPE
    centroid: np.ndarray  # charge-weighted centroid of the first hits
    total_charge: float
    n_pulses_used: int
    table: Any  # the tabulated PDF: a ConvolvedPandelTable for the Pandel recos
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # reco-specific per-DOM arrays


def _dom_ids(cols: dict[str, np.ndarray]) -> np.ndarray:
    """Integer DOM id per pulse: from (string, om) where known, else from the DOM's position."""
    if (cols["string"] >= 0).all() and (cols["om"] >= 0).all():
        keys = np.stack([cols["string"], cols["om"]], axis=1)
    else:
        keys = np.round(np.stack([cols["x"], cols["y"], cols["z"]], axis=1), 2)
    return np.unique(keys, axis=0, return_inverse=True)[1].ravel()


class PandelTrackReco:
    """Shared implementation; subclasses pick SPE (first hit) or MPE (first hit and charge)."""

    name: ClassVar[str] = "pandel"
    description: ClassVar[str] = "Pandel track likelihood"
    test_only: ClassVar[bool] = False
    use_charge: ClassVar[bool] = False
    _START_STEP: ClassVar[float] = 48.0  # m and ns
    _POLISH_STEP: ClassVar[float] = 4.0

    def __init__(
        self,
        sigma_ns: float = 15.0,
        ice_model: str = DEFAULT_ICE,
        noise_floor: float = 1e-7,
        variations: int = 1,
        variation_radius_m: float = 40.0,
        pulse_cleaning: str = "srt",
        rt_radius_m: float = 150.0,
        rt_time_ns: float = 1000.0,
        max_photons: int = 50,
        min_step_m: float = 0.25,
        max_iterations: int = 120,
        max_offset_m: float = 300.0,
        max_time_shift_ns: float = 1000.0,
    ) -> None:
        if not 1.0 <= sigma_ns <= 100.0:
            raise ValueError("sigma_ns must be within [1, 100]")
        if ice_model not in ICE_MODELS:
            raise ValueError(f"ice_model must be one of {', '.join(ICE_MODELS)}")
        if not 0.0 < noise_floor < 1.0:
            raise ValueError("noise_floor must be within (0, 1)")
        if not 1 <= int(variations) <= 64:
            raise ValueError("variations must be within [1, 64]")
        if not 0.0 <= variation_radius_m <= 1000.0:
            raise ValueError("variation_radius_m must be within [0, 1000]")
        if pulse_cleaning not in CLEANING_MODES:
            raise ValueError(f"pulse_cleaning must be one of {', '.join(CLEANING_MODES)}")
        if not (rt_radius_m > 0 and rt_time_ns > 0):
            raise ValueError("rt_radius_m and rt_time_ns must be positive")
        if not 1 <= int(max_photons) <= 10000:
            raise ValueError("max_photons must be within [1, 10000]")
        if not 0.01 <= min_step_m <= 10.0:
            raise ValueError("min_step_m must be within [0.01, 10]")
        if not 5 <= int(max_iterations) <= 1000:
            raise ValueError("max_iterations must be within [5, 1000]")
        self.sigma_ns = float(sigma_ns)
        self.ice_model = ice_model
        self.noise_floor = float(noise_floor)
        self.log_noise_floor = math.log(self.noise_floor)
        self.variations = int(variations)
        self.variation_radius_m = float(variation_radius_m)
        self.pulse_cleaning = pulse_cleaning
        self.rt_radius_m = float(rt_radius_m)
        self.rt_time_ns = float(rt_time_ns)
        self.max_photons = int(max_photons)
        self.min_step_m = float(min_step_m)
        self.max_iterations = int(max_iterations)
        if not 10.0 <= max_offset_m <= 5000.0:
            raise ValueError("max_offset_m must be within [10, 5000]")
        self.max_offset_m = float(max_offset_m)
        if not 50.0 <= max_time_shift_ns <= 20000.0:
            raise ValueError("max_time_shift_ns must be within [50, 20000]")
        self.max_time_shift_ns = float(max_time_shift_ns)

    # -- Reco protocol ---------------------------------------------------------------------
    def n_variations(self) -> int:
        return self.variations

    def _clean(self, event: Event) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        cols = event.pulse_arrays
        dom_ids = _dom_ids(cols)
        if self.pulse_cleaning == "none":
            return cols, dom_ids, np.ones(len(dom_ids), bool)
        hlc_values = [p.hlc for p in event.pulses]
        hlc = None if all(h is None for h in hlc_values) else np.array([bool(h) for h in hlc_values])
        positions = np.stack([cols["x"], cols["y"], cols["z"]], axis=1)
        if self.pulse_cleaning == "hlc" and hlc is not None and hlc.any():
            return cols, dom_ids, hlc
        kept = seeded_rt_cleaning(positions, cols["time"], dom_ids, hlc, self.rt_radius_m, self.rt_time_ns)
        return cols, dom_ids, kept

    def check_event(self, event: Event) -> None:
        _, dom_ids, kept = self._clean(event)
        n_doms = len(np.unique(dom_ids[kept]))
        if n_doms < MIN_DOMS:
            raise RecoUnsuitable(
                f"{self.name} needs at least {MIN_DOMS} hit DOMs after pulse cleaning "
                f"({self.pulse_cleaning}); "
                f"the event has {n_doms}"
            )

    def level_features(self, event: Event) -> tuple[int, float]:
        """What the calibrated error-region levels depend on: hit DOMs after cleaning, total charge."""
        cols, dom_ids, kept = self._clean(event)
        return int(len(np.unique(dom_ids[kept]))), float(cols["charge"].sum())

    def prepare(self, event: Event) -> PandelPrepared:
        cols, dom_ids, kept = self._clean(event)
        if len(np.unique(dom_ids[kept])) < MIN_DOMS:
            self.check_event(event)
        idx = np.flatnonzero(kept)
        first, times, charges = first_hits(dom_ids[idx], cols["time"][idx], cols["charge"][idx])
        rows = idx[first]
        positions = np.stack([cols["x"][rows], cols["y"][rows], cols["z"][rows]], axis=1)
        photons = np.clip(np.round(charges), 1, self.max_photons)
        centroid = np.average(positions, axis=0, weights=charges)
        return PandelPrepared(
            positions=np.ascontiguousarray(positions),
            times=times.astype(float),
            charges=charges,
            log_photons=np.log(photons),
            photons_minus_one=photons - 1.0,
            centroid=centroid,
            total_charge=float(cols["charge"].sum()),
            n_pulses_used=int(len(idx)),
            table=self._pdf_table(),
        )

    def _pdf_table(self) -> Any:
        """The tabulated PDF the likelihood reads (built once per process)."""
        return convolved_pandel_table(self.ice_model, self.sigma_ns)

    def fit(
        self, prepared: PandelPrepared, direction: Direction, variation: int, seed: Vertex | None
    ) -> FitResult:
        try:
            if not 0 <= variation < self.variations:
                raise ValueError(f"variation {variation} outside [0, {self.variations})")
            return self._fit(prepared, direction, variation, seed)
        except Exception as err:  # NaN-safe contract: a bad fit is a failed result, never an exception
            return FitResult(math.nan, status="failed", error=f"{type(err).__name__}: {err}")

    def track_neg_llh(
        self, prepared: PandelPrepared, zenith: float, azimuth: float, position: np.ndarray, time: float
    ) -> float:
        """-lnL of one whole track, no vertex fit: the muon passes ``position`` (detector frame, m)
        at ``time`` (ns) coming from (zenith, azimuth). For replaying another fitter's minimiser on
        this likelihood (``bench/icecube_minimiser.py``)."""
        track = travel_direction(zenith, azimuth)
        u, v = transverse_basis(track)
        neg_llh = self._objective(prepared, track, u, v, np.asarray(position, dtype=float))[0]
        return float(neg_llh(np.array([[0.0, 0.0, time]]))[0])

    # -- the likelihood per DOM --------------------------------------------------------------
    def _dom_terms(
        self, prep: PandelPrepared, rho: np.ndarray, cos_eta: np.ndarray, t_res: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | float]:
        """(ln L_i before the noise floor, per-point extra -lnL) for (points, DOMs) arrays."""
        table = prep.table
        ice = table.ice
        d_eff = ice.p1 * rho + ice.p0_m + cos_eta * (ice.pc1_m + ice.pc2_m * cos_eta)
        d_eff = d_eff * self._distance_scale(prep, rho, cos_eta)
        log_p, log_s = table.lookup(t_res, d_eff, want_sf=self.use_charge)
        if self.use_charge:
            assert log_s is not None
            log_p = log_p + prep.log_photons + prep.photons_minus_one * log_s
        return log_p, 0.0

    def _distance_scale(
        self, prep: PandelPrepared, rho: np.ndarray, cos_eta: np.ndarray
    ) -> np.ndarray | float:
        """Factor on d_eff (1 in bulk ice; the layered Pandel divides by the local effective scattering)."""
        return 1.0

    def _objective(
        self, prep: PandelPrepared, track: np.ndarray, u: np.ndarray, v: np.ndarray, anchor: np.ndarray
    ) -> tuple[Callable[[np.ndarray], np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
        """-lnL over (points, 3) arrays of (a, b, t0): the track through ``anchor + a u + b v`` at time
        t0, direction ``track``; also the hits' times less the longitudinal travel (tau) and their
        transverse coordinates (du, dv) about the anchor."""
        rel = prep.positions - anchor
        along = rel @ track
        du = rel @ u
        dv = rel @ v
        tau = prep.times - along / C_VACUUM_M_PER_NS  # arrival time minus the longitudinal travel
        if not (np.isfinite(tau).all() and np.isfinite(du).all() and np.isfinite(dv).all()):
            raise ValueError("non-finite hit times or positions")
        uz, vz = float(u[2]), float(v[2])
        pz_term = COS_CHERENKOV * float(track[2])
        log_eps = self.log_noise_floor
        geo_over_c = GEO_FACTOR / C_VACUUM_M_PER_NS
        dom_terms = self._dom_terms

        def neg_llh(points: np.ndarray) -> np.ndarray:
            a = points[:, 0:1]
            b = points[:, 1:2]
            t0 = points[:, 2:3]
            pu = du[None, :] - a
            pv = dv[None, :] - b
            rho = np.sqrt(pu * pu + pv * pv)
            cos_eta = clamp(SIN_CHERENKOV * (pu * uz + pv * vz) / np.maximum(rho, 1e-6) + pz_term, -1.0, 1.0)
            t_res = tau[None, :] - t0 - geo_over_c * rho
            log_l, extra = dom_terms(prep, rho, cos_eta, t_res)
            return extra - log_add_floor(log_l, log_eps).sum(axis=1)

        return neg_llh, tau, du, dv

    # -- the fit ---------------------------------------------------------------------------
    def _fit(
        self, prep: PandelPrepared, direction: Direction, variation: int, seed: Vertex | None
    ) -> FitResult:
        zenith, azimuth = float(direction.zenith), float(direction.azimuth)
        if not (math.isfinite(zenith) and math.isfinite(azimuth)):
            raise ValueError("direction is not finite")
        track = travel_direction(zenith, azimuth)
        u, v = transverse_basis(track)

        # Anchor: the seed vertex (or the centroid) moved along the track to its closest approach
        # to the centroid, so the fitted time is the time near the light, whatever the direction.
        anchor = prep.centroid.copy()
        seed_time = math.nan
        if seed is not None and all(math.isfinite(c) for c in (seed.x, seed.y, seed.z)):
            seed_pos = np.array([seed.x, seed.y, seed.z])
            shift = float((prep.centroid - seed_pos) @ track)
            anchor = seed_pos + shift * track
            if math.isfinite(seed.t):
                seed_time = seed.t + shift / C_VACUUM_M_PER_NS
        if variation > 0:
            angle = 2.0 * math.pi * (variation - 1) / max(1, self.variations - 1)
            anchor = anchor + self.variation_radius_m * (math.cos(angle) * u + math.sin(angle) * v)

        neg_llh, tau, du, dv = self._objective(prep, track, u, v, anchor)
        geo_over_c = GEO_FACTOR / C_VACUUM_M_PER_NS

        # Coarse time scan at the anchor: the light front sits near the early residuals.
        rho0 = np.hypot(du, dv)
        t_ref = float(np.quantile(tau - geo_over_c * rho0, 0.25))
        t_grid = t_ref + np.arange(-600.0, 301.0, 15.0)
        if math.isfinite(seed_time):
            t_grid = np.append(t_grid, seed_time)
        start = np.zeros((len(t_grid), 3))
        start[:, 2] = t_grid
        values = neg_llh(start)
        k = int(np.argmin(values))
        centre, best = start[k].copy(), float(values[k])
        n_evals = len(t_grid)

        # Pattern search in two passes, each evaluating a whole stencil per vectorised call and
        # halving the step when no point improves: the 6 axis neighbours from a coarse step (cheap,
        # gets close), then all 26 cube neighbours from a few metres (diagonal moves matter in the
        # correlated valley of transverse position and time, so the minimum is polished).
        # Bounds: at a wrong direction the likelihood keeps improving as the track moves away from
        # the light and earlier (every hit becomes late, scattered light; unhit DOMs cost nothing),
        # so the vertex stays within max_offset_m of the anchor and the time within
        # max_time_shift_ns of the light front.
        limit2 = self.max_offset_m**2
        max_shift = self.max_time_shift_ns

        def feasible(points: np.ndarray) -> np.ndarray:
            return (points[:, 0] ** 2 + points[:, 1] ** 2 <= limit2) & (
                np.abs(points[:, 2] - t_ref) <= max_shift
            )

        search = pattern_search(
            neg_llh,
            centre,
            best,
            ((AXES, self._START_STEP), (CUBE, self._POLISH_STEP)),
            self.min_step_m,
            self.max_iterations,
            feasible,
        )
        centre, best = search.point, search.value
        n_evals += search.evaluations
        if not math.isfinite(best):
            return FitResult(math.nan, status="failed", error="likelihood is not finite")

        a, b, t0 = (float(x) for x in centre)
        vertex = anchor + a * u + b * v
        shift = float((prep.centroid - vertex) @ track)
        vertex = vertex + shift * track
        t_vertex = t0 + shift / C_VACUUM_M_PER_NS
        n_doms = len(prep.times)
        return FitResult(
            llh=best,
            params={
                "X": float(vertex[0]),
                "Y": float(vertex[1]),
                "Z": float(vertex[2]),
                "T": float(t_vertex),
                "E_tot": GEV_PER_PE * prep.total_charge,
                "E_in": math.nan,
                "rlogl": best / max(1, n_doms - 5),
                "n_doms": float(n_doms),
                "n_evals": float(n_evals),
                "converged": float(search.converged),
            },
        )


class PandelSPE(PandelTrackReco):
    name: ClassVar[str] = "pandel-spe"
    description: ClassVar[str] = (
        "Convolved-Pandel SPE1st track likelihood (first hit per DOM); vertex fitted per pixel."
    )
    use_charge: ClassVar[bool] = False


class PandelMPE(PandelTrackReco):
    name: ClassVar[str] = "pandel-mpe"
    description: ClassVar[str] = (
        "Convolved-Pandel MPE track likelihood (first hit and total charge per DOM); vertex fitted per pixel."
    )
    use_charge: ClassVar[bool] = True
