#!/usr/bin/env python3
"""IceCube's HESE SPE fit replayed on our likelihood: is a disagreement the likelihood or the minimiser?

``bench/icecube_likelihood.py`` shows that ``pandel-spe`` with IceCube's settings gives IceCube's
-lnL at IceCube's fitted direction (vertex fitted). This goes one step further, on the HESE events
of the shared data folder, which carry IceCube's full tracks (vertex, time, direction):

1. **At IceCube's own track** (its vertex and time, no fit of ours): our -lnL against the ``logl``
   IceCube stored with HESE_SPEFitSingle and HESE_SPEFit2.
2. **IceCube's minimiser on our likelihood.** lilliput's ``I3SinglePandelFitter`` as the HESE filter
   runs it for HESE_SPEFitSingle: the seed is HESE_MuonImprovedLineFit, moved along its track to
   the point nearest the charge-weighted centre of the pulses, its time shifted so that the
   earliest time residual is zero (``TFirst``); then a simplex over x, y, z, zenith and azimuth with
   the time held (``I3SimpleParametrization``: steps 20 m, 0.1 rad, 0.2 rad), by scipy's Nelder-Mead
   or (``--minimiser minuit``) by the algorithm of MINUIT's SIMPLEX (MNSIMP), re-expressed here in
   Python: single-parameter line searches build the first simplex, reflections take a parabolic
   step, a failed contraction restarts, and it converges when the simplex is less than ``--edm``
   tall (tolerance 0.001 times UP 0.5 by default). It is not MINUIT's code and not exact (see
   docs/physics.md).
3. The same simplex started at IceCube's own track: does it stay?

Where 2 ends where IceCube's fit did, the likelihoods agree along the whole path as well as at the
end; where 3 moves to a lower -lnL, IceCube's fit is not a minimum of that likelihood.

``--icecube-pdf`` swaps our convolved Pandel (exact: a table of the closed form) for the one
IceCube's ``GaussConvolutedPEP`` evaluates: exact only in van Eijndhoven et al.'s region 1
(-5 sigma <= t <= 30 sigma, xi <= 5), their approximations elsewhere (plain Pandel with a jitter
factor late, the Gaussian tail early, the saddle-point series for xi > 5: Astropart. Phys. 28
(2007) 456, arXiv:0704.1706), and a floor at FLT_MIN. The formulas are the paper's; the region
boundaries are those IceCube's ipdf documents (icetray-public, BSD-2). It is slow (special functions
per DOM) and for this comparison only.

    python bench/icecube_minimiser.py                 # the table in docs/physics.md
    python bench/icecube_minimiser.py --icecube-pdf   # the same with IceCube's approximated PDF
    python bench/icecube_minimiser.py --step-scale 0.2   # a first simplex 5x smaller than IceCube's
    python bench/icecube_minimiser.py --minimiser minuit [--icecube-pdf]
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy import special
from scipy.optimize import minimize

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skyscan.physics.geometry import load_geometry_csv, shared_data_dir  # noqa: E402
from skyscan.physics.pandel_model import (  # noqa: E402
    C_VACUUM_M_PER_NS,
    GEO_FACTOR,
    IceModel,
    convolved_log_pdf,
    transverse_basis,
    travel_direction,
)
from skyscan.physics.recos.pandel import (  # noqa: E402
    ICECUBE_SPE_OPTIONS,
    PandelPrepared,
    PandelSPE,
    PandelTrackReco,
)
from skyscan.physics.recos.registry import get_reco  # noqa: E402
from skyscan.readers.realtime import read_realtime_event  # noqa: E402
from skyscan.sky.coordinates import detector_separation  # noqa: E402

HESE_FILES = tuple(f"hese_event_0{k}.json" for k in range(4)) + ("event_HESE_2017-11-28.json",)
SEED, SINGLE, ITERATIVE = "HESE_MuonImprovedLineFit", "HESE_SPEFitSingle", "HESE_SPEFit2"
# I3SimpleParametrization's steps in lilliput's standard segments: x, y, z (m), zenith, azimuth (rad)
STEPS = np.array([20.0, 20.0, 20.0, 0.1, 0.2])
MAX_CALLS = 1000  # lilliput's Minuit: max_iterations=1000
VERTEX_BOUND_M = 2000.0  # I3SimpleParametrization's BoundsX, BoundsY, BoundsZ: +-2000 m
OUT_OF_RANGE = 1e30


LOG_FLT_MIN = math.log(np.finfo(np.float32).tiny)


def icecube_log_pdf(t: np.ndarray, d_eff: np.ndarray, ice: IceModel, sigma: float) -> np.ndarray:
    """ln of the convolved Pandel as IceCube's GaussConvolutedPEP evaluates it (see the module text)."""
    t, d_eff = np.broadcast_arrays(np.asarray(t, float), np.asarray(d_eff, float))
    xi = d_eff / ice.scattering_m
    r = ice.rate_per_ns
    rs = r * sigma
    eta = rs - t / sigma
    out = np.empty_like(t)
    exact = (t >= -5 * sigma) & (t <= 30 * sigma) & (xi <= 5)
    late = ~exact & (xi <= 1) & (t > 30 * sigma)
    early = ~exact & (xi <= 1) & (t < -5 * sigma)
    series = ~(exact | late | early)
    out[exact] = convolved_log_pdf(t[exact], d_eff[exact], ice, sigma)
    tl, xl = t[late], xi[late]
    out[late] = xl * np.log(r * tl) - r * tl + 0.5 * rs * rs - np.log(tl) - special.gammaln(xl)
    te, xe = t[early], xi[early]
    out[early] = (
        xe * np.log(rs / eta[early]) - 0.5 * te**2 / sigma**2 - math.log(sigma * math.sqrt(2 * math.pi))
    )
    ts, xs, es = t[series], xi[series], eta[series]
    x21 = 2 * xs - 1
    z = np.abs(es) / np.sqrt(2 * x21)
    root = np.sqrt(1 + z * z)
    k = 0.5 * (z * root + np.arcsinh(z))
    b = 0.5 * (z / root - 1)
    n1 = (20 * b**3 + 30 * b**2 + 9 * b) / 12
    n2 = (6160 * b**6 + 18480 * b**5 + 19404 * b**4 + 8028 * b**3 + 945 * b**2) / 288
    n3 = (
        b**3
        * (
            27227200 * b**6
            + 122522400 * b**5
            + 220540320 * b**4
            + 200166120 * b**3
            + 94064328 * b**2
            + 20546550 * b
            + 1403325
        )
        / 51840
    )
    gauss = -0.5 * ts**2 / sigma**2
    with np.errstate(invalid="ignore", divide="ignore"):
        before = (  # eta <= 0: the light front has passed (t >= r sigma^2)
            gauss
            + 0.25 * es**2
            - 0.5 * xs
            + 0.25
            + k * x21
            - 0.5 * np.log(root)
            - 0.5 * xs * math.log(2)
            + 0.5 * (xs - 1) * np.log(x21)
            + xs * math.log(rs)
            + np.log(1 - n1 / x21 + n2 / x21**2 - n3 / x21**3)
            - special.gammaln(xs)
            - math.log(sigma)
        )
        after = (  # eta > 0
            xs * math.log(rs)
            - math.log(sigma)
            + gauss
            + 0.25 * es**2
            - 0.5 * math.log(2 * math.pi)
            + 0.5 * xs * (1 + math.log(2) - np.log(x21))
            - 0.25
            - 0.5 * math.log(2)
            - k * x21
            + np.log(1 + n1 / x21 + n2 / x21**2 + n3 / x21**3)
            - 0.5 * np.log(root)
        )
    out[series] = np.where(es <= 0, before, after)
    return np.where(np.isfinite(out) & (out > LOG_FLT_MIN), out, LOG_FLT_MIN)


