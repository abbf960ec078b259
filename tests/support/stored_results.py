"""What the database holds of a scan's pixel results, read raw (bundles flattened, nothing deduplicated),
so a test sees a task stored twice as two results."""

from __future__ import annotations

from typing import Any

from pymongo.database import Database

from skyinfra.store.pixel_results import bundle_results, scan_range


def stored_results(db: Database, scan_id: str) -> list[dict[str, Any]]:
    """Every result document stored for the scan, in the order written."""
    return [
        r for doc in db.pixel_results.find(scan_range(scan_id)).sort("_id", 1) for r in bundle_results(doc)
    ]


def stored_count(db: Database, scan_id: str) -> int:
    return sum(doc["n"] for doc in db.pixel_results.find(scan_range(scan_id), {"n": 1}))
