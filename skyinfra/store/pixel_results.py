"""Pixel results: one document per task id, which is the document's ``_id``; the first result wins.

Keyed by the task id itself (``scan:nside:pixel:variation``): the primary key makes a second result
for a task a duplicate-key error that changes nothing, with no secondary index to maintain on each
of the hundreds of writes per second a scan makes, and a scan's results are a range of that key.
"""

from __future__ import annotations

from collections.abc import Iterable

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from skyscan.records.pixel_result import PixelResultRecord

DUPLICATE_KEY = 11000


class PixelResultRepository:
    def __init__(self, collection: AsyncCollection) -> None:
        self._c = collection

    async def ensure_indexes(self) -> None:
        """Nothing beyond the primary key: it is the task id, unique by construction."""

    async def store_once(self, records: Iterable[PixelResultRecord]) -> int:
        """Insert in one unordered bulk write; a task stored already keeps its first result.

        Returns how many were new. Any error other than a duplicate key is raised.
        """
        docs = [{"_id": r.task_id, **r.to_doc()} for r in records]
        if not docs:
            return 0
        try:
            await self._c.insert_many(docs, ordered=False)
        except BulkWriteError as err:
            errors = err.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors) or err.details.get("writeConcernErrors"):
                raise
            return len(docs) - len(errors)
        return len(docs)

    async def for_scan(self, scan_id: str) -> list[PixelResultRecord]:
        # task ids of the scan are the keys from "scan:" up to, not including, "scan;" (':' + 1)
        cursor = self._c.find({"_id": {"$gte": f"{scan_id}:", "$lt": f"{scan_id};"}})
        return [PixelResultRecord.from_doc(doc) async for doc in cursor]

    async def estimated_count(self) -> int:
        return await self._c.estimated_document_count()
