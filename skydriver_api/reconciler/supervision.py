"""Supervision: watch each launched scan's processes through the launcher.

A scan server that died is replaced (it resumes the same scan id) a bounded number of times; workers
that all exited before the scan is done are relaunched a bounded number of times; ended scans whose
processes are still around are reaped after a grace period.
"""

from __future__ import annotations

import asyncio
from typing import Any

from skydriver_api.reconciler.context import Context, log, merge_handles
from skyscan.records.scan import TERMINAL_STATES, utcnow

# Workers in these states may still do work (pending: image pull, idle in a condor pool).
LIVE_WORKER_STATES = ("pending", "running", "held", "suspended")
REAP_GRACE_S = 30.0


async def run(ctx: Context) -> None:
    for scan in await ctx.db.scans.supervised():
        handles = scan.get("launch", {}).get("handles") or {}
        if not handles:
            continue
        try:
            status = await asyncio.to_thread(ctx.launcher.status, scan["_id"], handles)
        except Exception as err:  # the infrastructure did not answer: no conclusions this pass
            log.warning("status of %s unavailable: %s", scan["_id"], err, extra={"scan_id": scan["_id"]})
            continue
        await ctx.db.scans.set_workforce(scan["_id"], status.to_dict())
        if scan["state"] in TERMINAL_STATES:
            alive = status.server == "running" or status.workers.get("running", 0) > 0
            await reap(ctx, scan, handles, alive)
            continue
        if status.server in ("succeeded", "failed", "unknown"):
            await server_gone(ctx, scan, status.server_reason or f"scan server is {status.server}")
        elif status.workers and not any(status.workers.get(s, 0) for s in LIVE_WORKER_STATES):
            await workers_gone(ctx, scan, "; ".join(status.reasons[-3:]) or "every worker exited")


async def reap(ctx: Context, scan: dict[str, Any], handles: dict[str, Any], alive: bool) -> None:
    ended = scan.get("updated_at") or utcnow()
    if alive and (utcnow() - ended).total_seconds() < REAP_GRACE_S:
        return  # workers notice the end of a scan by themselves; give them time
    if alive:
        await asyncio.to_thread(ctx.launcher.abort, scan["_id"], handles)
    try:
        await asyncio.to_thread(ctx.brokers.delete, scan["_id"])
    except Exception as err:  # the broker's management API is away: the next pass tries again
        log.warning("could not delete the broker users of %s yet: %s", scan["_id"], err)
        return
    await asyncio.to_thread(ctx.launcher.forget, scan["_id"], handles)
    await ctx.db.scans.mark_reaped(scan["_id"])  # and its tokens are gone for good


async def server_gone(ctx: Context, scan: dict[str, Any], reason: str) -> None:
    fresh = await ctx.db.scans.get(scan["_id"])
    if fresh is None or fresh["state"] in TERMINAL_STATES:
        return  # it finished (or was aborted) just now
    restarts = fresh.get("server_restarts", 0)
    if restarts >= ctx.settings.server_restarts:
        await ctx.fail(fresh, f"scan server died {restarts + 1} times; last: {reason}")
        return
    token = await ctx.new_scan_token(scan["_id"])
    try:
        new = await asyncio.to_thread(ctx.launcher.launch_server, ctx.launch_spec(fresh, token))
    except Exception as err:
        await ctx.fail(fresh, f"could not restart the scan server after '{reason}': {err}")
        return
    handles = {**fresh["launch"]["handles"], **new}
    await ctx.db.scans.note(
        scan["_id"],
        f"server restarted after: {reason}",
        set_fields={"launch.handles": handles},
        inc={"server_restarts": 1},
    )
    log.warning("restarted the server of %s after: %s", scan["_id"], reason, extra={"scan_id": scan["_id"]})


async def workers_gone(ctx: Context, scan: dict[str, Any], reason: str) -> None:
    """Relaunch the workers, unless they keep exiting with nothing done in between.

    Relaunches are counted since the scan last made progress: a task that kills every worker
    that takes it (a poison pixel, even with a single worker) is dead-lettered after the broker's
    delivery limit, which takes that many dead workers in a row; the scan then goes on.
    """
    done = int((scan.get("progress") or {}).get("tasks_done") or 0)
    relaunch = scan.get("worker_relaunch") or {}
    idle = relaunch.get("without_progress", 0) if done <= relaunch.get("tasks_done", -1) else 0
    if idle >= ctx.settings.worker_relaunches:
        await ctx.fail(
            scan, f"workers keep exiting with no progress ({idle} relaunches in a row); last: {reason}"
        )
        return
    token = await ctx.new_scan_token(scan["_id"])
    spec = ctx.launch_spec(scan, token)
    handles = dict(scan["launch"]["handles"])
    try:
        for cluster in spec.clusters:
            merge_handles(handles, await asyncio.to_thread(ctx.launcher.launch_workers, spec, cluster))
    except Exception as err:
        await ctx.fail(scan, f"could not relaunch workers: {err}")
        return
    await ctx.db.scans.set_handles(
        scan["_id"],
        handles,
        inc={"worker_relaunches": 1},
        set_fields={"worker_relaunch": {"tasks_done": done, "without_progress": idle + 1}},
    )
