"""The event stream of a scan: every history entry (``state``, id = its index), progress snapshots
when the counts change, and ``end`` once the scan is terminal. Read from MongoDB by polling, so no
broker connection per client. FastAPI frames the events and sends keep-alive comments when idle."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi.sse import ServerSentEvent

from skyinfra.store import Database
from skyscan.records.scan import TERMINAL_STATES

RETRY_MS = 2000  # how long a client waits before it reconnects (with Last-Event-ID)
_FIELDS = {"state": 1, "state_reason": 1, "history": 1, "progress": 1, "best_fit": 1}


async def scan_events(
    db: Database,
    scan_id: str,
    first: int,
    poll_s: float,
    disconnected: Callable[[], Awaitable[bool]],
) -> AsyncIterator[ServerSentEvent]:
    """From history entry ``first`` on; ends after ``end``, or at the next poll once the client has
    gone (rather than at the next keep-alive that fails to send)."""
    sent = first
    last_progress: tuple[Any, ...] | None = None
    yield ServerSentEvent(retry=RETRY_MS)
    while True:
        doc = await db.scans.get(scan_id, _FIELDS)
        if doc is None:
            yield ServerSentEvent(event="error", data={"detail": f"scan {scan_id} was deleted"})
            return
        history = doc.get("history", [])
        for index in range(sent, len(history)):
            entry = {k: v for k, v in history[index].items() if v is not None}
            yield ServerSentEvent(
                event="state", data={"scan_id": scan_id, "index": index, **entry}, id=str(index)
            )
        sent = max(sent, len(history))
        prog = doc.get("progress") or {}
        key = (prog.get("tasks_sent"), prog.get("tasks_done"), doc["state"])
        if key != last_progress:
            last_progress = key
            yield ServerSentEvent(
                event="progress",
                data={
                    "scan_id": scan_id,
                    "state": doc["state"],
                    "tasks_sent": prog.get("tasks_sent", 0),
                    "tasks_done": prog.get("tasks_done", 0),
                    "nsides": prog.get("nsides", {}),
                    "rate_per_s": prog.get("rate_per_s"),
                    "eta_s": prog.get("eta_s"),
                    "best_fit": doc.get("best_fit"),
                },
            )
        if doc["state"] in TERMINAL_STATES:
            yield ServerSentEvent(
                event="end",
                data={"scan_id": scan_id, "state": doc["state"], "reason": doc.get("state_reason")},
            )
            return
        if await disconnected():
            return
        await asyncio.sleep(poll_s)
