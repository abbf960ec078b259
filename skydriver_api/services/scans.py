"""Scans: validation through the scan specification, creation, access, abort, rescan, more workers."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from skydriver_api.auth import Principal, check_scan_access
from skydriver_api.models import INT64, AddWorkersRequest, RescanRequest, ScanRequest, ScanStatus
from skydriver_api.services.errors import Conflict, Invalid, NotFound, TooLarge
from skydriver_api.services.policy import SubmissionPolicy
from skydriver_api.settings import ApiSettings
from skyinfra.store import Database
from skyscan.physics.event import Event, parse_event
from skyscan.records.scan import LIVE_STATES, TERMINAL_STATES, ScanRecord, WorkerShare, utcnow
from skyscan.records.spec import ScanSpec, ScanSpecError, TaskLimits

MAX_DOCUMENT_BYTES = 16 * 1024 * 1024  # MongoDB's BSON document limit


def spec_of(req: Any) -> ScanSpec:
    """The scan specification a request (scan, catalog, rescan) asks for."""
    return ScanSpec(
        reco=req.reco,
        reco_options=req.reco_options,
        strategy=req.strategy,
        strategy_options=req.strategy_options,
        nsides=req.nsides,
        level_set=getattr(req, "level_set", ScanSpec.model_fields["level_set"].default),
    )


def checked_spec(req: Any, event: Event, max_nside: int, limits: TaskLimits | None = None) -> ScanSpec:
    """Check the event's ids and the whole specification up front: a bad request changes nothing."""
    for name in ("run_id", "event_id"):
        if getattr(event, name) > INT64:
            raise Invalid(f"event.{name}: at most {INT64} (a 64-bit integer)")
    try:
        return spec_of(req).checked(event, max_nside, limits)
    except ScanSpecError as err:
        raise Invalid(str(err)) from None


def worker_shares(req: ScanRequest) -> list[WorkerShare]:
    return [WorkerShare(**c.model_dump()) for c in req.clusters] or [WorkerShare(workers=req.workers)]


