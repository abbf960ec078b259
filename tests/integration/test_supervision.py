"""The reconciler's supervision against a real MongoDB-wire server, with a stand-in launcher
(no cluster here): a dying server is replaced a bounded number of times, then the scan fails
with the reason; a launch that keeps failing backs off and then fails, naming the error."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from pymongo import MongoClient

from skydriver_api.launchers.base import Launcher, LaunchError, LaunchSpec, WorkerCluster, WorkforceStatus
from skydriver_api.models import ScanRequest
from skydriver_api.reconciler import Reconciler
from skydriver_api.services.scans import new_scan_document, spec_of
from skydriver_api.settings import ApiSettings as Settings
from skyinfra.store import Database
from tests.conftest import AMQP_URL, MONGO_URI, make_event


class DyingServerLauncher(Launcher):
    """Every server it starts is reported dead on the next status call."""

    name = "dying"

    def __init__(self, fail_launch: bool = False) -> None:
        self.fail_launch = fail_launch
        self.servers = 0
        self.aborted: list[str] = []

    def launch_server(self, spec: LaunchSpec) -> dict[str, Any]:
        if self.fail_launch:
            raise LaunchError("quota exceeded")
        self.servers += 1
        return {"server": f"s{self.servers}"}

    def launch_workers(self, spec: LaunchSpec, cluster: WorkerCluster) -> dict[str, Any]:
        return {"workers": [f"{cluster.name}-{i}" for i in range(cluster.workers)]}

    def status(self, scan_id: str, handles: dict[str, Any]) -> WorkforceStatus:
        return WorkforceStatus(
            server="failed",
            server_reason=f"{handles['server']} exited with code 1",
            workers={"running": len(handles.get("workers", []))},
        )

    def abort(self, scan_id: str, handles: dict[str, Any]) -> None:
        self.aborted.append(scan_id)


@pytest.fixture
def settings(services: None):  # type: ignore[no-untyped-def]
    name = f"skydriver_test_{uuid.uuid4().hex[:10]}"
    yield Settings(mongodb_database=name, mongodb_uri=MONGO_URI, rabbitmq_url=AMQP_URL, server_restarts=2)
    MongoClient(MONGO_URI).drop_database(name)


async def _insert(store: Database) -> str:
    req = ScanRequest(event=make_event(), reco="dummy", nsides="8:0")
    doc = new_scan_document(req, "tester", spec_of(req))
    await store.create_scan(doc, make_event())
    return doc["_id"]


def test_dead_server_is_replaced_a_bounded_number_of_times(settings: Settings) -> None:
    launcher = DyingServerLauncher()

    async def main() -> dict[str, Any]:
        store = Database(settings.mongodb_uri.get_secret_value(), settings.mongodb_database)
        await store.ensure_indexes()
        scan_id = await _insert(store)
        reconciler = Reconciler(settings, store, launcher)
        for _ in range(6):
            await reconciler.reconcile_once()
        scan = await store.scans.get(scan_id)
        await store.close()
        return scan  # type: ignore[return-value]

    scan = asyncio.run(main())
    assert launcher.servers == 3  # the first and two replacements
    assert scan["state"] == "failed"
    assert scan["server_restarts"] == 2
    assert (
        "scan server died 3 times" in scan["state_reason"] and "s3 exited with code 1" in scan["state_reason"]
    )
    assert scan["_id"] in launcher.aborted  # the clean-up stopped its workers
    restarts = [h for h in scan["history"] if (h.get("reason") or "").startswith("server restarted")]
    assert len(restarts) == 2


def test_failing_launch_backs_off_then_fails_with_the_reason(settings: Settings) -> None:
    launcher = DyingServerLauncher(fail_launch=True)

    async def main() -> list[dict[str, Any]]:
        store = Database(settings.mongodb_uri.get_secret_value(), settings.mongodb_database)
        await store.ensure_indexes()
        scan_id = await _insert(store)
        reconciler = Reconciler(settings, store, launcher)
        seen = []
        for _ in range(5):
            await reconciler.reconcile_once()
            scan = await store.scans.get(scan_id)
            seen.append(scan)
            # let the back-off pass without waiting for it
            await store.db.scans.update_one(
                {"_id": scan_id, "state": "queued"}, {"$set": {"launch.next_attempt_at": scan["created_at"]}}
            )
        await store.close()
        return seen

    seen = asyncio.run(main())
    assert [s["launch"]["attempts"] for s in seen] == [1, 2, 3, 4, 5]
    assert [s["state"] for s in seen] == ["queued"] * 4 + ["failed"]
    assert seen[0]["launch"]["next_attempt_at"] > seen[0]["created_at"]  # backed off
    assert (
        "launch failed 5 times" in seen[-1]["state_reason"] and "quota exceeded" in seen[-1]["state_reason"]
    )
