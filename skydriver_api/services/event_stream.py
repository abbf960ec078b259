"""The event stream of a scan: every history entry (``state``, id = its index), progress snapshots
when the counts change, and ``end`` once the scan is terminal. Read from MongoDB by polling, so no
broker connection per client."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from skyinfra.store import Database
from skyscan.records.scan import TERMINAL_STATES

KEEP_ALIVE_S = 15.0
_FIELDS = {"state": 1, "state_reason": 1, "history": 1, "progress": 1, "best_fit": 1}


def sse(event: str, data: dict[str, Any], event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, default=_json_default)}\n\n"


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


async def scan_events(
    db: Database,
    scan_id: str,
    first: int,
    poll_s: float,
    disconnected: Callable[[], Awaitable[bool]],
) -> AsyncIterator[str]:
    sent = first
    last_progress: tuple[Any, ...] | None = None
    quiet_since = asyncio.get_running_loop().time()
    yield "retry: 2000\n\n"
    while True:
        doc = await db.scans.get(scan_id, _FIELDS)
        if doc is None:
            yield sse("error", {"detail": f"scan {scan_id} was deleted"})
            return
        history = doc.get("history", [])
        emitted = False
        for index in range(sent, len(history)):
            entry = {k: v for k, v in history[index].items() if v is not None}
            yield sse("state", {"scan_id": scan_id, "index": index, **entry}, event_id=index)
            emitted = True
        sent = max(sent, len(history))
        prog = doc.get("progress") or {}
        key = (prog.get("tasks_sent"), prog.get("tasks_done"), doc["state"])
        if key != last_progress:
            last_progress = key
            yield sse(
                "progress",
                {
                    "scan_id": scan_id,
                    "state": doc["state"],
                    "tasks_sent": prog.get("tasks_sent", 0),
                    "tasks_done": prog.get("tasks_done", 0),
                    "rate_per_s": prog.get("rate_per_s"),
                    "eta_s": prog.get("eta_s"),
                    "best_fit": doc.get("best_fit"),
                },
            )
            emitted = True
        if doc["state"] in TERMINAL_STATES:
            yield sse("end", {"scan_id": scan_id, "state": doc["state"], "reason": doc.get("state_reason")})
            return
        now = asyncio.get_running_loop().time()
        if emitted:
            quiet_since = now
        elif now - quiet_since > KEEP_ALIVE_S:
            quiet_since = now
            yield ": keep-alive\n\n"
        if await disconnected():
            return
        await asyncio.sleep(poll_s)
