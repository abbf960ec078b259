"""Alert rejections: one document per malformed message of an alert topic, keyed by where it sits
(topic, partition, offset), so a message redelivered after a restart is recorded once."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection

from skyscan.records.scan import utcnow


def rejection_id(topic: str, partition: int, offset: int) -> str:
    return f"{topic}:{partition}:{offset}"


class AlertRejectionRepository:
    def __init__(self, collection: AsyncCollection) -> None:
        self._c = collection

    async def ensure_indexes(self) -> None:
        await self._c.create_index([("rejected_at", ASCENDING)])

    async def record(
        self, topic: str, partition: int, offset: int, reason: str, details: dict[str, Any]
    ) -> dict[str, Any]:
        """Record the rejection once (the first reason wins); returns the stored document."""
        doc_id = rejection_id(topic, partition, offset)
        await self._c.update_one(
            {"_id": doc_id},
            {
                "$setOnInsert": {
                    "topic": topic,
                    "partition": partition,
                    "offset": offset,
                    "reason": reason,
                    "rejected_at": utcnow(),
                    "dead_letter": None,
                    **details,
                }
            },
            upsert=True,
        )
        found = await self._c.find_one({"_id": doc_id})
        assert found is not None
        return found

    async def dead_lettered(self, doc_id: str, where: dict[str, Any]) -> None:
        """Where the message was republished on the dead-letter topic."""
        await self._c.update_one({"_id": doc_id}, {"$set": {"dead_letter": where}})

    async def on_topic(self, topic: str) -> list[dict[str, Any]]:
        return [d async for d in self._c.find({"topic": topic}).sort([("rejected_at", ASCENDING)])]
