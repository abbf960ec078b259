"""The reconciler's loop: run every step, then sleep until woken or the interval passes."""

from __future__ import annotations

import asyncio
import contextlib

from skydriver_api.launchers.base import Launcher
from skydriver_api.reconciler import admission, reaping, supervision, webhooks, worker_requests
from skydriver_api.reconciler.context import Context, log
from skydriver_api.settings import ApiSettings
from skyinfra.store import Database, DatabaseError

STEPS = (reaping.run, supervision.run, admission.run, worker_requests.run, webhooks.run)


class Reconciler:
    def __init__(self, settings: ApiSettings, db: Database, launcher: Launcher) -> None:
        self.settings = settings
        self.context = Context(settings, db, launcher, self.wake)
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="reconciler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.context.executor.shutdown(wait=False, cancel_futures=True)

    async def run(self) -> None:
        while True:
            try:
                await self.reconcile_once()
            except DatabaseError as err:
                log.warning("database unavailable, retrying: %s", err)
            except Exception:
                log.exception("reconcile pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.reconcile_interval_s)
            self._wake.clear()

    async def reconcile_once(self) -> None:
        for step in STEPS:
            await step(self.context)
