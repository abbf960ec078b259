"""The persistence layer against the real MongoDB-wire server: the scan repository is the one writer
of state and history, and the record repositories keep their write-once promises."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from pymongo import MongoClient

from skyinfra.store import Database, Duplicate
from skyinfra.store.skymaps import SkymapRepository
from skyscan.records.pixel_result import PixelResultRecord
from skyscan.records.scan import IllegalTransition, ScanRecord, WorkerShare
from skyscan.records.spec import ScanSpec
from tests.conftest import MONGO_URI, make_event


@pytest.fixture
def database(services: None) -> Iterator[str]:
    name = f"skydriver_test_repo_{uuid.uuid4().hex[:8]}"
    yield name
    MongoClient(MONGO_URI).drop_database(name)


def run(name: str, body: Callable[[Database], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        db = Database(MONGO_URI, name)
        try:
            await db.ensure_indexes(3600)
            return await body(db)
        finally:
            await db.close()

    return asyncio.run(main())


def new_scan() -> dict[str, Any]:
    return ScanRecord.new(
        ScanSpec(reco="dummy", nsides="8:0"),
        run_id=1,
        event_id=2,
        owner="alice",
        priority=0,
        clusters=[WorkerShare(workers=1)],
        resources={},
        classifiers={},
    ).to_doc()


def test_transitions_move_state_and_history_together(database: str) -> None:
    async def body(db: Database) -> Any:
        scan = new_scan()
        await db.create_scan(scan, make_event())
        launching = await db.scans.transition(scan["_id"], "launching", from_states=("queued",))
        again = await db.scans.transition(scan["_id"], "launching", from_states=("queued",))
        running = await db.scans.transition(scan["_id"], "running", set_fields={"server": {"pid": 1}})
        noted = await db.scans.note(scan["_id"], "server restarted after: test", inc={"server_restarts": 1})
        done = await db.scans.transition(scan["_id"], "completed", reason="all pixels fitted")
        late = await db.scans.note(scan["_id"], "too late")
        with pytest.raises(IllegalTransition):
            await db.scans.transition(scan["_id"], "running", from_states=("completed",))
        return launching, again, running, noted, done, late, await db.scans.get(scan["_id"])

    launching, again, running, noted, done, late, final = run(database, body)
    assert launching["state"] == "launching" and again is None  # someone else moved it first
    assert running["server"] == {"pid": 1}
    assert noted is True and late is False
    assert done["state"] == final["state"] == "completed" and final["state_reason"] == "all pixels fitted"
    assert [h["state"] for h in final["history"]] == [
        "queued",
        "launching",
        "running",
        "running",
        "completed",
    ]
    assert final["history"][3]["reason"] == "server restarted after: test" and final["server_restarts"] == 1


def test_bookkeeping_writers_refuse_state_and_history(database: str) -> None:
    async def body(db: Database) -> Any:
        scan = new_scan()
        await db.create_scan(scan, make_event())
        for fields in ({"state": "completed"}, {"history.0.state": "failed"}, {"state_reason": "x"}):
            with pytest.raises(ValueError, match="written by ScanRepository.transition"):
                await db.scans.save_progress(scan["_id"], fields)
        with pytest.raises(ValueError, match="written by ScanRepository.transition"):
            await db.scans.transition(scan["_id"], "launching", set_fields={"history": []})
        return await db.scans.get(scan["_id"])

    final = run(database, body)
    assert final["state"] == "queued" and len(final["history"]) == 1


def test_progress_is_written_only_while_running_and_worker_requests_only_while_live(database: str) -> None:
    async def body(db: Database) -> Any:
        scan = new_scan()
        await db.create_scan(scan, make_event())
        await db.scans.save_progress(scan["_id"], {"progress.tasks_done": 5})  # queued: ignored
        queued_request = await db.scans.request_workers(scan["_id"], {"request_id": "r1", "workers": 1})
        await db.scans.transition(scan["_id"], "running")
        await db.scans.save_progress(scan["_id"], {"progress.tasks_done": 7})
        await db.scans.transition(scan["_id"], "aborted")
        await db.scans.save_progress(scan["_id"], {"progress.tasks_done": 9})  # ended: ignored
        ended_request = await db.scans.request_workers(scan["_id"], {"request_id": "r2", "workers": 1})
        return queued_request, ended_request, await db.scans.get(scan["_id"])

    queued_request, ended_request, final = run(database, body)
    assert final["progress"]["tasks_done"] == 7
    assert queued_request is True and ended_request is False
    assert [r["request_id"] for r in final["worker_requests"]] == ["r1"]


def test_pixel_results_and_skymaps_are_written_once(database: str) -> None:
    now = dt.datetime.now(dt.UTC)

    def result(llh: float) -> PixelResultRecord:
        return PixelResultRecord(
            task_id="s1:8:0:0",
            scan_id="s1",
            nside=8,
            pixel=0,
            variation=0,
            llh=llh,
            status="ok",
            stored_at=now,
        )

    async def body(db: Database) -> Any:
        bundle = db.pixel_results.bundle([result(1.0)])
        stored = [await db.pixel_results.store(bundle), await db.pixel_results.store(bundle)]  # a retry
        # a later writer of the same task (a second server): readers keep the first result written
        await db.pixel_results.store(db.pixel_results.bundle([result(-1e6), result(2.0)]))
        first = await db.skymaps.store_final("s1", {"n": 1})
        second = await db.skymaps.store_final("s1", {"n": 2})
        n_bundles = await db.db.pixel_results.count_documents({"scan_id": "s1"})
        return (
            await db.pixel_results.for_scan("s1"),
            stored,
            n_bundles,
            first,
            second,
            await db.skymaps.get("s1"),
        )

    stored, written, n_bundles, first, second, skymap = run(database, body)
    assert [r.llh for r in stored] == [1.0]
    assert written == [1, 1] and n_bundles == 2  # the retried write of one bundle added nothing
    assert (first, second, skymap) == (True, False, {"n": 1})


def test_a_final_skymap_larger_than_one_document_is_stored_in_parts_and_read_back_whole(
    database: str,
) -> None:
    # 120,000 rows of the real shape are about 18 MB of BSON: over MongoDB's 16 MB per document
    row = {
        "nside": 128,
        "llh": 1234.5678,
        "X": 1.5,
        "Y": -2.5,
        "Z": 3.5,
        "T": 1e4,
        "E_tot": 2e4,
        "E_in": None,
    }
    rows = [{**row, "pixel": i, "variation": 0, "status": "ok"} for i in range(120_000)]
    result = {"n_pixels": len(rows), "best_fit": {"pixel": 7}, "pixels": rows}

    async def body(db: Database) -> Any:
        assert await db.skymaps.store_final("big", result)
        return await db.skymaps.get("big"), await db.db.skymap_pixels.count_documents({"scan_id": "big"})

    stored, n_parts = run(database, body)
    assert stored["pixels"] == rows and stored["best_fit"] == {"pixel": 7} and stored["n_pixels"] == 120_000
    assert n_parts == 3  # 40,000 rows a part


def test_skymap_parts_are_in_order_a_late_writer_leaves_them_and_strays_are_removed(database: str) -> None:
    rows = [{"pixel": i} for i in range(8)]

    async def body(db: Database) -> Any:
        skymaps = SkymapRepository(db.db.skymaps, db.db.skymap_pixels, pixels_per_part=3)
        # a part left by an attempt that failed before its head was written
        await db.db.skymap_pixels.insert_one({"_id": "s1:dead:0", "scan_id": "s1", "pixels": [{"pixel": -1}]})
        first = await skymaps.store_final("s1", {"n": 8, "pixels": rows})
        late = await skymaps.store_final("s1", {"n": 1, "pixels": [{"pixel": 99}]})
        parts = await db.db.skymap_pixels.count_documents({"scan_id": "s1"})
        empty = await skymaps.store_final("s2", {"n": 0, "pixels": []})
        return first, late, parts, await skymaps.get("s1"), empty, await skymaps.get("s2")

    first, late, parts, stored, empty, stored_empty = run(database, body)
    assert (first, late, parts) == (True, False, 3)  # 8 rows in parts of 3; the stray is gone
    assert stored == {"n": 8, "pixels": rows}
    assert empty is True and stored_empty == {"n": 0, "pixels": []}


def test_idempotency_keys_and_alert_identities_are_unique(database: str) -> None:
    async def body(db: Database) -> Any:
        key = {"_id": "k1", "scan_id": "s1", "created_at": dt.datetime.now(dt.UTC)}
        await db.idempotency_keys.reserve(key)
        with pytest.raises(Duplicate):
            await db.idempotency_keys.reserve({**key, "scan_id": "s2"})
        await db.idempotency_keys.release("k1", scan_id="s2")  # not its scan: kept
        kept = await db.idempotency_keys.get("k1")
        alert = {"run_id": 1, "event_id": 2, "revision": 0, "scan_id": "s1"}
        await db.alerts.insert(alert)
        with pytest.raises(Duplicate):
            await db.alerts.insert({**alert, "scan_id": "s2"})
        return kept, await db.alerts.find(1, 2, 0)

    kept, alert = run(database, body)
    assert kept["scan_id"] == "s1" and alert["scan_id"] == "s1"


# -- multi-document writes: all or nothing -------------------------------------------------------------
TOO_LARGE_FOR_THE_DATABASE = "x" * (17 * 1024 * 1024)  # over MongoDB's 16 MiB per document


def _stored(name: str) -> dict[str, int]:
    db = MongoClient(MONGO_URI)[name]
    return {c: db[c].count_documents({}) for c in ("catalogs", "events", "scans")}


def _catalog(n: int) -> tuple[dict[str, Any], dict[str, dict[str, Any]], list[dict[str, Any]]]:
    scans = [new_scan() for _ in range(n)]
    events = {s["_id"]: make_event(event_id=i) for i, s in enumerate(scans)}
    catalog = {"_id": "cat" + uuid.uuid4().hex[:20], "n_events": n, "scan_ids": [s["_id"] for s in scans]}
    return catalog, events, scans


@pytest.mark.parametrize("fails", ["events", "scans"])
def test_a_catalog_whose_later_write_fails_leaves_nothing(database: str, fails: str) -> None:
    """The database really refuses the second write (an event over its document limit) or the third
    (a scan over it): the catalog, the events and the scans written before are all taken back."""
    catalog, events, scans = _catalog(3)
    if fails == "events":
        events[scans[1]["_id"]]["pad"] = TOO_LARGE_FOR_THE_DATABASE
    else:
        scans[1]["classifiers"] = {"pad": TOO_LARGE_FOR_THE_DATABASE}

    async def body(db: Database) -> None:
        with pytest.raises(Exception) as refused:
            await db.create_catalog(catalog, events, scans)
        assert "too large" in str(refused.value)

    run(database, body)
    assert _stored(database) == {"catalogs": 0, "events": 0, "scans": 0}


def test_a_stored_catalog_is_released_for_launch_only_once_whole(database: str) -> None:
    catalog, events, scans = _catalog(2)

    async def body(db: Database) -> list[dict[str, Any]]:
        await db.create_catalog(catalog, events, scans)
        return await db.scans.queued(due_by=dt.datetime.now(dt.UTC))

    due = run(database, body)
    assert sorted(d["_id"] for d in due) == sorted(s["_id"] for s in scans)
    assert _stored(database) == {"catalogs": 1, "events": 2, "scans": 2}


def test_a_scan_that_cannot_be_written_takes_its_event_back(database: str) -> None:
    scan = new_scan()
    scan["classifiers"] = {"pad": TOO_LARGE_FOR_THE_DATABASE}

    async def body(db: Database) -> None:
        with pytest.raises(Exception, match="too large"):
            await db.create_scan(scan, make_event())

    run(database, body)
    assert _stored(database) == {"catalogs": 0, "events": 0, "scans": 0}


def test_a_second_writer_of_the_same_scan_id_leaves_the_first_scan_alone(database: str) -> None:
    """Concurrent copies of one alert write one scan id; the copy that loses must not undo the
    scan the winner stored (a burst of one alert once ended with no scan at all)."""
    scan = new_scan()

    async def body(db: Database) -> dict[str, Any] | None:
        await db.create_scan(scan, make_event())
        with pytest.raises(Duplicate):
            await db.create_scan({**scan, "owner": "mallory"}, make_event())
        return await db.scans.get(scan["_id"])

    kept = run(database, body)
    assert kept is not None and kept["owner"] == "alice"
    assert _stored(database) == {"catalogs": 0, "events": 1, "scans": 1}
