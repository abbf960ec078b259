"""Idempotency keys: one document per owner and key, pointing at the scan it created."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection


class IdempotencyKeyRepository:
    def __init__(self, collection: AsyncCollection) -> None:
        self._c = collection

    async def ensure_indexes(self, ttl_s: float | None) -> None:
        if ttl_s is not None:
            # expired keys are ignored on read anyway; the TTL index only keeps the collection small
            await self._c.create_index([("created_at", ASCENDING)], expireAfterSeconds=int(ttl_s))

    async def get(self, key_id: str) -> dict[str, Any] | None:
        return await self._c.find_one({"_id": key_id})

    async def reserve(self, doc: dict[str, Any]) -> None:
        """Insert the key; raises Duplicate when a concurrent request holds it already."""
        await self._c.insert_one(doc)

    async def release(
        self, key_id: str, *, scan_id: str | None = None, created_at: dt.datetime | None = None
    ) -> None:
        """Delete the key, only if it still points at ``scan_id`` / was made at ``created_at``."""
        query: dict[str, Any] = {"_id": key_id}
        if scan_id is not None:
            query["scan_id"] = scan_id
        if created_at is not None:
            query["created_at"] = created_at
        await self._c.delete_one(query)
