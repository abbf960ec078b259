"""Alerts: one document per realtime alert revision, unique on (run, event, revision)."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection


class AlertRepository:
    def __init__(self, collection: AsyncCollection) -> None:
        self._c = collection

    async def ensure_indexes(self) -> None:
        await self._c.create_index(
            [("run_id", ASCENDING), ("event_id", ASCENDING), ("revision", ASCENDING)], unique=True
        )

    async def find(self, run_id: int, event_id: int, revision: int) -> dict[str, Any] | None:
        return await self._c.find_one({"run_id": run_id, "event_id": event_id, "revision": revision})

    async def any_revision(self, run_id: int, event_id: int) -> dict[str, Any] | None:
        return await self._c.find_one({"run_id": run_id, "event_id": event_id})

    async def names_on_day(self, day: str) -> set[str]:
        """The event names given to alerts of one UTC day (``YYMMDD``)."""
        return {doc["event_name"] async for doc in self._c.find({"event_day": day}) if doc.get("event_name")}

    async def for_run(self, run_id: int) -> list[dict[str, Any]]:
        return [d async for d in self._c.find({"run_id": run_id})]

    async def insert(self, doc: dict[str, Any]) -> None:
        """Raises Duplicate when the same revision was stored concurrently."""
        await self._c.insert_one(doc)

    async def delete_for_scan(self, scan_id: str) -> None:
        await self._c.delete_one({"scan_id": scan_id})