def new_scan_document(
    req: ScanRequest,
    owner: str,
    spec: ScanSpec,
    resources: dict[str, Any] | None = None,
    scan_id: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The queued scan a checked request becomes; ``resources`` are those of its worker profile."""
    return ScanRecord.new(
        spec,
        run_id=req.event.run_id,
        event_id=req.event.event_id,
        owner=owner,
        priority=req.priority,
        clusters=worker_shares(req),
        profile=req.profile,
        resources=resources or {},
        classifiers=req.classifiers,
        scan_id=scan_id,
        **extra,
    ).to_doc()


def ensure_storable(*docs: dict[str, Any], what: str = "the request") -> None:
    """Refuse what MongoDB cannot store (integers beyond 64 bits, '$' keys, documents over its size
    limit) before writing anything."""
    import bson
    from bson.errors import InvalidDocument

    for doc in docs:
        try:
            size = len(bson.encode(doc))
        except (OverflowError, InvalidDocument) as err:
            raise Invalid(f"{what} holds a value that cannot be stored: {err}") from None
        if size > MAX_DOCUMENT_BYTES:
            raise TooLarge(
                f"{what}: its stored document would be {size:,} bytes, more than the database's "
                f"limit of {MAX_DOCUMENT_BYTES:,} bytes per document"
            )


def scan_links(scan_id: str) -> dict[str, str]:
    base = f"/api/v1/scans/{scan_id}"
    return {"self": base, "result": f"{base}/result", "event": f"{base}/event", "events": f"{base}/events"}


def scan_status(doc: dict[str, Any]) -> ScanStatus:
    return ScanStatus(
        scan_id=doc["_id"],
        state=doc["state"],
        state_reason=doc.get("state_reason"),
        owner=doc["owner"],
        reco=doc["reco"],
        nsides=doc["nsides"],
        strategy=doc["strategy"],
        priority=doc["priority"],
        run_id=doc["run_id"],
        event_id=doc["event_id"],
        classifiers=doc.get("classifiers", {}),
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
        progress=doc.get("progress", {}),
        best_fit=doc.get("best_fit"),
        failed_pixels=doc.get("failed_pixels", 0),
        server_restarts=doc.get("server_restarts", 0),
        workforce=doc.get("workforce"),
        counters=doc.get("counters", {}),
        history=[{k: v for k, v in h.items() if v is not None} for h in doc.get("history", [])],
        rescan_of=doc.get("rescan_of"),
        catalog_id=doc.get("catalog_id"),
        alert=doc.get("alert"),
        workers=doc.get("workers"),
        worker_requests=doc.get("worker_requests", []) + doc.get("worker_requests_done", []),
        launch=_launch_summary(doc.get("launch")),
    )


def _launch_summary(launch: dict[str, Any] | None) -> dict[str, Any] | None:
    """Launch bookkeeping without the handles (process ids, Job names are operators' business)."""
    if not launch:
        return None
    return {
        k: launch.get(k) for k in ("attempts", "last_error", "next_attempt_at", "launched_at") if k in launch
    }


class ScanService:
    def __init__(
        self, db: Database, settings: ApiSettings, policy: SubmissionPolicy, wake: Callable[[], None]
    ) -> None:
        self.db = db
        self.settings = settings
        self.policy = policy
        self.wake = wake

    async def load(self, scan_id: str, principal: Principal, *, manage: bool = False) -> dict[str, Any]:
        doc = await self.db.scans.get(scan_id)
        if doc is None:
            raise NotFound(f"no scan with id {scan_id!r}")
        check_scan_access(principal, doc, manage=manage)
        return doc

    async def event_of(self, scan_id: str) -> dict[str, Any]:
        event = await self.db.events.get(scan_id)
        if event is None:
            raise NotFound(f"scan {scan_id!r} has no stored event")
        return event

    def checked(self, req: ScanRequest, principal: Principal, *, realtime: bool = False) -> ScanSpec:
        """Everything a request asks for, checked against the event and the operator's policy."""
        policy = self.policy
        policy.check_priority(req.priority, principal, realtime=realtime)
        policy.check_reco(req.reco)
        shares = worker_shares(req)
        policy.check_clusters(s.name for s in shares)
        policy.check_workers(sum(s.workers for s in shares))
        policy.resources(req.profile)
        return checked_spec(req, req.event, self.settings.max_nside, policy.task_limits)

    async def create(
        self,
        req: ScanRequest,
        principal: Principal,
        extra: dict[str, Any] | None = None,
        scan_id: str | None = None,
        *,
        realtime: bool = False,
    ) -> dict[str, Any]:
        """Validate and store a queued scan; the reconciler launches it. Returns the scan document."""
        spec = self.checked(req, principal, realtime=realtime)
        resources = self.policy.resources(req.profile)
        doc = new_scan_document(req, principal.name, spec, resources, scan_id=scan_id, **(extra or {}))
        event = req.event.to_json_dict()
        ensure_storable(doc, what="the scan")
        ensure_storable({"_id": doc["_id"], "event": event}, what="the event")
        await self.db.create_scan(doc, event)
        self.wake()
        return doc

    async def abort(self, scan: dict[str, Any], reason: str) -> dict[str, Any]:
        """The scan becomes ``aborted`` at once; the reconciler stops its processes and queues."""
        if scan["state"] in TERMINAL_STATES:
            return scan
        updated = await self.db.scans.transition(
            scan["_id"],
            "aborted",
            from_states=LIVE_STATES,
            reason=reason,
            set_fields={"cleanup_pending": True},
        )
        self.wake()
        return updated or await self.db.scans.get(scan["_id"]) or scan

    async def rescan(self, original: dict[str, Any], o: RescanRequest, by: Principal) -> dict[str, Any]:
        """The same event again with overrides; the new scan records ``rescan_of``."""
        event_doc = await self.event_of(original["_id"])
        clusters = original.get("clusters") or [{"name": "default", "workers": original.get("workers", 2)}]
        if o.workers is not None:
            clusters = [{"name": "default", "workers": o.workers}]
        base = ScanSpec.from_doc(original)
        req = ScanRequest(
            event=parse_event(event_doc),
            reco=o.reco if o.reco is not None else base.reco,
            reco_options=o.reco_options if o.reco_options is not None else base.reco_options,
            nsides=o.nsides if o.nsides is not None else base.nsides,
            strategy=o.strategy if o.strategy is not None else base.strategy,
            strategy_options=o.strategy_options if o.strategy_options is not None else base.strategy_options,
            level_set=base.level_set,
            workers=sum(c["workers"] for c in clusters),
            clusters=clusters if o.workers is None else [],
            profile=o.profile if o.profile is not None else original.get("profile", "default"),
            priority=o.priority if o.priority is not None else original["priority"],
            classifiers=o.classifiers if o.classifiers is not None else original.get("classifiers", {}),
        )
        root = original.get("rescan_root") or original["_id"]
        doc = await self.create(req, by, {"rescan_of": original["_id"], "rescan_root": root})
        if o.abort_original:
            await self.abort(original, f"aborted by {by.name} for rescan {doc['_id']}")
        return doc

    async def request_workers(self, scan: dict[str, Any], body: AddWorkersRequest, by: str) -> dict[str, Any]:
        """Record an add-workers request within the scan's worker limit, counting what it has and
        what is already requested; the reconciler serves it through the launcher (within the
        service's budget, and the limit again)."""
        scan_id = scan["_id"]
        if scan["state"] in TERMINAL_STATES:
            raise Conflict(f"scan {scan_id} is {scan['state']}: no workers can be added")
        self.policy.check_clusters([body.cluster])
        pending = sum(int(r.get("workers", 0)) for r in scan.get("worker_requests", []))
        self.policy.check_workers(body.workers, already=int(scan.get("workers", 0)) + pending)
        entry = {
            "request_id": uuid.uuid4().hex[:12],
            "workers": body.workers,
            "cluster": body.cluster,
            "by": by,
            "requested_at": utcnow(),
            "state": "pending",
        }
        if not await self.db.scans.request_workers(scan_id, entry):
            raise Conflict(f"scan {scan_id} ended meanwhile: no workers can be added")
        self.wake()
        return entry
