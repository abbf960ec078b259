"""Readiness (``/readyz``): are MongoDB and RabbitMQ reachable?

Unauthenticated, so it must not cost per request: one check runs at a time (callers arriving
meanwhile share its answer) and an answer is reused for ``FRESH_S``. Hundreds of probes at once
open one broker connection, not hundreds.
"""

from __future__ import annotations

import asyncio
import time

from skydriver_api.queues import broker_reachable
from skyinfra.settings import BrokerSettings
from skyinfra.store import Database

FRESH_S = 1.0
DATABASE_TIMEOUT_S = 3.0


class Readiness:
    def __init__(self, db: Database, settings: BrokerSettings) -> None:
        self.db = db
        self.settings = settings
        self._answer: dict[str, str] = {}
        self._at = -FRESH_S
        self._running: asyncio.Task[dict[str, str]] | None = None

    async def checks(self) -> dict[str, str]:
        if time.monotonic() - self._at < FRESH_S:
            return self._answer
        if self._running is None:
            self._running = asyncio.create_task(self._check())
        running = self._running
        try:
            return await asyncio.shield(running)  # a caller that disconnects does not cancel the others
        finally:
            if running.done() and self._running is running:
                self._running = None

    async def _check(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            await asyncio.wait_for(self.db.ping(), DATABASE_TIMEOUT_S)
            checks["mongodb"] = "ok"
        except Exception as err:
            checks["mongodb"] = f"unreachable: {type(err).__name__}"
        ok = await asyncio.to_thread(broker_reachable, self.settings)
        checks["rabbitmq"] = "ok" if ok else "unreachable"
        self._answer, self._at = checks, time.monotonic()
        return checks