class IceCubePdfSPE(PandelSPE):
    """``pandel-spe`` with IceCube's approximated PDF instead of our table (slow: diagnostics only)."""

    def _dom_terms(
        self, prep: PandelPrepared, rho: np.ndarray, cos_eta: np.ndarray, t_res: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | float]:
        ice = prep.table.ice
        return icecube_log_pdf(t_res, ice.effective_distance(rho, cos_eta), ice, self.sigma_ns), 0.0


def tweaked_seed(reco: PandelTrackReco, prep: Any, fit: dict[str, float]) -> tuple[np.ndarray, float]:
    """(vertex, time) of a first guess as I3BasicSeedService hands it over with ``TFirst``: the vertex
    moved along the track to the point nearest the charge-weighted centre of gravity of the hits,
    the time such that the earliest (first-hit) time residual is zero."""
    track = travel_direction(fit["zenith"], fit["azimuth"])
    vertex = np.array([fit["x"], fit["y"], fit["z"]])
    cog = (prep.positions * prep.charges[:, None]).sum(axis=0) / prep.charges.sum()
    shift = float((cog - vertex) @ track)
    vertex = vertex + shift * track
    u, v = transverse_basis(track)
    _, tau, du, dv = reco._objective(prep, track, u, v, vertex)
    residual0 = tau - GEO_FACTOR / C_VACUUM_M_PER_NS * np.hypot(du, dv)  # residuals at time 0
    return vertex, float(residual0.min())


# Minuit's SIMPLEX coefficients: reflection, contraction, expansion, the parabolic step's range
_ALPHA, _BETA, _GAMMA, _RHO_MIN, _RHO_MAX = 1.0, 0.5, 2.0, 4.0, 8.0


