"""Readiness (``/readyz``): are MongoDB and RabbitMQ reachable?

Unauthenticated, so it must not cost per request, nor depend on how busy the API is: the checks
run on a thread of their own (a synchronous ping and a broker connection, each with its timeout),
one at a time; callers arriving meanwhile share its answer, which is reused for ``FRESH_S``.
Hundreds of probes at once open one broker connection, not hundreds, and a flood of requests
keeping the event loop busy cannot make a check time out.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time

from pymongo import MongoClient

from skydriver_api.queues import broker_reachable
from skydriver_api.settings import ApiSettings

FRESH_S = 1.0
DATABASE_TIMEOUT_MS = 3000


class Readiness:
    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self._checker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="readiness")
        self._lock = threading.Lock()
        self._answer: dict[str, str] = {}
        self._at = -FRESH_S
        self._running: concurrent.futures.Future[dict[str, str]] | None = None
        self._client: MongoClient | None = None

    async def checks(self) -> dict[str, str]:
        with self._lock:
            if time.monotonic() - self._at < FRESH_S:
                return self._answer
            if self._running is None or self._running.done():
                self._running = self._checker.submit(self._check)
            running = self._running
        return await asyncio.wrap_future(running)

    def _check(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            if self._client is None:
                self._client = MongoClient(
                    self.settings.mongodb_uri.get_secret_value(),
                    serverSelectionTimeoutMS=DATABASE_TIMEOUT_MS,
                    socketTimeoutMS=DATABASE_TIMEOUT_MS,
                    connectTimeoutMS=DATABASE_TIMEOUT_MS,
                )
            self._client.admin.command("ping")
            checks["mongodb"] = "ok"
        except Exception as err:
            checks["mongodb"] = f"unreachable: {type(err).__name__}"
        checks["rabbitmq"] = "ok" if broker_reachable(self.settings) else "unreachable"
        with self._lock:
            self._answer, self._at = checks, time.monotonic()
        return checks

    def close(self) -> None:
        self._checker.shutdown(wait=False, cancel_futures=True)
        if self._client is not None:
            self._client.close()
