"""Admission: start queued scans in admission order (priority, then owners in turn) within the budget.

A scan that does not fit the worker budget holds back every scan of lower priority (so a realtime
scan is not starved by catalog scans backfilling), but not smaller scans of its own priority.
Scans backing off after a failed launch are not candidates until their time. A failed launch goes
back to ``queued`` with a backoff, and fails the scan after ``SKYDRIVER_MAX_LAUNCH_ATTEMPTS``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from skydriver_api.reconciler.context import Context, log, merge_handles
from skydriver_api.scheduling import QUEUE_FIELDS, admission_order
from skyscan.records.scan import utcnow


async def run(ctx: Context) -> None:
    active = await ctx.db.scans.active({"workers": 1, "priority": 1, "owner": 1})
    n_active = len(active)
    workers_in_use = sum(d.get("workers", 0) for d in active)
    budget = ctx.settings.max_total_workers
    per_scan = ctx.settings.workers_per_scan
    queued = await ctx.db.scans.queued(QUEUE_FIELDS, due_by=utcnow())
    held_below: int | None = None
    for scan in admission_order(queued, active):
        if n_active >= ctx.settings.max_concurrent_scans:
            return
        priority = scan.get("priority", 0)
        if held_below is not None and priority < held_below:
            return
        want = scan.get("workers", 1)
        if want > per_scan:  # refused at submission; a limit lowered since then: it can never start
            await ctx.fail(
                scan,
                f"needs {want} workers, more than a scan may have ({per_scan}: "
                "SKYDRIVER_MAX_WORKERS_PER_SCAN, SKYDRIVER_MAX_TOTAL_WORKERS)",
            )
            continue
        if workers_in_use + want > budget:
            held_below = priority  # does not fit now; a smaller scan of the same priority may
            continue
        if await launch(ctx, scan):
            n_active += 1
            workers_in_use += want


async def launch(ctx: Context, scan: dict[str, Any]) -> bool:
    scan_id = scan["_id"]
    claimed = await ctx.db.scans.transition(scan_id, "launching", from_states=("queued",))
    if claimed is None:
        return False  # someone else moved it (abort)
    token = await ctx.new_scan_token(scan_id)
    spec = ctx.launch_spec(claimed, token)
    handles: dict[str, Any] = {}
    try:
        await asyncio.to_thread(ctx.brokers.ensure, scan_id)  # its broker users, before any process
        handles.update(await asyncio.to_thread(ctx.launcher.launch_server, spec))
        for cluster in spec.clusters:
            merge_handles(handles, await asyncio.to_thread(ctx.launcher.launch_workers, spec, cluster))
    except Exception as err:
        try:
            await asyncio.to_thread(ctx.launcher.abort, scan_id, handles)
            await asyncio.to_thread(ctx.brokers.delete, scan_id)  # made again by the next attempt
        except Exception as abort_err:
            log.warning("clean-up after a failed launch of %s failed: %s", scan_id, abort_err)
        await launch_failed(ctx, claimed, f"{type(err).__name__}: {err}")
        return False
    await ctx.db.scans.record_launch(scan_id, handles)
    log.info("launched scan %s", scan_id, extra={"scan_id": scan_id})
    return True


async def launch_failed(ctx: Context, scan: dict[str, Any], reason: str) -> None:
    attempts = scan.get("launch", {}).get("attempts", 0) + 1
    log.warning(
        "launch of %s failed (attempt %d): %s", scan["_id"], attempts, reason, extra={"scan_id": scan["_id"]}
    )
    bookkeeping = {"launch.attempts": attempts, "launch.last_error": reason}
    if attempts >= ctx.settings.max_launch_attempts:
        await ctx.db.scans.transition(
            scan["_id"],
            "failed",
            from_states=("launching",),
            reason=f"launch failed {attempts} times; last: {reason}",
            set_fields=bookkeeping,
        )
        return
    await ctx.db.scans.transition(
        scan["_id"],
        "queued",
        from_states=("launching",),
        reason=f"launch failed, retrying: {reason}",
        set_fields={
            **bookkeeping,
            "launch.next_attempt_at": utcnow() + dt.timedelta(seconds=ctx.retry_backoff.delay(attempts)),
        },
    )
