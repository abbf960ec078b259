"""Worker requests: launch the workers asked for with ``POST /scans/{id}/workers`` on launched scans."""

from __future__ import annotations

import asyncio
from typing import Any

from skydriver_api.launchers.base import WorkerCluster
from skydriver_api.reconciler.context import Context, log, merge_handles
from skyscan.records.scan import utcnow


async def run(ctx: Context) -> None:
    for scan in await ctx.db.scans.with_worker_requests():
        scan_id = scan["_id"]
        handles = dict(scan.get("launch", {}).get("handles") or {})
        for req in scan.get("worker_requests", []):
            n = min(int(req["workers"]), ctx.settings.max_workers_per_scan)
            done: dict[str, Any] = {**req, "workers": n, "served_at": utcnow()}
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
            log.info("added %d workers to %s", n, scan_id, extra={"scan_id": scan_id})
