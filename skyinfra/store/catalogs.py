"""Catalogs: reprocessing jobs; their child scans carry ``catalog_id``."""

from __future__ import annotations

from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.collection import AsyncCollection


class CatalogRepository:
    def __init__(self, collection: AsyncCollection) -> None:
        self._c = collection

    async def ensure_indexes(self) -> None:
        await self._c.create_index([("created_at", DESCENDING)])

    async def insert(self, doc: dict[str, Any]) -> None:
        await self._c.insert_one(doc)

    async def get(self, catalog_id: str) -> dict[str, Any] | None:
        return await self._c.find_one({"_id": catalog_id})

    async def delete(self, catalog_id: str) -> None:
        await self._c.delete_one({"_id": catalog_id})
