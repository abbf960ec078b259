"""A whole progressive scan on one machine: no broker, no database, a process pool.

The second I/O shell around :class:`skyscan.refinement.Refinement` (the scan server is the first):
ask it for tasks, fit them in worker processes that prepared the event once (pool initializer),
feed every result back with ``record``, repeat until ``finished``; then assemble the result
document with :func:`skyscan.skymap.build_result`.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from skyscan.coordinates import detector_to_equatorial
from skyscan.event import Event, parse_event
from skyscan.messages import Direction, Vertex
from skyscan.recos import Reco, get_reco
from skyscan.recos.evaluate import fit_direction
from skyscan.refinement import Refinement, TaskSpec, VariationResult, global_best, make_strategy
from skyscan.skymap import build_result


@dataclass(frozen=True)
class ScanProgress:
    """Reported after every result: counts of the current round and overall."""

    nside: int
    tasks_done: int
    tasks_sent: int
    best_llh: float


ProgressCallback = Callable[[ScanProgress], None]

# Per-process state of pool workers (set by the initializer, so the event is prepared once).
_WORKER: dict[str, Any] = {}


def _init_worker(event_doc: dict[str, Any], reco_name: str, reco_options: dict[str, Any]) -> None:
    reco = get_reco(reco_name, reco_options)
    _WORKER["reco"] = reco
    _WORKER["prepared"] = reco.prepare(parse_event(event_doc))


def _fit_in_worker(spec: TaskSpec) -> tuple[VariationResult, float]:
    return fit_task(_WORKER["reco"], _WORKER["prepared"], spec)


def _fit_chunk_in_worker(specs: list[TaskSpec]) -> list[tuple[VariationResult, float]]:
    return [_fit_in_worker(spec) for spec in specs]


def _pool_results(
    pool: ProcessPoolExecutor, tasks: list[TaskSpec], processes: int
) -> Iterator[tuple[VariationResult, float]]:
    """Results in completion order; tasks go out in chunks to keep the IPC overhead small."""
    size = max(1, min(16, len(tasks) // (4 * processes)))
    futures = [pool.submit(_fit_chunk_in_worker, tasks[i : i + size]) for i in range(0, len(tasks), size)]
    try:
        for future in as_completed(futures):
            yield from future.result()
    except BrokenProcessPool as err:
        raise RuntimeError(f"a scan worker process died: {err}") from None


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


def truth_direction(event: Event) -> Direction | None:
    if event.truth is None:
        return None
    ra, dec = detector_to_equatorial(event.truth.zenith, event.truth.azimuth, event.mjd)
    return Direction(ra=float(ra), dec=float(dec), zenith=event.truth.zenith, azimuth=event.truth.azimuth)


def llh_at_truth(reco: Reco, prepared: Any, event: Event, refinement: Refinement) -> float | None:
    """Best fit over all variations at the true direction, seeded with the best pixel's vertex."""
    direction = truth_direction(event)
    best = global_best(refinement.complete)
    if direction is None or best is None:
        return None
    seed = None
    values = [best.fit.get(k) for k in ("X", "Y", "Z", "T")]
    if all(v is not None and math.isfinite(v) for v in values):
        seed = Vertex(x=values[0], y=values[1], z=values[2], t=values[3])  # type: ignore[arg-type]
    result = fit_direction(reco, prepared, direction, seed)
    return None if result.failed else float(result.llh)


def run_local_scan(
    event: Event,
    reco_name: str,
    nsides: str,
    processes: int,
    reco_options: dict[str, Any] | None = None,
    strategy: str = "progression",
    progress: ProgressCallback | None = None,
    stats: dict[str, Any] | None = None,
    scan_id: str | None = None,
) -> dict[str, Any]:
    """Run the progressive scan of ``event`` and return the result document (``skydriver.skymap/1``).

    ``processes`` <= 1 fits in this process (no pool). ``stats``, when given, receives wall time,
    number of fits and CPU milliseconds per fit (``fit_ms_mean``).
    """
    options = dict(reco_options or {})
    reco = get_reco(reco_name, options)
    reco.check_event(event)
    strat = make_strategy(strategy, nsides)
    refinement = Refinement(strat, reco.n_variations(), event.mjd)
    prepared = reco.prepare(event)
    started = time.perf_counter()
    fit_seconds = 0.0
    n_fits = 0

    def consume(results: Iterable[tuple[VariationResult, float]], n_sent: int, nside: int) -> None:
        nonlocal fit_seconds, n_fits
        for done, (result, elapsed) in enumerate(results, start=1):
            refinement.record(result)
            fit_seconds += elapsed
            n_fits += 1
            if progress is not None:
                best = refinement.best()
                progress(ScanProgress(nside, done, n_sent, math.nan if best is None else best.llh))

    pool: ProcessPoolExecutor | None = None
    if processes > 1:
        # fork: workers inherit the imported modules (and the PDF table built by prepare above);
        # the initializer prepares the event once per worker. A worker that dies breaks the pool
        # and the scan fails with an error instead of waiting forever for its tasks.
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        pool = ProcessPoolExecutor(
            processes,
            mp_context=multiprocessing.get_context(method),
            initializer=_init_worker,
            initargs=(event.to_json_dict(), reco_name, options),
        )
    try:
        while True:
            tasks = refinement.next_tasks()
            if not tasks:
                if refinement.finished:
                    break
                raise RuntimeError("refinement stalled: no tasks and not finished")  # cannot happen locally
            nside = max(t.nside for t in tasks)
            if pool is None:
                consume((fit_task(reco, prepared, t) for t in tasks), len(tasks), nside)
            else:
                consume(_pool_results(pool, tasks, processes), len(tasks), nside)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    truth_llh = llh_at_truth(reco, prepared, event, refinement)
    doc = build_result(
        scan_id=scan_id or f"local-{reco_name}",
        event=event,
        reco=reco_name,
        strategy=strategy,
        nsides=list(strat.nsides),
        complete=refinement.complete,
        finished=refinement.finished,
        llh_at_truth=truth_llh,
    )
    if stats is not None:
        wall = time.perf_counter() - started
        stats.update(
            wall_s=wall,
            n_fits=n_fits,
            fit_ms_mean=1000.0 * fit_seconds / max(1, n_fits),
            processes=max(1, processes),
            cpu_count=os.cpu_count(),
            progression=strat.describe(),
        )
    return doc


def parse_reco_options(items: Iterable[str]) -> dict[str, Any]:
    """``k=v`` strings to options: ints, floats, booleans and strings as written."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"reco option {item!r} is not key=value")
        value: Any = raw
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        else:
            for cast in (int, float):
                try:
                    value = cast(raw)
                    break
                except ValueError:
                    continue
        options[key.strip().replace("-", "_")] = value
    return options
