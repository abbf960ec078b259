"""Idempotent submission: with an ``Idempotency-Key``, a repeat of the same request by the same
owner returns the same scan; the same key with another body is a conflict."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from skydriver_api.auth import Principal
from skydriver_api.models import ScanRequest
from skydriver_api.services.errors import Conflict
from skydriver_api.services.scans import ScanService
from skyinfra.store import Duplicate
from skyscan.records.scan import new_scan_id, utcnow


@dataclass(frozen=True)
class Submitted:
    scan_id: str
    state: str
    replayed: bool


def request_hash(req: Any) -> str:
    return hashlib.sha256(json.dumps(req.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


async def submit(service: ScanService, req: ScanRequest, principal: Principal, key: str | None) -> Submitted:
    keys = service.db.idempotency_keys
    owner = principal.name
    if not key:
        doc = await service.create(req, principal)
        return Submitted(doc["_id"], "queued", replayed=False)
    key_id = hashlib.sha256(f"{owner}\n{key}".encode()).hexdigest()
    body_hash = request_hash(req)
    existing = await keys.get(key_id)
    ttl = dt.timedelta(seconds=service.settings.idempotency_key_ttl_s)
    if existing is not None and existing["created_at"] < utcnow() - ttl:
        # an expired key is free again (the TTL index, where the server has one, also removes it)
        await keys.release(key_id, created_at=existing["created_at"])
        existing = None
    if existing is not None:
        return await _replay(service, existing, body_hash)
    service.checked(req, principal)  # a bad request must not reserve the key
    scan_id = new_scan_id()
    try:
        await keys.reserve(
            {
                "_id": key_id,
                "owner": owner,
                "key": key,
                "body_hash": body_hash,
                "scan_id": scan_id,
                "created_at": utcnow(),
            }
        )
    except Duplicate:  # a concurrent request with the same key won the race
        existing = await keys.get(key_id)
        if existing is None:
            raise Conflict("a concurrent request with this Idempotency-Key failed; retry") from None
        return await _replay(service, existing, body_hash)
    try:
        doc = await service.create(req, principal, {"idempotency_key": key}, scan_id=scan_id)
    except BaseException:
        await keys.release(key_id, scan_id=scan_id)
        raise
    return Submitted(doc["_id"], "queued", replayed=False)


async def _replay(service: ScanService, key_doc: dict[str, Any], body_hash: str) -> Submitted:
    if key_doc["body_hash"] != body_hash:
        raise Conflict(
            "this Idempotency-Key was used with a different request body; use a new key for a new scan"
        )
    scan = await service.db.scans.get(key_doc["scan_id"], {"state": 1})
    return Submitted(key_doc["scan_id"], scan["state"] if scan else "queued", replayed=True)
