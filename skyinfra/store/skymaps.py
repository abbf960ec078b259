"""Skymaps: the final result document of a scan, written once, its pixel rows in parts.

One MongoDB document holds at most 16 MB, about 110,000 pixel rows; a scan within the API's default
limits (250,000 tasks) can have more. The head document (collection ``skymaps``) holds everything
but the rows and names the parts that hold them (collection ``skymap_pixels``, at most
``PIXELS_PER_PART`` rows each). Parts are written first and the head last, so a reader never sees a
head whose parts are missing; a late writer (a second server) finds the head there and removes its
own parts, and parts no head names are removed once the head is written.
"""

from __future__ import annotations

import uuid
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

PIXELS_PER_PART = 40_000  # about 6 MB of BSON at ~150 bytes a row


class SkymapRepository:
    def __init__(
        self,
        collection: AsyncCollection,
        pixel_parts: AsyncCollection,
        pixels_per_part: int = PIXELS_PER_PART,
    ) -> None:
        self._c = collection
        self._parts = pixel_parts
        self._per_part = pixels_per_part

    async def ensure_indexes(self) -> None:
        await self._c.create_index([("scan_id", ASCENDING)], unique=True)

    async def store_final(self, scan_id: str, result: dict[str, Any]) -> bool:
        """Write the final skymap once; a late writer (a second server) never replaces it.

        Returns False when a final skymap existed already.
        """
        if await self._c.find_one({"scan_id": scan_id, "final": True}, {"_id": 1}) is not None:
            return False
        rows = result.get("pixels") or []
        writer = uuid.uuid4().hex
        n = self._per_part
        part_ids = [f"{scan_id}:{writer}:{i}" for i in range(-(-len(rows) // n))]
        for i, part_id in enumerate(part_ids):  # one at a time: each is megabytes
            await self._parts.insert_one(
                {"_id": part_id, "scan_id": scan_id, "pixels": rows[i * n : (i + 1) * n]}
            )
        head = {k: v for k, v in result.items() if k != "pixels"}
        doc = {"scan_id": scan_id, "final": True, "result": head}
        if "pixels" in result:
            doc["pixel_parts"] = part_ids
        try:
            await self._c.replace_one({"scan_id": scan_id, "final": {"$ne": True}}, doc, upsert=True)
        except DuplicateKeyError:
            await self._parts.delete_many({"_id": {"$in": part_ids}})
            return False
        # The head is final now and never replaced: parts it does not name (an attempt that failed
        # before its head, a writer that lost the race) can never be read. Removed only now, so a
        # concurrent writer's parts are never deleted under a head that names them.
        await self._parts.delete_many({"scan_id": scan_id, "_id": {"$nin": part_ids}})
        return True

    async def get(self, scan_id: str) -> dict[str, Any] | None:
        doc = await self._c.find_one({"scan_id": scan_id}, {"_id": 0})
        if doc is None:
            return None
        result = doc["result"]
        part_ids = doc.get("pixel_parts")
        if part_ids is None:  # no rows, or a map written whole by an older server
            return result
        parts = {p["_id"]: p["pixels"] async for p in self._parts.find({"_id": {"$in": part_ids}})}
        missing = [p for p in part_ids if p not in parts]
        if missing:
            raise RuntimeError(f"skymap of scan {scan_id} lacks {len(missing)} of its pixel parts")
        result["pixels"] = [row for part_id in part_ids for row in parts[part_id]]
        return result
