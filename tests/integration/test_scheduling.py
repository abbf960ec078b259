"""Admission: priority, owner fairness, budgets, per-scan launch back-off, more workers on request.

The reconciler runs for real against the MongoDB-wire server; the launcher is a fake implementing
the Launcher interface (it stands in for a cluster: it records what it was asked to start)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from pymongo import MongoClient

from skydriver_api.launchers.base import Launcher, LaunchError, LaunchSpec, WorkerCluster, WorkforceStatus
from skydriver_api.reconciler import Reconciler
from skydriver_api.scheduling import admission_order
from skydriver_api.settings import ApiSettings as Settings
from skyinfra.store import Database as Store
from tests.conftest import MONGO_URI


class FakeLauncher(Launcher):
    """Records launches; raises for scans listed in ``failing``; everything it started 'runs'."""

    name = "fake"

    def __init__(self, failing: set[str] | None = None) -> None:
        self.failing = failing or set()
        self.servers: list[str] = []
        self.workers: list[tuple[str, str, int]] = []
        self.aborted: list[str] = []

    def launch_server(self, spec: LaunchSpec) -> dict[str, Any]:
        if spec.scan_id in self.failing:
            raise LaunchError(f"quota exceeded for {spec.scan_id[:6]}")
        self.servers.append(spec.scan_id)
        return {"server": f"srv-{spec.scan_id}"}

    def launch_workers(self, spec: LaunchSpec, cluster: WorkerCluster) -> dict[str, Any]:
        self.workers.append((spec.scan_id, cluster.name, cluster.workers))
        return {"worker_jobs": [f"w-{spec.scan_id}-{len(self.workers)}"]}

    def status(self, scan_id: str, handles: dict[str, Any]) -> WorkforceStatus:
        return WorkforceStatus(server="running", workers={"running": 1})

    def abort(self, scan_id: str, handles: dict[str, Any]) -> None:
        self.aborted.append(scan_id)


@pytest.fixture
def database(services: None) -> Iterator[str]:
    name = f"skydriver_test_sched_{uuid.uuid4().hex[:8]}"
    yield name
    MongoClient(MONGO_URI).drop_database(name)


def settings_for(database: str, **kw: Any) -> Settings:
    return Settings(mongodb_uri=MONGO_URI, mongodb_database=database, **{"alert_workers": 1, **kw})


_clock = [dt.datetime(2026, 1, 1, tzinfo=dt.UTC)]


def scan_doc(
    owner: str = "alice", priority: int = 0, workers: int = 1, state: str = "queued"
) -> dict[str, Any]:
    _clock[0] += dt.timedelta(seconds=1)  # strictly increasing creation times
    t = _clock[0]
    return {
        "_id": uuid.uuid4().hex,
        "state": state,
        "owner": owner,
        "priority": priority,
        "created_at": t,
        "updated_at": t,
        "history": [{"state": state, "at": t, "reason": None}],
        "run_id": 1,
        "event_id": 2,
        "reco": "dummy",
        "nsides": "8:0",
        "strategy": "progression",
        "classifiers": {},
        "clusters": [{"name": "default", "workers": workers}],
        "workers": workers,
        "resources": {},
        "progress": {},
        "token_hashes": [],
        "launch": {"attempts": 0, "handles": {}, "last_error": None, "next_attempt_at": t},
    }


def run(
    database: str,
    launcher: FakeLauncher,
    body: Callable[[Reconciler, Store], Awaitable[Any]],
    **settings: Any,
) -> Any:
    async def main() -> Any:
        s = settings_for(database, **{"max_launch_attempts": 3, **settings})
        store = Store(s.mongodb_uri.get_secret_value(), s.mongodb_database)
        try:
            await store.ensure_indexes()
            return await body(Reconciler(s, store, launcher), store)
        finally:
            await store.close()

    return asyncio.run(main())


def insert(database: str, *docs: dict[str, Any]) -> list[str]:
    MongoClient(MONGO_URI, tz_aware=True)[database].scans.insert_many(list(docs))
    return [d["_id"] for d in docs]


def states(database: str) -> dict[str, str]:
    return {d["_id"]: d["state"] for d in MongoClient(MONGO_URI)[database].scans.find({}, {"state": 1})}


async def once(reconciler: Reconciler, store: Store) -> None:
    await reconciler.reconcile_once()


# -- admission order (pure) --------------------------------------------------------------------------
def test_admission_order_priority_then_owners_in_turn() -> None:
    a = [scan_doc("alice") for _ in range(3)]
    b = [scan_doc("bob") for _ in range(2)]
    c = scan_doc("carol")
    rt = scan_doc("dave", priority=100)
    cat = scan_doc("erin", priority=-10)
    order = admission_order([cat, *a, *b, c, rt])
    assert [s["_id"] for s in order] == [
        rt["_id"],
        a[0]["_id"],
        b[0]["_id"],
        c["_id"],
        a[1]["_id"],
        b[1]["_id"],
        a[2]["_id"],
        cat["_id"],
    ]


def test_admission_order_serves_owners_with_fewer_running_scans_first() -> None:
    a1, b1 = scan_doc("alice"), scan_doc("bob")
    running = [scan_doc("alice", state="running"), scan_doc("alice", state="running")]
    assert [s["owner"] for s in admission_order([a1, b1], running)] == ["bob", "alice"]


# -- reconciler --------------------------------------------------------------------------------------
def test_realtime_scan_starts_before_earlier_catalog_scans_when_the_worker_budget_frees(
    database: str,
) -> None:
    busy = insert(database, scan_doc("bob", workers=4, state="running"))[0]
    catalog = insert(database, *[scan_doc("carol", priority=-10, workers=2) for _ in range(3)])
    realtime = insert(database, scan_doc("icecube-realtime", priority=100, workers=4))[0]
    launcher = FakeLauncher()
    kw = {"max_total_workers": 4, "max_concurrent_scans": 10}
    run(database, launcher, once, **kw)
    assert launcher.servers == []  # budget full: nothing starts, not even a small catalog scan
    MongoClient(MONGO_URI)[database].scans.update_one({"_id": busy}, {"$set": {"state": "completed"}})
    run(database, launcher, once, **kw)
    assert launcher.servers == [realtime]  # the realtime scan takes the freed workers first
    st = states(database)
    assert st[realtime] == "launching" and all(st[c] == "queued" for c in catalog)


def test_catalog_scans_use_spare_capacity(database: str) -> None:
    insert(database, scan_doc("bob", workers=2, state="running"))
    catalog = insert(database, *[scan_doc("carol", priority=-10, workers=1) for _ in range(3)])
    launcher = FakeLauncher()
    run(database, launcher, once, max_total_workers=4, max_concurrent_scans=10)
    assert launcher.servers == catalog[:2]  # 2 spare workers: two catalog scans, in order


def test_owners_are_served_round_robin_within_a_priority(database: str) -> None:
    alice = insert(database, *[scan_doc("alice") for _ in range(4)])
    bob = insert(database, *[scan_doc("bob") for _ in range(2)])
    launcher = FakeLauncher()
    run(database, launcher, once, max_concurrent_scans=4, max_total_workers=100)
    assert launcher.servers == [alice[0], bob[0], alice[1], bob[1]]


def test_a_launch_that_always_fails_does_not_delay_the_others(database: str) -> None:
    bad = insert(database, scan_doc("alice", priority=50))[0]
    good = insert(database, *[scan_doc("bob") for _ in range(3)])
    launcher = FakeLauncher(failing={bad})
    # a back-off long enough that a slow machine cannot outrun it between the two passes
    kw = {"max_concurrent_scans": 10, "max_total_workers": 100, "retry_initial_s": 30.0}
    before = dt.datetime.now(dt.UTC)
    run(database, launcher, once, **kw)
    assert launcher.servers == good  # the others launched in the very same pass
    db = MongoClient(MONGO_URI, tz_aware=True)[database]
    doc = db.scans.find_one({"_id": bad})
    assert doc["state"] == "queued" and doc["launch"]["attempts"] == 1
    assert doc["launch"]["next_attempt_at"] >= before + dt.timedelta(seconds=60)  # 30 s, doubled once
    assert "quota exceeded" in doc["launch"]["last_error"]
    run(database, launcher, once, **kw)
    assert db.scans.find_one({"_id": bad})["launch"]["attempts"] == 1  # still backing off
    for _ in range(2):  # let the back-off pass (as time would) and retry until the limit (3)
        db.scans.update_one({"_id": bad}, {"$set": {"launch.next_attempt_at": dt.datetime.now(dt.UTC)}})
        run(database, launcher, once, **kw)
    doc = db.scans.find_one({"_id": bad})
    assert doc["state"] == "failed"
    assert doc["state_reason"].startswith("launch failed 3 times; last: LaunchError: quota exceeded")
    assert [h["state"] for h in doc["history"]] == [
        "queued",
        "launching",
        "queued",
        "launching",
        "queued",
        "launching",
        "failed",
    ]
    assert launcher.servers == good


def test_worker_requests_are_served_through_launch_workers(database: str) -> None:
    scan = insert(database, scan_doc("alice", workers=2))[0]
    launcher = FakeLauncher()
    db = MongoClient(MONGO_URI, tz_aware=True)[database]
    db.scans.update_one(
        {"_id": scan},
        {
            "$push": {
                "worker_requests": {
                    "request_id": "r1",
                    "workers": 3,
                    "cluster": "osg",
                    "state": "pending",
                    "by": "alice",
                }
            }
        },
    )
    run(database, launcher, once)  # launched and, in the same pass, the request served
    assert launcher.workers == [(scan, "default", 2), (scan, "osg", 3)]
    doc = db.scans.find_one({"_id": scan})
    assert doc["workers"] == 5 and doc["worker_requests"] == []
    assert doc["worker_requests_done"][0]["state"] == "served"
    assert len(doc["launch"]["handles"]["worker_jobs"]) == 2


def test_a_failing_worker_request_is_recorded_and_the_scan_goes_on(database: str) -> None:
    scan = insert(database, scan_doc("alice", state="running"))[0]
    db = MongoClient(MONGO_URI, tz_aware=True)[database]
    db.scans.update_one(
        {"_id": scan},
        {
            "$set": {"launch.launched_at": dt.datetime.now(dt.UTC), "launch.handles": {"server": "s"}},
            "$push": {
                "worker_requests": {
                    "request_id": "r2",
                    "workers": 1,
                    "cluster": "nowhere",
                    "state": "pending",
                }
            },
        },
    )

    class NoWorkers(FakeLauncher):
        def launch_workers(self, spec: LaunchSpec, cluster: WorkerCluster) -> dict[str, Any]:
            raise LaunchError(f"no cluster named {cluster.name}")

    run(database, NoWorkers(), once)
    doc = db.scans.find_one({"_id": scan})
    assert doc["state"] == "running" and doc["worker_requests"] == [] and doc["workers"] == 1
    assert doc["worker_requests_done"][0]["error"] == "LaunchError: no cluster named nowhere"


# -- budgets hold whatever reaches the database ------------------------------------------------------
def _request(database: str, scan_id: str, request_id: str, workers: int) -> None:
    MongoClient(MONGO_URI, tz_aware=True)[database].scans.update_one(
        {"_id": scan_id},
        {
            "$set": {"launch.launched_at": dt.datetime.now(dt.UTC), "launch.handles": {"server": "s"}},
            "$push": {
                "worker_requests": {"request_id": request_id, "workers": workers, "cluster": "default"}
            },
        },
    )


def test_worker_requests_never_exceed_the_budgets(database: str) -> None:
    """Requests written straight to the database (past the API's checks): one over the scan's limit
    is refused with the limit; one over the free budget waits; nothing starts beyond either."""
    full = insert(database, scan_doc("alice", workers=2, state="running"))[0]
    _request(database, full, "too-many", 13)
    _request(database, full, "one-more", 1)
    launcher = FakeLauncher()
    run(database, launcher, once, max_total_workers=3, max_workers_per_scan=3)
    db = MongoClient(MONGO_URI, tz_aware=True)[database]
    doc = db.scans.find_one({"_id": full})
    assert [(r["request_id"], r["state"]) for r in doc["worker_requests_done"]] == [
        ("too-many", "refused"),
        ("one-more", "served"),
    ]
    assert "at most 3" in doc["worker_requests_done"][0]["error"]
    assert launcher.workers == [(full, "default", 1)] and doc["workers"] == 3  # within the budget of 3
    other = insert(database, scan_doc("bob", workers=1, state="running"))[0]
    _request(database, other, "waits", 1)
    run(database, launcher, once, max_total_workers=3, max_workers_per_scan=3)
    assert launcher.workers == [(full, "default", 1)]  # the budget is full: nothing more started
    assert [r["request_id"] for r in db.scans.find_one({"_id": other})["worker_requests"]] == ["waits"]


def test_a_realtime_scan_waiting_for_workers_is_told_how_many_are_free(database: str) -> None:
    """The backlog once said "needs 1, -9998 of 2 free": in use never passes the budget, and the
    free count is never negative even for scans launched under an older, larger budget."""
    from skydriver_api.scheduling import waiting_reason

    insert(database, scan_doc("bob", workers=10000, state="running"))  # from before the budget held
    realtime = insert(database, scan_doc("icecube-realtime", priority=100, workers=1))[0]
    launcher = FakeLauncher()
    run(database, launcher, once, max_total_workers=2, max_concurrent_scans=10)
    assert launcher.servers == []  # the budget is spent: the realtime scan waits, nothing overshoots
    scan = MongoClient(MONGO_URI, tz_aware=True)[database].scans.find_one({"_id": realtime})
    reason = waiting_reason(
        scan, dt.datetime.now(dt.UTC), n_active=1, workers_in_use=10000, max_scans=10, max_workers=2
    )
    assert reason == "worker budget: needs 1, 0 of 2 free"


def test_a_scan_larger_than_the_budget_fails_instead_of_waiting_forever(database: str) -> None:
    big = insert(database, scan_doc("alice", workers=5))[0]
    launcher = FakeLauncher()
    run(database, launcher, once, max_total_workers=4)
    doc = MongoClient(MONGO_URI, tz_aware=True)[database].scans.find_one({"_id": big})
    assert launcher.servers == [] and doc["state"] == "failed"
    assert "needs 5 workers, more than a scan may have (4" in doc["state_reason"]
