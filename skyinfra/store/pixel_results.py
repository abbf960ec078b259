"""Pixel results, stored in bundles: one document per flush of the scan server, holding its results.

One document per result cost the MongoDB-wire server about 110 µs per result on SecantusDB (its
per-document work dominates); one document per flush of up to thousands of results costs about
25 µs per result, and a real ``mongod`` also does less per document (the bucket pattern). A bundle's
``_id`` is ``<scan>:<time of the flush, ns, hex>:<digest of its task ids>``, made once per flush,
so:

* a scan's bundles are the ``_id`` range from ``"<scan>:"`` up to ``"<scan>;"``, in the order they
  were written;
* a write retried after a lost reply hits the same ``_id`` and changes nothing.

Exactly once per task: the scan server is the only writer of its scan's results; it loads what is
stored when it starts and never writes a result for a task it knows is answered (and a bundle holds
each task once). Should a second server ever write the same task (a replaced server that is still
alive), readers keep the first result written, so what a scan reads never changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterable
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from skyscan.records.pixel_result import PixelResultRecord


def scan_range(scan_id: str) -> dict[str, Any]:
    """The ``_id`` range of a scan's bundles (``';'`` is ``':'`` + 1)."""
    return {"_id": {"$gte": f"{scan_id}:", "$lt": f"{scan_id};"}}


def bundle_results(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The result documents of one bundle, each with the bundle's scan id."""
    return [{**r, "scan_id": doc["scan_id"]} for r in doc["results"]]


class PixelResultRepository:
    def __init__(self, collection: AsyncCollection) -> None:
        self._c = collection

    async def ensure_indexes(self) -> None:
        """Nothing beyond the primary key: bundles are read by their scan's ``_id`` range."""

    @staticmethod
    def bundle(records: Iterable[PixelResultRecord]) -> dict[str, Any] | None:
        """The document for one flush: each task once (its first result here), or None if empty."""
        first: dict[str, PixelResultRecord] = {}
        for r in records:
            first.setdefault(r.task_id, r)
        if not first:
            return None
        scans = {r.scan_id for r in first.values()}
        if len(scans) != 1:
            raise ValueError(f"a bundle holds the results of one scan, not {sorted(scans)}")
        scan_id = scans.pop()
        digest = hashlib.blake2b("\n".join(first).encode(), digest_size=8).hexdigest()
        results = []
        for r in first.values():
            doc = r.to_doc()
            del doc["scan_id"]
            results.append(doc)
        return {
            "_id": f"{scan_id}:{time.time_ns():x}:{digest}",
            "scan_id": scan_id,
            "stored_at": next(iter(first.values())).stored_at,
            "n": len(results),
            "results": results,
        }

    async def store(self, bundle: dict[str, Any] | None) -> int:
        """Insert one bundle (from :meth:`bundle`, made once: a retried write of the same bundle
        changes nothing). Returns how many results it holds."""
        if bundle is None:
            return 0
        with contextlib.suppress(DuplicateKeyError):  # a retry after the first write's reply was lost
            await self._c.insert_one(bundle)
        return bundle["n"]

    async def for_scan(self, scan_id: str) -> list[PixelResultRecord]:
        """Every stored result of the scan, each task once: the first result written for it."""
        seen: set[str] = set()
        out: list[PixelResultRecord] = []
        async for doc in self._c.find(scan_range(scan_id)).sort("_id", 1):
            for result in bundle_results(doc):
                if result["task_id"] not in seen:
                    seen.add(result["task_id"])
                    out.append(PixelResultRecord.from_doc(result))
        return out
