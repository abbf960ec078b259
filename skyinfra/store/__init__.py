"""The persistence layer: one repository per collection, each the only writer of its records.

The API (with its reconciler) and the scan servers both use it; they never touch a collection
directly. ``Database`` opens the client and holds the repositories:

| repository | collection | record |
|---|---|---|
| ``scans`` | ``scans`` | the scan record: ``state``/``history`` change only through ``transition()`` |
| ``events`` | ``events`` | the event of each scan (kept apart: it can be large) |
| ``pixel_results`` | ``pixel_results`` | a bundle of results per server flush; first result of a task wins |
| ``skymaps`` | ``skymaps``, ``skymap_pixels`` | the final result of a scan, written once; rows in parts |
| ``tokens`` | ``tokens`` | hashed bearer tokens |
| ``idempotency_keys`` | ``idempotency_keys`` | one per owner and ``Idempotency-Key`` |
| ``alerts`` | ``alerts`` | one per realtime alert revision (run, event, revision) |
| ``alert_rejections`` | ``alert_rejections`` | one per malformed alert message (topic, partition, offset) |
| ``catalogs`` | ``catalogs`` | catalog jobs whose child scans carry ``catalog_id`` |
"""

from __future__ import annotations

import logging
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from skyinfra.store.alert_rejections import AlertRejectionRepository
from skyinfra.store.alerts import AlertRepository
from skyinfra.store.catalogs import CatalogRepository
from skyinfra.store.events import EventRepository
from skyinfra.store.idempotency import IdempotencyKeyRepository
from skyinfra.store.pixel_results import PixelResultRepository
from skyinfra.store.scans import HELD, ScanRepository
from skyinfra.store.skymaps import SkymapRepository
from skyinfra.store.tokens import TokenRepository, hash_token

log = logging.getLogger("skydriver.store")

# What callers catch, without importing the driver themselves.
DatabaseError = PyMongoError
Duplicate = DuplicateKeyError


class Database:
    def __init__(self, uri: str, name: str, server_selection_timeout_ms: int = 3000) -> None:
        self.client: AsyncMongoClient = AsyncMongoClient(
            uri, serverSelectionTimeoutMS=server_selection_timeout_ms, tz_aware=True
        )
        self.db: AsyncDatabase = self.client[name]
        self.scans = ScanRepository(self.db.scans)
        self.events = EventRepository(self.db.events)
        self.pixel_results = PixelResultRepository(self.db.pixel_results)
        self.skymaps = SkymapRepository(self.db.skymaps, self.db.skymap_pixels)
        self.tokens = TokenRepository(self.db.tokens)
        self.idempotency_keys = IdempotencyKeyRepository(self.db.idempotency_keys)
        self.alerts = AlertRepository(self.db.alerts)
        self.alert_rejections = AlertRejectionRepository(self.db.alert_rejections)
        self.catalogs = CatalogRepository(self.db.catalogs)

    async def ensure_indexes(self, idempotency_key_ttl_s: float | None = None) -> None:
        await self.scans.ensure_indexes()
        await self.pixel_results.ensure_indexes()
        await self.skymaps.ensure_indexes()
        await self.tokens.ensure_indexes()
        await self.alerts.ensure_indexes()
        await self.alert_rejections.ensure_indexes()
        await self.catalogs.ensure_indexes()
        await self.idempotency_keys.ensure_indexes(idempotency_key_ttl_s)

    async def create_scan(self, scan: dict[str, Any], event: dict[str, Any]) -> None:
        """Event first, then scan: a scan document never exists without its event. All or nothing:
        when the scan cannot be written, its event is taken back. A scan id that is taken (a
        concurrent copy of the same alert wrote it) belongs to that writer: nothing is undone."""
        try:
            await self.events.put(scan["_id"], event)
            await self.scans.insert(scan)
        except DuplicateKeyError:
            raise
        except BaseException:
            await self._undo([scan["_id"]])
            raise

    async def create_catalog(
        self, catalog: dict[str, Any], events: dict[str, dict[str, Any]], scans: list[dict[str, Any]]
    ) -> None:
        """A catalog, its events and its child scans, all or nothing (no multi-document transactions
        on a standalone MongoDB: what was written is deleted again when a later write fails).

        The scans are written *held* (not due for launch) and released only once everything is
        stored, so the reconciler never starts a scan that the undo would then delete.
        """
        ids = [s["_id"] for s in scans]
        held = [{**s, "launch": {**s["launch"], "next_attempt_at": HELD}} for s in scans]
        try:
            await self.catalogs.insert(catalog)
            await self.events.put_many(events)  # events first: no scan without its event
            await self.scans.insert_many(held)
            await self.scans.release(ids)
        except BaseException:
            await self._undo(ids, catalog["_id"])
            raise

    async def _undo(self, scan_ids: list[str], catalog_id: str | None = None) -> None:
        """Delete what a failed multi-document write stored (missing documents are fine)."""
        try:
            await self.scans.delete_many(scan_ids)
            await self.events.delete_many(scan_ids)
            if catalog_id is not None:
                await self.catalogs.delete(catalog_id)
        except PyMongoError as err:  # the database went away: the caller's error is what matters
            log.error("could not undo a failed write of scans %s: %s", scan_ids[:3], err)

    async def ping(self) -> None:
        await self.db.command("ping")

    async def close(self) -> None:
        await self.client.close()


__all__ = ["Database", "DatabaseError", "Duplicate", "hash_token"]
