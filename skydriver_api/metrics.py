"""Prometheus metrics (no per-scan labels: cardinality stays bounded)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from skydriver_api.store import SCAN_STATES, Store

REGISTRY = CollectorRegistry()

SCANS_BY_STATE = Gauge("skydriver_scans", "Scans by state", ["state"], registry=REGISTRY)
PIXELS_DONE = Gauge("skydriver_pixel_results_total", "Pixel results stored (all scans)", registry=REGISTRY)
PIXEL_RATE = Gauge("skydriver_pixels_per_second", "Pixel results per second over active scans", registry=REGISTRY)
REQUESTS = Counter("skydriver_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=REGISTRY)
LATENCY = Histogram(
    "skydriver_http_request_seconds", "HTTP request latency", ["method", "route"], registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

_last: dict[str, float] = {}


async def refresh(store: Store) -> None:
    counts = {state: 0 for state in SCAN_STATES}
    async for row in store.scans.aggregate([{"$group": {"_id": "$state", "n": {"$sum": 1}}}]):
        counts[row["_id"]] = row["n"]
    for state, n in counts.items():
        SCANS_BY_STATE.labels(state).set(n)
    total = await store.pixel_results.estimated_document_count()
    PIXELS_DONE.set(total)
    now = time.monotonic()
    if "t" in _last and now > _last["t"]:
        PIXEL_RATE.set(max(0.0, (total - _last["n"]) / (now - _last["t"])))
    _last.update(t=now, n=total)
