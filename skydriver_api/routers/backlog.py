"""The admission queue: which queued scans start next, and why each is still waiting."""

from __future__ import annotations

from fastapi import APIRouter

from skydriver_api.api_docs import AUTH, error_responses
from skydriver_api.auth import Principal, require
from skydriver_api.dependencies import DatabaseDep, SettingsDep
from skydriver_api.models import Backlog, BacklogEntry
from skydriver_api.scheduling import QUEUE_FIELDS, admission_order, waiting_reason
from skyscan.records.scan import utcnow

router = APIRouter(prefix="/api/v1", tags=["scans"], responses=error_responses(*AUTH))


@router.get("/backlog", response_model=Backlog)
async def backlog(
    db: DatabaseDep, settings: SettingsDep, principal: Principal = require("reader")
) -> Backlog:
    """Queued scans in the order the reconciler admits them, with priority, owner, launch attempts,
    the next attempt time and what each is waiting for."""
    active = await db.scans.active({"workers": 1, "priority": 1, "owner": 1})
    queued = await db.scans.queued(QUEUE_FIELDS, limit=5000)
    n_active = len(active)
    in_use = sum(d.get("workers", 0) for d in active)
    now = utcnow()
    entries = []
    for position, scan in enumerate(admission_order(queued, active)):
        launch = scan.get("launch") or {}
        entries.append(
            BacklogEntry(
                position=position,
                scan_id=scan["_id"],
                priority=scan.get("priority", 0),
                owner=scan.get("owner", ""),
                workers=scan.get("workers", 1),
                created_at=scan["created_at"],
                attempts=launch.get("attempts", 0),
                next_attempt_at=launch.get("next_attempt_at"),
                last_error=launch.get("last_error"),
                waiting_for=waiting_reason(
                    scan,
                    now,
                    n_active=n_active,
                    workers_in_use=in_use,
                    max_scans=settings.max_concurrent_scans,
                    max_workers=settings.max_total_workers,
                ),
            )
        )
    return Backlog(
        entries=entries,
        active_scans=n_active,
        workers_in_use=in_use,
        max_concurrent_scans=settings.max_concurrent_scans,
        max_total_workers=settings.max_total_workers,
    )
