"""One drive loop for the shells that fit in-process or in a pool (the local scan, benchmarks).

The scan server drives :class:`~skyscan.refinement.state.Refinement` over a broker instead, but
it fits the truth with :func:`llh_at_truth` as this loop's callers do, so both report the same
``truth.delta_2llh``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from skyscan.physics.event import Event
from skyscan.physics.recos.base import Reco
from skyscan.physics.recos.evaluate import detector_direction, fit_direction
from skyscan.refinement.fits import FIT_VERTEX_KEYS, VariationResult
from skyscan.refinement.state import Refinement, TaskSpec
from skyscan.wire import Direction, Vertex


@dataclass(frozen=True)
class ScanProgress:
    """Reported after every result: counts of the current round and overall."""

    nside: int
    tasks_done: int
    tasks_sent: int
    best_llh: float


ProgressCallback = Callable[[ScanProgress], None]
# Fits a round of tasks, yielding (result, CPU seconds) in any order.
FitRound = Callable[[list[TaskSpec]], Iterable[tuple[VariationResult, float]]]


@dataclass
class DriveStats:
    n_fits: int = 0
    fit_seconds: float = 0.0


def fit_task(reco: Reco, prepared: Any, spec: TaskSpec) -> tuple[VariationResult, float]:
    """Fit one task; a reco that raises still yields a failed result (NaN llh).

    Returns (result, CPU seconds of this thread): CPU time, not wall time, so the figure stays
    meaningful on a machine shared with other jobs.
    """
    direction = Direction(ra=spec.ra, dec=spec.dec, zenith=spec.zenith, azimuth=spec.azimuth)
    seed = Vertex(**spec.seed) if spec.seed else None
    start = time.thread_time()
    try:
        fit = reco.fit(prepared, direction, spec.variation, seed)
        llh, params, failed, error = fit.llh, dict(fit.params), fit.failed, fit.error
    except Exception as err:  # a reco bug must not take the scan down
        llh, params, failed, error = math.nan, {}, True, f"{type(err).__name__}: {err}"
    elapsed = time.thread_time() - start
    if failed:
        llh = math.nan
    return VariationResult(spec.nside, spec.pixel, spec.variation, llh, params, failed, error), elapsed


def drive(
    refinement: Refinement, fit_round: FitRound, progress: ProgressCallback | None = None
) -> DriveStats:
    """Ask for tasks, fit them, record every result, until the refinement is finished."""
    stats = DriveStats()
    while True:
        tasks = refinement.next_tasks()
        if not tasks:
            if refinement.finished:
                return stats
            raise RuntimeError("refinement stalled: no tasks and not finished")  # cannot happen in-process
        nside = max(t.nside for t in tasks)
        for done, (result, elapsed) in enumerate(fit_round(tasks), start=1):
            refinement.record(result)
            stats.fit_seconds += elapsed
            stats.n_fits += 1
            if progress is not None:
                best = refinement.best()
                progress(ScanProgress(nside, done, len(tasks), math.nan if best is None else best.llh))


def truth_direction(event: Event) -> Direction | None:
    if event.truth is None:
        return None
    return detector_direction(event.truth.zenith, event.truth.azimuth, event.mjd)


def truth_vertex(event: Event) -> Vertex | None:
    """The simulated track's vertex and time when the simulator recorded them (metadata vertex_*)."""
    meta = event.metadata
    values = [meta.get(f"vertex_{k}") for k in ("x", "y", "z", "t")]
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
        return None
    return Vertex(x=float(values[0]), y=float(values[1]), z=float(values[2]), t=float(values[3]))  # type: ignore[arg-type]


def llh_at_truth(reco: Reco, prepared: Any, event: Event, refinement: Refinement) -> float | None:
    """Best fit at the true direction over every variation and several vertex seeds.

    Seeds: the best pixel's vertex, the true vertex when the simulator recorded it, and none (the
    reco's own anchor). Seeding from the best pixel alone overstates ``delta_2llh`` when that vertex
    leads the fit at the truth into a worse local minimum (seen: 74 instead of 50).
    """
    direction = truth_direction(event)
    best = refinement.best()  # global_best of complete, kept as results come (no pass over every pixel)
    if direction is None or best is None:
        return None
    seeds: list[Vertex | None] = [None]
    if (true_vertex := truth_vertex(event)) is not None:
        seeds.append(true_vertex)
    values = [best.fit.get(k) for k in FIT_VERTEX_KEYS]
    if all(v is not None and math.isfinite(v) for v in values):
        seeds.append(Vertex(x=values[0], y=values[1], z=values[2], t=values[3]))  # type: ignore[arg-type]
    fits = [fit_direction(reco, prepared, direction, seed) for seed in seeds]
    llhs = [f.llh for f in fits if not f.failed]
    return min(llhs) if llhs else None
