"""A whole progressive scan on one machine: no broker, no database, a process pool.

The second I/O shell around :class:`skyscan.refinement.state.Refinement` (the scan server is the first):
ask it for tasks, fit them in worker processes that prepared the event once (pool initializer),
feed every result back with ``record``, repeat until ``finished``; then assemble the result
document with :func:`skyscan.skymap.assembly.build_result`.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from skyscan.physics.event import Event, parse_event
from skyscan.physics.recos.registry import get_reco
from skyscan.records.spec import ScanSpec
from skyscan.refinement.drive import ProgressCallback, ScanProgress, drive, fit_task, llh_at_truth
from skyscan.refinement.fits import VariationResult
from skyscan.refinement.state import Refinement, TaskSpec
from skyscan.skymap.assembly import build_result

__all__ = ["ScanProgress", "run_local_scan"]


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


def run_local_scan(
    event: Event,
    spec: ScanSpec,
    processes: int,
    progress: ProgressCallback | None = None,
    stats: dict[str, Any] | None = None,
    scan_id: str | None = None,
    level_set: str | None = None,
) -> dict[str, Any]:
    """Run the scan ``spec`` asks for on ``event`` and return the result document (``skydriver.skymap/1``).

    ``processes`` <= 1 fits in this process (no pool). ``stats``, when given, receives wall time,
    number of fits and CPU milliseconds per fit (``fit_ms_mean``). Raises ScanSpecError for a spec
    that cannot run on this event.
    """
    spec = spec.checked(event)
    reco = spec.build_reco()
    strat = spec.build_strategy(event=event)
    refinement = Refinement(strat, reco.n_variations(), event.mjd)
    prepared = reco.prepare(event)
    started = time.perf_counter()

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
            initargs=(event.to_json_dict(), spec.reco, dict(spec.reco_options)),
        )

    def fit_round(tasks: list[TaskSpec]) -> Iterable[tuple[VariationResult, float]]:
        if pool is None:
            return (fit_task(reco, prepared, t) for t in tasks)
        return _pool_results(pool, tasks, processes)

    try:
        drove = drive(refinement, fit_round, progress)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    truth_llh = llh_at_truth(reco, prepared, event, refinement)
    doc = build_result(
        scan_id=scan_id or f"local-{spec.reco}",
        event=event,
        reco=spec.reco,
        strategy=strat.describe(),
        nsides=list(strat.nsides),
        complete=refinement.complete,
        finished=refinement.finished,
        llh_at_truth=truth_llh,
        level_set=spec.level_set_for(event),
    )
    if stats is not None:
        wall = time.perf_counter() - started
        stats.update(
            wall_s=wall,
            n_fits=drove.n_fits,
            fit_ms_mean=1000.0 * drove.fit_seconds / max(1, drove.n_fits),
            processes=max(1, processes),
            cpu_count=os.cpu_count(),
            progression=strat.describe(),
        )
    return doc