def minuit_simplex(
    f: Callable[[np.ndarray], float], start: np.ndarray, steps: np.ndarray, edm: float, max_calls: int
) -> tuple[np.ndarray, float, int]:
    """Minimise ``f`` as Minuit's SIMPLEX does (see the module text); (point, value, calls)."""
    n = len(start)
    calls = 0

    def call(point: np.ndarray) -> float:
        nonlocal calls
        calls += 1
        return float(f(point))

    points = np.zeros((n + 1, n))
    values = np.zeros(n + 1)
    step = np.array(steps, float)
    best = np.array(start, float)
    best_value = call(best)
    high = low = n
    height = math.inf

    def replace_highest(value: float, point: np.ndarray) -> None:
        nonlocal best, best_value, high, low, height
        points[high], values[high] = point, value
        if value < best_value:
            best, best_value, low = point.copy(), value, high
        high = int(np.argmax(values))
        height = values[high] - values[low]
        if height > 0:  # the next round's steps: the simplex's extent per parameter
            step[:] = points.max(axis=0) - points.min(axis=0)

    while True:
        # The first simplex: from the best point, a line search along each parameter in turn
        # (x3 after a success, x-0.4 after a failure; six successes or three failures end it).
        origin, start_value = best.copy(), best_value
        points[n], values[n] = origin, start_value  # the round's start is the simplex's last point
        x = origin.copy()
        low = n
        for i in range(n):
            found, value_i, line_best = False, best_value, x[i]
            successes = failures = 0
            while True:
                x[i] = line_best + step[i]
                value = call(x)
                if value < value_i:
                    line_best, value_i, found = x[i], value, True
                    step[i] *= 3.0
                    successes += 1
                    if successes < 6:
                        continue
                    break
                if found:
                    break
                failures += 1
                step[i] *= -0.4
                if failures < 3:
                    continue
                line_best, value_i = x[i], value  # three failures: the last trial is kept
                step[i] *= 3.0
                break
            values[i] = value_i
            if value_i < values[low]:
                low = i
            x[i] = line_best
            points[i] = x
        high = n
        best, best_value = points[low].copy(), values[low]
        replace_highest(start_value, origin)
        height = previous = math.inf
        restart = False
        while not (previous < edm and height < edm) and calls <= max_calls:
            previous = height
            centroid = (points.sum(axis=0) - points[high]) / n
            reflected = (1 + _ALPHA) * centroid - _ALPHA * points[high]
            y_reflected = call(reflected)
            if y_reflected < best_value:
                expanded = _GAMMA * reflected + (1 - _GAMMA) * centroid
                y_expanded = call(expanded)
                y1 = (y_reflected - values[high]) * (1 + _ALPHA + _ALPHA * _GAMMA)
                y2 = (y_expanded - values[high]) * (1 + _ALPHA)
                rho = (
                    0.5 * ((1 + _ALPHA + _ALPHA * _GAMMA) * y1 - (1 + _ALPHA) * y2) / (y1 - y2)
                    if y1 != y2
                    else 0.0
                )
                if rho >= _RHO_MIN:  # the minimum of a parabola through the three points
                    parabola = min(rho, _RHO_MAX) * centroid + (1 - min(rho, _RHO_MAX)) * points[high]
                    y_parabola = call(parabola)
                    if (y_parabola < values[low] and y_parabola < y_expanded) or (
                        y_expanded >= values[low] and y_parabola <= values[low]
                    ):
                        replace_highest(y_parabola, parabola)
                        continue
                if y_expanded < values[low]:
                    replace_highest(y_expanded, expanded)
                else:
                    replace_highest(y_reflected, reflected)
                continue
            if y_reflected < values[high]:
                was = high
                replace_highest(y_reflected, reflected)
                if was != high:
                    continue
            contracted = _BETA * points[high] + (1 - _BETA) * centroid
            y_contracted = call(contracted)
            if y_contracted > values[high]:
                restart = True
                break
            replace_highest(y_contracted, contracted)
        if restart:
            continue
        centroid = (points.sum(axis=0) - points[high]) / n
        y_centroid = call(centroid)
        if y_centroid < best_value:
            replace_highest(y_centroid, centroid)
        if max_calls - calls < 3 * n or height <= 2.0 * edm:
            return best, best_value, calls


