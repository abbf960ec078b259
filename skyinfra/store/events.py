"""Events: the event of each scan, under the scan id."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.collection import AsyncCollection


class EventRepository:
    def __init__(self, collection: AsyncCollection) -> None:
        self._c = collection

    async def put(self, scan_id: str, event: dict[str, Any]) -> None:
        await self._c.replace_one({"_id": scan_id}, {"_id": scan_id, "event": event}, upsert=True)

    async def put_many(self, events: dict[str, dict[str, Any]]) -> None:
        if events:
            await self._c.insert_many(
                [{"_id": scan_id, "event": event} for scan_id, event in events.items()], ordered=False
            )

    async def get(self, scan_id: str) -> dict[str, Any] | None:
        doc = await self._c.find_one({"_id": scan_id})
        return None if doc is None else doc["event"]

    async def delete_many(self, scan_ids: list[str]) -> None:
        if scan_ids:
            await self._c.delete_many({"_id": {"$in": scan_ids}})
