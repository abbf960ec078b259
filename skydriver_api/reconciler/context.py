"""What every reconciler step works with, and the launch helpers several steps share."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from skydriver_api.auth import new_token
from skydriver_api.broker_identities import BrokerIdentities
from skydriver_api.launchers.base import Launcher, LaunchSpec, Resources, WorkerCluster
from skydriver_api.settings import ApiSettings
from skyinfra.backoff import Backoff
from skyinfra.store import Database, hash_token
from skyscan.records.scan import LIVE_STATES

if TYPE_CHECKING:
    from skydriver_api.reconciler.notices import NoticeChannel

log = logging.getLogger("skydriver.reconciler")


@dataclass
class Context:
    settings: ApiSettings
    db: Database
    launcher: Launcher
    wake: Callable[[], None]
    notices: NoticeChannel | None = None  # the notice topic, when SKYDRIVER_KAFKA_NOTICE_TOPIC is set
    identities: BrokerIdentities | None = None  # built from the settings when not given

    def __post_init__(self) -> None:
        if self.identities is None:
            self.identities = BrokerIdentities(self.settings)
        # launches, webhooks and notices that failed wait 2, 4, 8 ... 60 s (by default) to retry
        self.retry_backoff = Backoff(initial_s=self.settings.retry_initial_s, max_s=60.0)

    @property
    def brokers(self) -> BrokerIdentities:
        assert self.identities is not None
        return self.identities

    async def new_scan_token(self, scan_id: str) -> str:
        """A fresh system token for the scan's processes; only its hash is stored."""
        token = new_token()
        await self.db.scans.add_token_hash(scan_id, hash_token(token))
        return token

    def launch_spec(self, scan: dict[str, Any], token: str) -> LaunchSpec:
        clusters = tuple(
            WorkerCluster(c["name"], min(c["workers"], self.settings.max_workers_per_scan))
            for c in scan.get("clusters", [])
        )
        return LaunchSpec(
            scan_id=scan["_id"],
            scan_token=token,
            clusters=clusters,
            credentials=self.brokers.credentials(scan["_id"]),
            resources=Resources.from_doc(scan.get("resources")),
            priority=scan.get("priority", 0),
            api_url=self.settings.resolved_api_url,
        )

    async def fail(self, scan: dict[str, Any], reason: str) -> None:
        """Fail a live scan with the reason; its processes and queues are cleaned up next pass."""
        updated = await self.db.scans.transition(
            scan["_id"],
            "failed",
            from_states=LIVE_STATES,
            reason=reason,
            set_fields={"cleanup_pending": True},
        )
        if updated is not None:
            log.error("scan %s failed: %s", scan["_id"], reason, extra={"scan_id": scan["_id"]})
            self.wake()


def merge_handles(handles: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, list):
            handles.setdefault(key, []).extend(value)
        else:
            handles[key] = value
