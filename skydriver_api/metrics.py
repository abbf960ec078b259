"""Prometheus metrics (no per-scan labels: cardinality stays bounded).

``/metrics`` is unauthenticated (Prometheus scrapes it), so it must cost the same whether one
scraper or a thousand clients call it: the gauges that need the database and the broker are
recomputed by one background task every ``SKYDRIVER_METRICS_REFRESH_S``, and a request only
renders the registry, at most once a second (:class:`MetricsSnapshot`)."""

from __future__ import annotations

import asyncio
import logging
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from skydriver_api.queues import queue_depths
from skyinfra.settings import BrokerSettings
from skyinfra.store import Database
from skyscan.records.scan import SCAN_STATES

log = logging.getLogger("skydriver.metrics")

REGISTRY = CollectorRegistry()

SCANS_BY_STATE = Gauge("skydriver_scans", "Scans by state", ["state"], registry=REGISTRY)
PIXELS_DONE = Gauge(
    "skydriver_pixel_results_total",
    "Pixel results recorded (all scans, as of each scan server's last progress report)",
    registry=REGISTRY,
)
PIXEL_RATE = Gauge(
    "skydriver_pixels_per_second", "Pixel results per second over active scans", registry=REGISTRY
)
REQUESTS = Counter(
    "skydriver_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=REGISTRY
)
LATENCY = Histogram(
    "skydriver_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

QUEUE_MESSAGES = Gauge(
    "skydriver_queue_messages",
    "Ready messages in the scans' queues, summed over running scans",
    ["queue"],
    registry=REGISTRY,
)
QUEUE_UP = Gauge(
    "skydriver_queue_depths_up", "1 when the broker answered the last depth query", registry=REGISTRY
)
BACKLOG = Gauge(
    "skydriver_backlog_scans", "Queued scans by priority class", ["priority_class"], registry=REGISTRY
)
WORKERS_IN_USE = Gauge(
    "skydriver_workers_in_use", "Workers of launching and running scans", registry=REGISTRY
)

REFRESHES = Counter(
    "skydriver_metrics_refreshes",
    "Background recomputations of the database and broker gauges",
    registry=REGISTRY,
)
REFRESHED_AT = Gauge(
    "skydriver_metrics_refreshed_timestamp_seconds",
    "When the database and broker gauges were last recomputed (Unix time)",
    registry=REGISTRY,
)

_last: dict[str, float] = {}
RENDER_EVERY_S = 1.0


def priority_class(priority: int) -> str:
    return "realtime" if priority >= 100 else "catalog" if priority < 0 else "normal"


async def refresh(db: Database, settings: BrokerSettings | None = None) -> None:
    counts = {state: 0 for state in SCAN_STATES}
    by_state, total = await db.scans.state_summary()
    counts.update(by_state)
    for state, n in counts.items():
        SCANS_BY_STATE.labels(state).set(n)
    PIXELS_DONE.set(total)
    now = time.monotonic()
    if "t" in _last and now > _last["t"]:
        PIXEL_RATE.set(max(0.0, (total - _last["n"]) / (now - _last["t"])))
    _last.update(t=now, n=total)

    backlog = {"realtime": 0, "normal": 0, "catalog": 0}
    for scan in await db.scans.queued({"priority": 1}, limit=0):
        backlog[priority_class(scan.get("priority", 0))] += 1
    for cls, n in backlog.items():
        BACKLOG.labels(cls).set(n)
    active = await db.scans.active({"workers": 1, "state": 1})
    WORKERS_IN_USE.set(sum(d.get("workers", 0) for d in active))
    if settings is not None:
        running = [d["_id"] for d in active if d["state"] == "running"]
        try:
            depths = await asyncio.wait_for(asyncio.to_thread(queue_depths, settings, running), 10)
        except Exception as err:  # broker down: say so, keep the last values out
            log.warning("queue depths unavailable: %s", err)
            QUEUE_UP.set(0)
            return
        QUEUE_UP.set(1)
        for kind, n in depths.items():
            QUEUE_MESSAGES.labels(kind).set(n)


class MetricsSnapshot:
    """The gauges, refreshed in the background; the rendered text, cached for a second."""

    def __init__(self, db: Database, settings: BrokerSettings, interval_s: float) -> None:
        self.db = db
        self.settings = settings
        self.interval_s = interval_s
        self._text = b""
        self._rendered_at = -RENDER_EVERY_S

    async def run(self) -> None:
        """Refresh forever, one refresh at a time; a failed one is logged and the next one tried."""
        while True:
            try:
                await refresh(self.db, self.settings)
                REFRESHES.inc()
                REFRESHED_AT.set(time.time())
            except Exception as err:  # the database is down: /readyz says so; keep the last values
                log.warning("metrics refresh failed: %s", err)
            await asyncio.sleep(self.interval_s)

    def text(self) -> bytes:
        now = time.monotonic()
        if now - self._rendered_at >= RENDER_EVERY_S:
            self._text = generate_latest(REGISTRY)
            self._rendered_at = now
        return self._text


class RequestMetricsMiddleware:
    """Counts requests and their latency by method, route template (never a path with an id in it)
    and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counted)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")  # the router sets it on the scope
            REQUESTS.labels(scope["method"], path, str(status)).inc()
            LATENCY.labels(scope["method"], path).observe(time.perf_counter() - start)
