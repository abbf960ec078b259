"""The reconciler: a background loop that makes running processes match stored scan state.

Request handlers only write intent to MongoDB (a queued scan, an abort); the reconciler admits
queued scans by priority within the configured budget, launches them, watches their processes,
restarts a scan server that died (it resumes the same scan id) a bounded number of times, and
cleans up aborted or failed scans. One scan's failing launch backs off on its own and never blocks
the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
from typing import Any

from pymongo.errors import PyMongoError

from skydriver_api.auth import new_token
from skydriver_api.config import OpsSettings
from skydriver_api.launchers.base import Launcher, LaunchSpec, Resources, WorkerCluster
from skydriver_api.queues import delete_scan_queues
from skydriver_api.scheduling import QUEUE_FIELDS, admission_order
from skydriver_api.store import ACTIVE_STATES, TERMINAL_STATES, Store, hash_token, utcnow
from skyinfra.settings import Settings

log = logging.getLogger("skydriver.reconciler")

MAX_LAUNCH_ATTEMPTS = 5
# Workers in these states may still do work (pending: image pull, idle in a condor pool).
LIVE_WORKER_STATES = ("pending", "running", "held", "suspended")
REAP_GRACE_S = 30.0


def backoff_s(attempts: int) -> float:
    return min(2.0**attempts, 60.0)


class Reconciler:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        launcher: Launcher,
        ops: OpsSettings | None = None,
    ) -> None:
        self.settings = settings
        self.ops = ops or OpsSettings()
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
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run(self) -> None:
        while True:
            try:
                await self.reconcile_once()
            except PyMongoError as err:
                log.warning("database unavailable, retrying: %s", err)
            except Exception:
                log.exception("reconcile pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.reconcile_interval_s)
            self._wake.clear()

    async def reconcile_once(self) -> None:
        await self.clean_up()
        await self.supervise()
        await self.admit()
        await self.serve_worker_requests()
        await self.send_webhooks()

    # -- admission -----------------------------------------------------------------------------
    async def admit(self) -> None:
        """Start queued scans in admission order (priority, then owners in turn) within the budget.

        A scan that does not fit the worker budget holds back every scan of lower priority (so a
        realtime scan is not starved by catalog scans backfilling), but not smaller scans of its own
        priority. Scans backing off after a failed launch are not candidates until their time.
        """
        active = [
            d
            async for d in self.store.scans.find(
                {"state": {"$in": list(ACTIVE_STATES)}}, {"workers": 1, "priority": 1, "owner": 1}
            )
        ]
        n_active = len(active)
        workers_in_use = sum(d.get("workers", 0) for d in active)
        now = utcnow()
        cursor = (
            self.store.scans.find(
                {"state": "queued", "launch.next_attempt_at": {"$lte": now}},
                QUEUE_FIELDS,
            )
            .sort([("priority", -1), ("created_at", 1)])
            .limit(1000)
        )
        queued = [d async for d in cursor]
        held_below: int | None = None
        for scan in admission_order(queued, active):
            if n_active >= self.settings.max_concurrent_scans:
                return
            priority = scan.get("priority", 0)
            if held_below is not None and priority < held_below:
                return
            want = scan.get("workers", 1)
            if n_active and workers_in_use + want > self.settings.max_total_workers:
                held_below = priority  # does not fit now; a smaller scan of the same priority may
                continue
            if await self.launch(scan):
                n_active += 1
                workers_in_use += want

    def _spec(self, scan: dict[str, Any], token: str) -> LaunchSpec:
        clusters = tuple(
            WorkerCluster(c["name"], min(c["workers"], self.settings.max_workers_per_scan))
            for c in scan.get("clusters", [])
        )
        return LaunchSpec(
            scan_id=scan["_id"],
            scan_token=token,
            clusters=clusters,
            resources=Resources(**scan.get("resources", {})),
            priority=scan.get("priority", 0),
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
            {
                "$set": {
                    "launch.handles": handles,
                    "launch.last_error": None,
                    "launch.launched_at": utcnow(),
                },
                "$inc": {"launch.attempts": 1},
            },
        )
        log.info("launched scan %s", scan_id, extra={"scan_id": scan_id})
        return True

    async def _launch_failed(self, scan: dict[str, Any], reason: str) -> None:
        attempts = scan.get("launch", {}).get("attempts", 0) + 1
        log.warning(
            "launch of %s failed (attempt %d): %s",
            scan["_id"],
            attempts,
            reason,
            extra={"scan_id": scan["_id"]},
        )
        if attempts >= self.ops.max_launch_attempts:
            await self.store.transition(
                scan["_id"],
                ("launching",),
                "failed",
                reason=f"launch failed {attempts} times; last: {reason}",
                extra={"launch.attempts": attempts, "launch.last_error": reason},
            )
            return
        await self.store.transition(
            scan["_id"],
            ("launching",),
            "queued",
            reason=f"launch failed, retrying: {reason}",
            extra={
                "launch.attempts": attempts,
                "launch.last_error": reason,
                "launch.next_attempt_at": utcnow() + dt.timedelta(seconds=backoff_s(attempts)),
            },
        )

    # -- supervision ---------------------------------------------------------------------------
    async def supervise(self) -> None:
        cursor = self.store.scans.find(
            {
                "$or": [
                    {"state": {"$in": list(ACTIVE_STATES)}},
                    {
                        "state": {"$in": list(TERMINAL_STATES)},
                        "launch.reaped": {"$ne": True},
                        "launch.handles": {"$ne": {}},
                    },
                ]
            },
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
                await self._reap(
                    scan, handles, status.server == "running" or status.workers.get("running", 0) > 0
                )
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
            {
                "$set": {"launch.handles": handles, "updated_at": now},
                "$inc": {"server_restarts": 1},
                "$push": {
                    "history": {
                        "state": fresh["state"],
                        "at": now,
                        "reason": f"server restarted after: {reason}",
                    }
                },
            },
        )
        log.warning(
            "restarted the server of %s after: %s", scan["_id"], reason, extra={"scan_id": scan["_id"]}
        )

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
            {"_id": scan["_id"]},
            {"$set": {"launch.handles": handles}, "$inc": {"worker_relaunches": 1}},
        )

    async def fail(self, scan: dict[str, Any], reason: str) -> None:
        updated = await self.store.transition(
            scan["_id"],
            ("queued", *ACTIVE_STATES),
            "failed",
            reason=reason,
            extra={"cleanup_pending": True},
        )
        if updated is not None:
            log.error("scan %s failed: %s", scan["_id"], reason, extra={"scan_id": scan["_id"]})
            self.wake()

    # -- more workers on request -----------------------------------------------------------------
    async def serve_worker_requests(self) -> None:
        """Launch the workers asked for with ``POST /scans/{id}/workers`` on scans that are launched."""
        cursor = self.store.scans.find(
            {
                "state": {"$in": list(ACTIVE_STATES)},
                "worker_requests.0": {"$exists": True},
                "launch.launched_at": {"$exists": True},
            }
        )
        async for scan in cursor:
            scan_id = scan["_id"]
            handles = dict(scan.get("launch", {}).get("handles") or {})
            for req in scan.get("worker_requests", []):
                n = min(int(req["workers"]), self.settings.max_workers_per_scan)
                done = {**req, "workers": n, "served_at": utcnow()}
                update: dict[str, Any] = {"$pull": {"worker_requests": {"request_id": req["request_id"]}}}
                try:
                    token = await self._new_token(scan_id)
                    new = await asyncio.to_thread(
                        self.launcher.launch_workers,
                        self._spec(scan, token),
                        WorkerCluster(req["cluster"], n),
                    )
                except Exception as err:
                    done.update(state="failed", error=f"{type(err).__name__}: {err}")
                    log.warning(
                        "adding %d workers to %s failed: %s", n, scan_id, err, extra={"scan_id": scan_id}
                    )
                else:
                    _merge(handles, new)
                    done["state"] = "served"
                    update["$set"] = {"launch.handles": handles}
                    update["$inc"] = {"workers": n}
                    log.info("added %d workers to %s", n, scan_id, extra={"scan_id": scan_id})
                update["$push"] = {"worker_requests_done": done}
                await self.store.scans.update_one({"_id": scan_id}, update)

    # -- alert webhooks ----------------------------------------------------------------------------
    async def send_webhooks(self) -> None:
        """POST the GCN-style summary of finished alert scans to the configured webhook (retried)."""
        now = utcnow()
        cursor = self.store.scans.find(
            {
                "webhook_pending": True,
                "state": {"$in": list(TERMINAL_STATES)},
                "webhook.next_attempt_at": {"$lte": now},
            }
        )
        async for scan in cursor:
            await self._send_webhook(scan)

    async def _send_webhook(self, scan: dict[str, Any]) -> None:
        import httpx

        scan_id = scan["_id"]
        url = self.ops.alert_webhook_url
        hook = scan.get("webhook") or {}
        if not url:
            await self._webhook_done(scan_id, "skipped: no SKYDRIVER_ALERT_WEBHOOK_URL configured")
            return
        if scan["state"] != "completed":
            payload: dict[str, Any] = {
                "scan_id": scan_id,
                "state": scan["state"],
                "reason": scan.get("state_reason"),
                "alert": scan.get("alert"),
                "gcn": None,
            }
        else:
            result = await self.store.skymap_for(scan_id)
            event_doc = await self.store.get_event(scan_id)
            if result is None or event_doc is None:
                await self._webhook_done(scan_id, "skipped: no stored result")
                return
            try:
                notice = {"alert": scan.get("alert"), "healpix_base_url": self.ops.gcn_healpix_base_url}
                gcn = await asyncio.to_thread(_render_gcn, {**result, **notice}, event_doc)
            except Exception as err:
                await self._webhook_done(scan_id, f"skipped: cannot render the GCN summary: {err}")
                return
            payload = {"scan_id": scan_id, "state": "completed", "alert": scan.get("alert"), "gcn": gcn}
        attempts = hook.get("attempts", 0) + 1
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                resp = await client.post(
                    url,
                    content=json.dumps(payload, default=str),
                    headers={"Content-Type": "application/json"},
                )
            resp.raise_for_status()
        except Exception as err:
            reason = f"{type(err).__name__}: {err}"
            if attempts >= self.ops.alert_webhook_attempts:
                await self._webhook_done(scan_id, f"failed after {attempts} attempts: {reason}", attempts)
                return
            await self.store.scans.update_one(
                {"_id": scan_id},
                {
                    "$set": {
                        "webhook.attempts": attempts,
                        "webhook.last_error": reason,
                        "webhook.next_attempt_at": utcnow() + dt.timedelta(seconds=backoff_s(attempts)),
                    }
                },
            )
            return
        await self._webhook_done(scan_id, f"delivered (HTTP {resp.status_code})", attempts)

    async def _webhook_done(self, scan_id: str, outcome: str, attempts: int = 0) -> None:
        await self.store.scans.update_one(
            {"_id": scan_id},
            {
                "$set": {
                    "webhook_pending": False,
                    "webhook.outcome": outcome,
                    "webhook.attempts": attempts,
                    "webhook.done_at": utcnow(),
                }
            },
        )

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
                log.warning(
                    "could not delete queues of %s yet: %s", scan["_id"], err, extra={"scan_id": scan["_id"]}
                )
                continue
            await self.store.scans.update_one(
                {"_id": scan["_id"]},
                {"$set": {"cleanup_pending": False, "launch.reaped": True}},
            )


def _render_gcn(result: dict[str, Any], event_doc: dict[str, Any]) -> Any:
    from skyscan.physics.event import parse_event
    from skyscan.skymap import exports

    return json.loads(exports.render(result, parse_event(event_doc), "gcn").content)


def _merge(handles: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, list):
            handles.setdefault(key, []).extend(value)
        else:
            handles[key] = value
