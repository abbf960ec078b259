"""Reaping: stop the processes and delete the queues and broker users of scans that ended from
outside (abort, failure); the broker being down only postpones it to the next pass."""

from __future__ import annotations

import asyncio

from skydriver_api.queues import delete_scan_queues
from skydriver_api.reconciler.context import Context, log


async def run(ctx: Context) -> None:
    for scan in await ctx.db.scans.cleanup_pending():
        handles = scan.get("launch", {}).get("handles") or {}
        await asyncio.to_thread(ctx.launcher.abort, scan["_id"], handles)
        try:
            await asyncio.to_thread(delete_scan_queues, ctx.settings, scan["_id"])
            await asyncio.to_thread(ctx.brokers.delete, scan["_id"])
        except Exception as err:  # broker down: try again on the next pass
            log.warning(
                "could not delete queues or broker users of %s yet: %s",
                scan["_id"],
                err,
                extra={"scan_id": scan["_id"]},
            )
            continue
        await asyncio.to_thread(ctx.launcher.forget, scan["_id"], handles)
        await ctx.db.scans.cleanup_done(scan["_id"])  # and its tokens are gone for good