def simplex(
    reco: PandelTrackReco,
    prep: Any,
    vertex: np.ndarray,
    time: float,
    zenith: float,
    azimuth: float,
    step_scale: float = 1.0,
    minimiser: str = "nelder-mead",
    edm: float = 5e-4,
) -> tuple[np.ndarray, float, int]:
    """A simplex over (x, y, z, zenith, azimuth) at fixed time, IceCube's steps (times
    ``step_scale``) to start: scipy's Nelder-Mead or Minuit's SIMPLEX."""
    start = np.array([*vertex, zenith, azimuth])
    steps = step_scale * STEPS

    def objective(p: np.ndarray) -> float:
        if not 0.0 <= p[3] <= math.pi:  # a zenith outside its range is refused, as at a bound
            return OUT_OF_RANGE
        return reco.track_neg_llh(prep, float(p[3]), float(p[4]), p[:3], time)

    if minimiser == "minuit":
        # Minuit fits a bounded parameter in an internal angle, x = -B + B (sin u + 1) for the
        # parametrization's vertex bounds of +-B, its step divided by dx/du
        inner = np.arcsin(np.clip(start[:3] / VERTEX_BOUND_M, -1.0, 1.0))
        inner_steps = steps.copy()
        inner_steps[:3] = steps[:3] / (VERTEX_BOUND_M * np.cos(inner))

        def inner_objective(q: np.ndarray) -> float:
            return objective(np.concatenate([VERTEX_BOUND_M * np.sin(q[:3]), q[3:]]))

        found_q, value, calls = minuit_simplex(
            inner_objective, np.concatenate([inner, start[3:]]), inner_steps, edm, MAX_CALLS
        )
        return np.concatenate([VERTEX_BOUND_M * np.sin(found_q[:3]), found_q[3:]]), value, calls
    found = minimize(
        objective,
        start,
        method="Nelder-Mead",
        options={
            "initial_simplex": np.vstack([start, start + np.diag(steps)]),
            "xatol": 1e-4,
            "fatol": 1e-6,
            "maxfev": 5000,
        },
    )
    return found.x, float(found.fun), int(found.nfev)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=shared_data_dir(), help="shared data folder")
    parser.add_argument("--icecube-pdf", action="store_true", help="IceCube's approximated PDF (see above)")
    parser.add_argument(
        "--step-scale", type=float, default=1.0, help="first simplex: IceCube's steps times this (default 1)"
    )
    parser.add_argument("--minimiser", choices=("nelder-mead", "minuit"), default="nelder-mead")
    parser.add_argument(
        "--edm",
        type=float,
        default=5e-4,
        help="minuit: converged when the simplex is less tall (default 5e-4)",
    )
    args = parser.parse_args()
    if not (args.step_scale > 0 and args.edm > 0):
        parser.error("--step-scale and --edm must be positive")
    if args.data is None or not (args.data / "realtime_events").is_dir():
        print("shared data folder not found (pass --data)", file=sys.stderr)
        return 2
    geometry = load_geometry_csv(args.data / "icecube" / "ic86_geometry.csv")
    options = dict(ICECUBE_SPE_OPTIONS[ITERATIVE])
    reco = IceCubePdfSPE(**options) if args.icecube_pdf else get_reco("pandel-spe", options)
    assert isinstance(reco, PandelTrackReco)
    print(
        "| event | -lnL ours at IceCube's track / IceCube's logl | simplex from LineFit: zenith, azimuth "
        "(deg) | -lnL | calls (IceCube's) | angle to SPEFitSingle (deg) | simplex from SPEFitSingle: "
        "moved (deg) | -lnL |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in HESE_FILES:
        event = read_realtime_event(args.data / "realtime_events" / name, geometry)
        fits = {k: f.model_dump() for k, f in event.reference_fits.items()}
        if not {SEED, SINGLE} <= fits.keys():
            continue
        prep = reco.prepare(event)
        single = fits[SINGLE]
        ours_at = reco.track_neg_llh(
            prep,
            single["zenith"],
            single["azimuth"],
            np.array([single["x"], single["y"], single["z"]]),
            single["time"],
        )
        vertex, time = tweaked_seed(reco, prep, fits[SEED])
        how = {"step_scale": args.step_scale, "minimiser": args.minimiser, "edm": args.edm}
        end, llh, n_evals = simplex(
            reco, prep, vertex, time, fits[SEED]["zenith"], fits[SEED]["azimuth"], **how
        )
        stay, stay_llh, _ = simplex(
            reco,
            prep,
            np.array([single["x"], single["y"], single["z"]]),
            single["time"],
            single["zenith"],
            single["azimuth"],
            **how,
        )
        print(
            f"| {Path(name).stem} | {ours_at:.2f} / {single['logl']:.2f} | "
            f"{math.degrees(end[3]):.2f}, {math.degrees(end[4]) % 360:.2f} | {llh:.2f} | "
            f"{n_evals} ({single['nmini']:.0f}) | "
            f"{np.degrees(detector_separation(end[3], end[4], single['zenith'], single['azimuth'])):.2f} | "
            f"{np.degrees(detector_separation(stay[3], stay[4], single['zenith'], single['azimuth'])):.2f} | "
            f"{stay_llh:.2f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
