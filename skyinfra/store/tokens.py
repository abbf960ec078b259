"""Tokens: bearer tokens, stored as hashes only."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenRepository:
    def __init__(self, collection: AsyncCollection) -> None:
        self._c = collection

    async def ensure_indexes(self) -> None:
        await self._c.create_index([("token_hash", ASCENDING)], unique=True)

    async def insert(self, doc: dict[str, Any]) -> None:
        await self._c.insert_one(doc)

    async def by_hash(self, digest: str) -> dict[str, Any] | None:
        return await self._c.find_one({"token_hash": digest})

    async def revoke(self, token_id: str, by: str, at: dt.datetime) -> dict[str, Any] | None:
        """Mark a token revoked (kept for the audit trail); None when no such token exists."""
        return await self._c.find_one_and_update(
            {"_id": token_id},
            {"$set": {"revoked_at": at, "revoked_by": by}},
            return_document=ReturnDocument.AFTER,
        )

    async def newest(self, limit: int = 1000) -> list[dict[str, Any]]:
        cursor = self._c.find({}, {"token_hash": 0}).sort([("created_at", -1)]).limit(limit)
        return [doc async for doc in cursor]
