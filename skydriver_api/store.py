"""MongoDB access for the API and reconciler (PyMongo's async API).

Collections: ``scans`` (state machine, request, progress, launch bookkeeping), ``events`` (the
event of each scan, kept apart because it can be large), ``pixel_results`` (one document per
task id, unique index; written by scan servers), ``skymaps`` (the final result document), and
``tokens`` (hashed bearer tokens), ``idempotency_keys`` (one per owner and Idempotency-Key),
``alerts`` (one per realtime alert revision, unique on run, event and revision) and ``catalogs``
(catalog reprocessing jobs whose child scans carry ``catalog_id``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from skyinfra.settings import Settings

TERMINAL_STATES = ("completed", "failed", "aborted")
ACTIVE_STATES = ("launching", "running")
SCAN_STATES = ("queued", *ACTIVE_STATES, *TERMINAL_STATES)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Store:
    def __init__(self, settings: Settings) -> None:
        self.client: AsyncMongoClient = AsyncMongoClient(
            settings.mongodb_uri.get_secret_value(),
            serverSelectionTimeoutMS=3000,
            tz_aware=True,
        )
        self.db: AsyncDatabase = self.client[settings.mongodb_database]
        self.scans = self.db.scans
        self.events = self.db.events
        self.pixel_results = self.db.pixel_results
        self.skymaps = self.db.skymaps
        self.tokens = self.db.tokens
        self.idempotency_keys = self.db.idempotency_keys
        self.alerts = self.db.alerts
        self.catalogs = self.db.catalogs

    async def ensure_indexes(self, idempotency_key_ttl_s: float | None = None) -> None:
        await self.pixel_results.create_index([("task_id", ASCENDING)], unique=True)
        await self.pixel_results.create_index([("scan_id", ASCENDING), ("nside", ASCENDING)])
        await self.scans.create_index(
            [("state", ASCENDING), ("priority", DESCENDING), ("created_at", ASCENDING)]
        )
        await self.scans.create_index([("created_at", DESCENDING), ("_id", DESCENDING)])
        await self.skymaps.create_index([("scan_id", ASCENDING)], unique=True)
        await self.tokens.create_index([("token_hash", ASCENDING)], unique=True)
        await self.scans.create_index([("owner", ASCENDING), ("created_at", DESCENDING)])
        await self.scans.create_index([("run_id", ASCENDING), ("event_id", ASCENDING)])
        await self.scans.create_index([("catalog_id", ASCENDING)])
        await self.alerts.create_index(
            [("run_id", ASCENDING), ("event_id", ASCENDING), ("revision", ASCENDING)],
            unique=True,
        )
        await self.catalogs.create_index([("created_at", DESCENDING)])
        if idempotency_key_ttl_s is not None:
            # expired keys are ignored on read anyway; the TTL index only keeps the collection small
            await self.idempotency_keys.create_index(
                [("created_at", ASCENDING)], expireAfterSeconds=int(idempotency_key_ttl_s)
            )

    async def ping(self) -> None:
        await self.db.command("ping")

    async def close(self) -> None:
        await self.client.close()

    # -- scans ---------------------------------------------------------------------------------
    async def insert_scan(self, scan: dict[str, Any], event: dict[str, Any]) -> None:
        """Event first, then scan: a scan document never exists without its event."""
        await self.events.replace_one({"_id": scan["_id"]}, {"_id": scan["_id"], "event": event}, upsert=True)
        await self.scans.insert_one(scan)

    async def get_scan(self, scan_id: str) -> dict[str, Any] | None:
        return await self.scans.find_one({"_id": scan_id})

    async def get_event(self, scan_id: str) -> dict[str, Any] | None:
        doc = await self.events.find_one({"_id": scan_id})
        return None if doc is None else doc["event"]

    async def transition(
        self,
        scan_id: str,
        from_states: tuple[str, ...],
        to_state: str,
        reason: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Atomically move a scan between states; None if it was not in ``from_states``."""
        now = utcnow()
        update: dict[str, Any] = {
            "$set": {"state": to_state, "updated_at": now, **(extra or {})},
            "$push": {"history": {"state": to_state, "at": now, "reason": reason}},
        }
        if reason is not None:
            update["$set"]["state_reason"] = reason
        return await self.scans.find_one_and_update(
            {"_id": scan_id, "state": {"$in": list(from_states)}},
            update,
            return_document=ReturnDocument.AFTER,
        )

    async def pixel_results_for(self, scan_id: str) -> list[dict[str, Any]]:
        cursor = self.pixel_results.find({"scan_id": scan_id}, {"_id": 0})
        return [doc async for doc in cursor]

    async def skymap_for(self, scan_id: str) -> dict[str, Any] | None:
        doc = await self.skymaps.find_one({"scan_id": scan_id}, {"_id": 0})
        return None if doc is None else doc["result"]
