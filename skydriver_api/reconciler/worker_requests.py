"""Worker requests: launch the workers asked for with ``POST /scans/{id}/workers`` on launched scans.

Within the budgets, whatever the API let through: a scan never gets more than its own limit (a
request over it is refused, with the limit), and the service never runs more than
``SKYDRIVER_MAX_TOTAL_WORKERS`` (a request that does not fit now waits, as it does while a scan of
higher priority waits for workers).
"""

from __future__ import annotations

import asyncio
from typing import Any

from skydriver_api.launchers.base import WorkerCluster
from skydriver_api.reconciler.context import Context, log, merge_handles
from skyscan.records.scan import utcnow


async def run(ctx: Context) -> None:
    requested = await ctx.db.scans.with_worker_requests()
    if not requested:
        return
    active = await ctx.db.scans.active({"workers": 1})
    in_use = sum(d.get("workers", 0) for d in active)
    budget = ctx.settings.max_total_workers
    per_scan = ctx.settings.workers_per_scan
    waiting = await ctx.db.scans.queued({"priority": 1}, due_by=utcnow(), limit=1)
    # a queued scan of higher priority that could start but for workers goes first
    waiting_priority = (
        waiting[0].get("priority", 0) if waiting and len(active) < ctx.settings.max_concurrent_scans else None
    )
    for scan in requested:
        scan_id = scan["_id"]
        handles = dict(scan.get("launch", {}).get("handles") or {})
        workers = int(scan.get("workers", 0))
        for req in scan.get("worker_requests", []):
            n = int(req["workers"])
            done: dict[str, Any] = {**req, "workers": n, "served_at": utcnow()}
            if workers + n > per_scan:
                done.update(
                    state="refused",
                    error=f"the scan would have {workers + n} workers; at most {per_scan} "
                    "(SKYDRIVER_MAX_WORKERS_PER_SCAN, SKYDRIVER_MAX_TOTAL_WORKERS)",
                )
                await ctx.db.scans.settle_worker_request(scan_id, req["request_id"], done, None, 0)
                continue
            if in_use + n > budget or (
                waiting_priority is not None and waiting_priority > scan.get("priority", 0)
            ):
                continue  # stays pending until the budget has room
            try:
                token = await ctx.new_scan_token(scan_id)
                new = await asyncio.to_thread(
                    ctx.launcher.launch_workers,
                    ctx.launch_spec(scan, token),
                    WorkerCluster(req["cluster"], n),
                )
            except Exception as err:
                done.update(state="failed", error=f"{type(err).__name__}: {err}")
                log.warning("adding %d workers to %s failed: %s", n, scan_id, err, extra={"scan_id": scan_id})
                await ctx.db.scans.settle_worker_request(scan_id, req["request_id"], done, None, 0)
                continue
            merge_handles(handles, new)
            done["state"] = "served"
            await ctx.db.scans.settle_worker_request(scan_id, req["request_id"], done, handles, n)
            workers += n
            in_use += n
            log.info("added %d workers to %s", n, scan_id, extra={"scan_id": scan_id})
