"""The reconciler's loop: run every step, then sleep until woken or the interval passes.

In the API it runs on a thread of its own, with its own event loop and database client
(:class:`ReconcilerThread`): however busy request handling keeps the API's event loop (a storm of
unauthenticated requests, say), admission, launches and clean-ups go on at their own pace.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from skydriver_api.launchers.base import Launcher
from skydriver_api.reconciler import admission, notices, reaping, supervision, webhooks, worker_requests
from skydriver_api.reconciler.context import Context, log
from skydriver_api.settings import ApiSettings
from skyinfra.store import Database, DatabaseError

STEPS = (reaping.run, supervision.run, admission.run, worker_requests.run, webhooks.run, notices.run)
STOP_TIMEOUT_S = 30.0


class Reconciler:
    def __init__(self, settings: ApiSettings, db: Database, launcher: Launcher) -> None:
        self.settings = settings
        channel = notices.NoticeChannel.from_settings(settings)
        self.context = Context(settings, db, launcher, self.wake, channel)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

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

    async def close(self) -> None:
        if self.context.notices is not None:  # undelivered notices go again after a restart
            await asyncio.to_thread(self.context.notices.close)


class ReconcilerThread:
    """A :class:`Reconciler` on its own thread and event loop. ``wake`` may be called from any thread."""

    def __init__(self, settings: ApiSettings, launcher: Launcher) -> None:
        self.settings = settings
        self.launcher = launcher
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reconciler: Reconciler | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._main(),), name="reconciler", daemon=True
        )
        self._thread.start()
        self._ready.wait(STOP_TIMEOUT_S)

    async def _main(self) -> None:
        db = Database(self.settings.mongodb_uri.get_secret_value(), self.settings.mongodb_database)
        reconciler = Reconciler(self.settings, db, self.launcher)
        self._loop, self._reconciler = asyncio.get_running_loop(), reconciler
        self._task = asyncio.current_task()
        self._ready.set()
        try:
            await reconciler.run()
        except asyncio.CancelledError:
            pass
        finally:
            await reconciler.close()
            await db.close()

    def wake(self) -> None:
        if self._loop is not None and self._reconciler is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(self._reconciler.wake)

    async def stop(self) -> None:
        if self._loop is None or self._task is None or self._thread is None:
            return
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._task.cancel)
        await asyncio.to_thread(self._thread.join, STOP_TIMEOUT_S)
