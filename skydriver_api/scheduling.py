"""Admission order: which queued scan starts next.

Higher priority first (realtime alerts 100, plain scans 0, catalog children -10). Within one
priority, owners take turns (round robin): the owner with the fewest scans already running at that
priority goes next, ties broken by who has waited longest, and each owner's own scans run oldest
first. So one owner's burst of a hundred scans does not hold back another owner's single scan.

Pure functions over scan documents: the reconciler admits in this order and ``GET /api/v1/backlog``
shows it.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict, deque
from collections.abc import Iterable
from typing import Any

QUEUE_FIELDS = {"_id": 1, "priority": 1, "owner": 1, "created_at": 1, "workers": 1, "launch": 1, "state": 1}


def admission_order(
    queued: Iterable[dict[str, Any]], active: Iterable[dict[str, Any]] = ()
) -> list[dict[str, Any]]:
    """Queued scans in the order they should start."""
    running: dict[tuple[int, str], int] = defaultdict(int)
    for scan in active:
        running[(scan.get("priority", 0), scan.get("owner", ""))] += 1
    by_priority: dict[int, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for scan in queued:
        by_priority[scan.get("priority", 0)][scan.get("owner", "")].append(scan)
    order: list[dict[str, Any]] = []
    for priority in sorted(by_priority, reverse=True):
        owners = {
            owner: deque(sorted(scans, key=lambda s: (s["created_at"], s["_id"])))
            for owner, scans in by_priority[priority].items()
        }
        served = {owner: running[(priority, owner)] for owner in owners}
        while owners:
            owner = min(owners, key=lambda o: (served[o], owners[o][0]["created_at"], o))
            order.append(owners[owner].popleft())
            served[owner] += 1
            if not owners[owner]:
                del owners[owner]
    return order


def waiting_reason(
    scan: dict[str, Any],
    now: dt.datetime,
    *,
    n_active: int,
    workers_in_use: int,
    max_scans: int,
    max_workers: int,
) -> str:
    """A short, human answer to 'why has this scan not started?'."""
    launch = scan.get("launch") or {}
    next_at = launch.get("next_attempt_at")
    if launch.get("attempts") and next_at is not None and next_at > now:
        return f"backing off after {launch['attempts']} failed launch(es) until {next_at.isoformat()}"
    if n_active >= max_scans:
        return f"concurrent-scan budget full ({n_active}/{max_scans})"
    if workers_in_use + scan.get("workers", 1) > max_workers:
        free = max(0, max_workers - workers_in_use)
        return f"worker budget: needs {scan.get('workers', 1)}, {free} of {max_workers} free"
    return "next reconciler pass"
