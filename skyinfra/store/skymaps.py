"""Skymaps: the final result document of a scan, written once."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError


class SkymapRepository:
    def __init__(self, collection: AsyncCollection) -> None:
        self._c = collection

    async def ensure_indexes(self) -> None:
        await self._c.create_index([("scan_id", ASCENDING)], unique=True)

    async def store_final(self, scan_id: str, result: dict[str, Any]) -> bool:
        """Write the final skymap once; a late writer (a second server) never replaces it.

        Returns False when a final skymap existed already.
        """
        try:
            await self._c.replace_one(
                {"scan_id": scan_id, "final": {"$ne": True}},
                {"scan_id": scan_id, "final": True, "result": result},
                upsert=True,
            )
        except DuplicateKeyError:
            return False
        return True

    async def get(self, scan_id: str) -> dict[str, Any] | None:
        doc = await self._c.find_one({"scan_id": scan_id}, {"_id": 0})
        return None if doc is None else doc["result"]
