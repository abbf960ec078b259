"""The reconciler: a background loop that makes running processes match stored scan state.

Request handlers only write intent to MongoDB (a queued scan, an abort); the reconciler admits
queued scans by priority within the configured budget, launches them, watches their processes,
restarts a scan server that died (it resumes the same scan id) a bounded number of times, and
cleans up aborted or failed scans. One scan's failing launch backs off on its own and never blocks
the others.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

from pymongo.errors import PyMongoError

from skydriver_api.auth import new_token
from skydriver_api.launchers.base import Launcher, LaunchSpec, Resources, WorkerCluster
from skydriver_api.queues import delete_scan_queues
from skydriver_api.store import ACTIVE_STATES, TERMINAL_STATES, Store, hash_token, utcnow
from skyscan.settings import Settings

log = logging.getLogger("skydriver.reconciler")

MAX_LAUNCH_ATTEMPTS = 5
# Workers in these states may still do work (pending: image pull, idle in a condor pool).
LIVE_WORKER_STATES = ("pending", "running", "held", "suspended")
REAP_GRACE_S = 30.0


def backoff_s(attempts: int) -> float:
    return min(2.0 ** attempts, 60.0)


class Reconciler:
    def __init__(self, settings: Settings, store: Store, launcher: Launcher) -> None:
        self.settings = settings
        self.store = store
        self.launcher = launcher
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="reconciler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def run(self) -> None:
        while True:
            try:
                await self.reconcile_once()
            except PyMongoError as err:
                log.warning("database unavailable, retrying: %s", err)
            except Exception:
                log.exception("reconcile pass failed")
            try:
                await asyncio.wait_for(self._wake.wait(), self.settings.reconcile_interval_s)
            except TimeoutError:
                pass
            self._wake.clear()

    async def reconcile_once(self) -> None:
        await self.clean_up()
        await self.supervise()
        await self.admit()

    # -- admission -----------------------------------------------------------------------------
    async def admit(self) -> None:
        active = [d async for d in self.store.scans.find({"state": {"$in": list(ACTIVE_STATES)}}, {"workers": 1})]
        n_active = len(active)
        workers_in_use = sum(d.get("workers", 0) for d in active)
        now = utcnow()
        cursor = self.store.scans.find(
            {"state": "queued", "launch.next_attempt_at": {"$lte": now}},
        ).sort([("priority", -1), ("created_at", 1)]).limit(100)
        async for scan in cursor:
            if n_active >= self.settings.max_concurrent_scans:
                return
            want = scan.get("workers", 1)
            if n_active and workers_in_use + want > self.settings.max_total_workers:
                continue  # does not fit now; a smaller scan may
            if await self.launch(scan):
                n_active += 1
                workers_in_use += want

    def _spec(self, scan: dict[str, Any], token: str) -> LaunchSpec:
        clusters = tuple(
            WorkerCluster(c["name"], min(c["workers"], self.settings.max_workers_per_scan))
            for c in scan.get("clusters", [])
        )
        return LaunchSpec(
            scan_id=scan["_id"], scan_token=token, clusters=clusters,
            resources=Resources(**scan.get("resources", {})), priority=scan.get("priority", 0),
            api_url=self.settings.resolved_api_url,
        )

    async def _new_token(self, scan_id: str) -> str:
        token = new_token()
        await self.store.scans.update_one({"_id": scan_id}, {"$push": {"token_hashes": hash_token(token)}})
        return token

    async def launch(self, scan: dict[str, Any]) -> bool:
        scan_id = scan["_id"]
        claimed = await self.store.transition(scan_id, ("queued",), "launching")
        if claimed is None:
            return False  # someone else moved it (abort)
        token = await self._new_token(scan_id)
        spec = self._spec(claimed, token)
        handles: dict[str, Any] = {}
        try:
            handles.update(await asyncio.to_thread(self.launcher.launch_server, spec))
            for cluster in spec.clusters:
                _merge(handles, await asyncio.to_thread(self.launcher.launch_workers, spec, cluster))
        except Exception as err:
            try:
                await asyncio.to_thread(self.launcher.abort, scan_id, handles)
            except Exception as abort_err:
                log.warning("clean-up after a failed launch of %s failed: %s", scan_id, abort_err)
            await self._launch_failed(claimed, f"{type(err).__name__}: {err}")
            return False
        await self.store.scans.update_one(
            {"_id": scan_id},
            {"$set": {"launch.handles": handles, "launch.last_error": None, "launch.launched_at": utcnow()},
             "$inc": {"launch.attempts": 1}},
        )
        log.info("launched scan %s", scan_id, extra={"scan_id": scan_id})
        return True

    async def _launch_failed(self, scan: dict[str, Any], reason: str) -> None:
        attempts = scan.get("launch", {}).get("attempts", 0) + 1
        log.warning("launch of %s failed (attempt %d): %s", scan["_id"], attempts, reason, extra={"scan_id": scan["_id"]})
        if attempts >= MAX_LAUNCH_ATTEMPTS:
            await self.store.transition(
                scan["_id"], ("launching",), "failed", reason=f"launch failed {attempts} times; last: {reason}",
                extra={"launch.attempts": attempts, "launch.last_error": reason},
            )
            return
        await self.store.transition(
            scan["_id"], ("launching",), "queued", reason=f"launch failed, retrying: {reason}",
            extra={
                "launch.attempts": attempts, "launch.last_error": reason,
                "launch.next_attempt_at": utcnow() + dt.timedelta(seconds=backoff_s(attempts)),
            },
        )

    # -- supervision ---------------------------------------------------------------------------
    async def supervise(self) -> None:
        cursor = self.store.scans.find(
            {"$or": [{"state": {"$in": list(ACTIVE_STATES)}},
                     {"state": {"$in": list(TERMINAL_STATES)}, "launch.reaped": {"$ne": True},
                      "launch.handles": {"$ne": {}}}]},
        )
        async for scan in cursor:
            handles = scan.get("launch", {}).get("handles") or {}
            if not handles:
                continue
            try:
                status = await asyncio.to_thread(self.launcher.status, scan["_id"], handles)
            except Exception as err:  # the infrastructure did not answer: no conclusions this pass
                log.warning("status of %s unavailable: %s", scan["_id"], err, extra={"scan_id": scan["_id"]})
                continue
            await self.store.scans.update_one({"_id": scan["_id"]}, {"$set": {"workforce": status.to_dict()}})
            if scan["state"] in TERMINAL_STATES:
                await self._reap(scan, handles, status.server == "running" or status.workers.get("running", 0) > 0)
                continue
            if status.server in ("succeeded", "failed", "unknown"):
                await self._server_gone(scan, status.server_reason or f"scan server is {status.server}")
            elif status.workers and not any(status.workers.get(s, 0) for s in LIVE_WORKER_STATES):
                await self._workers_gone(scan, "; ".join(status.reasons[-3:]) or "every worker exited")

    async def _reap(self, scan: dict[str, Any], handles: dict[str, Any], alive: bool) -> None:
        ended = scan.get("updated_at") or utcnow()
        if alive and (utcnow() - ended).total_seconds() < REAP_GRACE_S:
            return  # workers notice the end of a scan by themselves; give them time
        if alive:
            await asyncio.to_thread(self.launcher.abort, scan["_id"], handles)
        forget = getattr(self.launcher, "forget", None)
        if forget is not None:
            forget(handles)
        await self.store.scans.update_one({"_id": scan["_id"]}, {"$set": {"launch.reaped": True}})

    async def _server_gone(self, scan: dict[str, Any], reason: str) -> None:
        fresh = await self.store.get_scan(scan["_id"])
        if fresh is None or fresh["state"] in TERMINAL_STATES:
            return  # it finished (or was aborted) just now
        restarts = fresh.get("server_restarts", 0)
        if restarts >= self.settings.server_restarts:
            await self.fail(fresh, f"scan server died {restarts + 1} times; last: {reason}")
            return
        token = await self._new_token(scan["_id"])
        try:
            new = await asyncio.to_thread(self.launcher.launch_server, self._spec(fresh, token))
        except Exception as err:
            await self.fail(fresh, f"could not restart the scan server after '{reason}': {err}")
            return
        handles = {**fresh["launch"]["handles"], **new}
        now = utcnow()
        await self.store.scans.update_one(
            {"_id": scan["_id"]},
            {"$set": {"launch.handles": handles, "updated_at": now}, "$inc": {"server_restarts": 1},
             "$push": {"history": {"state": fresh["state"], "at": now, "reason": f"server restarted after: {reason}"}}},
        )
        log.warning("restarted the server of %s after: %s", scan["_id"], reason, extra={"scan_id": scan["_id"]})

    async def _workers_gone(self, scan: dict[str, Any], reason: str) -> None:
        relaunches = scan.get("worker_relaunches", 0)
        if relaunches >= max(1, self.settings.server_restarts):
            await self.fail(scan, f"workers keep exiting before the scan is done; last: {reason}")
            return
        token = await self._new_token(scan["_id"])
        spec = self._spec(scan, token)
        handles = dict(scan["launch"]["handles"])
        try:
            for cluster in spec.clusters:
                _merge(handles, await asyncio.to_thread(self.launcher.launch_workers, spec, cluster))
        except Exception as err:
            await self.fail(scan, f"could not relaunch workers: {err}")
            return
        await self.store.scans.update_one(
            {"_id": scan["_id"]}, {"$set": {"launch.handles": handles}, "$inc": {"worker_relaunches": 1}},
        )

    async def fail(self, scan: dict[str, Any], reason: str) -> None:
        updated = await self.store.transition(
            scan["_id"], ("queued", *ACTIVE_STATES), "failed", reason=reason, extra={"cleanup_pending": True},
        )
        if updated is not None:
            log.error("scan %s failed: %s", scan["_id"], reason, extra={"scan_id": scan["_id"]})
            self.wake()

    # -- clean-up ------------------------------------------------------------------------------
    async def clean_up(self) -> None:
        """Stop the processes and delete the queues of scans that ended from outside (abort, failure)."""
        cursor = self.store.scans.find({"state": {"$in": list(TERMINAL_STATES)}, "cleanup_pending": True})
        async for scan in cursor:
            handles = scan.get("launch", {}).get("handles") or {}
            await asyncio.to_thread(self.launcher.abort, scan["_id"], handles)
            try:
                await asyncio.to_thread(delete_scan_queues, self.settings, scan["_id"])
            except Exception as err:  # broker down: try again on the next pass
                log.warning("could not delete queues of %s yet: %s", scan["_id"], err, extra={"scan_id": scan["_id"]})
                continue
            await self.store.scans.update_one(
                {"_id": scan["_id"]}, {"$set": {"cleanup_pending": False, "launch.reaped": True}},
            )


def _merge(handles: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, list):
            handles.setdefault(key, []).extend(value)
        else:
            handles[key] = value
