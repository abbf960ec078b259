"""Pixel results: one document per task id (unique index); the first result of a task wins."""

from __future__ import annotations

from collections.abc import Iterable

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from skyscan.records.pixel_result import PixelResultRecord


class PixelResultRepository:
    def __init__(self, collection: AsyncCollection) -> None:
        self._c = collection

    async def ensure_indexes(self) -> None:
        await self._c.create_index([("task_id", ASCENDING)], unique=True)
        await self._c.create_index([("scan_id", ASCENDING), ("nside", ASCENDING)])

    async def store_once(self, records: Iterable[PixelResultRecord]) -> None:
        """Upsert with ``$setOnInsert`` in one unordered bulk write: duplicates change nothing."""
        ops = [UpdateOne({"task_id": r.task_id}, {"$setOnInsert": r.to_doc()}, upsert=True) for r in records]
        if ops:
            await self._c.bulk_write(ops, ordered=False)

    async def for_scan(self, scan_id: str) -> list[PixelResultRecord]:
        cursor = self._c.find({"scan_id": scan_id}, {"_id": 0})
        return [PixelResultRecord.from_doc(doc) async for doc in cursor]

    async def estimated_count(self) -> int:
        return await self._c.estimated_document_count()
