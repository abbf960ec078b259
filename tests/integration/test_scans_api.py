"""Scan routes beyond the basics: idempotent submit, filters and stable pagination, rescan, more
workers, the backlog. Against a live API that launches nothing (see ``quiet_api``)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from tests.conftest import make_event, wait_until
from tests.integration.conftest import OpsApi


def _body(**extra: object) -> dict:
    return {"event": make_event(), "reco": "dummy", "nsides": "8:0", "workers": 1, **extra}


# -- idempotency -------------------------------------------------------------------------------------
def test_same_idempotency_key_returns_the_same_scan(quiet_api: OpsApi) -> None:
    with quiet_api.http("owner") as http:
        first = http.post("/api/v1/scans", json=_body(), headers={"Idempotency-Key": "alert-42"})
        again = http.post("/api/v1/scans", json=_body(), headers={"Idempotency-Key": "alert-42"})
        other = http.post("/api/v1/scans", json=_body(), headers={"Idempotency-Key": "alert-43"})
        plain = [http.post("/api/v1/scans", json=_body()).json()["scan_id"] for _ in range(2)]
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["scan_id"] == first.json()["scan_id"]
    assert other.status_code == 201 and other.json()["scan_id"] != first.json()["scan_id"]
    assert plain[0] != plain[1]
    assert quiet_api.db().scans.count_documents({"idempotency_key": "alert-42"}) == 1


def test_same_key_with_another_body_is_a_conflict_and_changes_nothing(quiet_api: OpsApi) -> None:
    with quiet_api.http("owner") as http:
        first = http.post("/api/v1/scans", json=_body(), headers={"Idempotency-Key": "k-conflict"})
        n = quiet_api.db().scans.count_documents({})
        clash = http.post("/api/v1/scans", json=_body(priority=5), headers={"Idempotency-Key": "k-conflict"})
    assert first.status_code == 201
    assert clash.status_code == 409 and "different request body" in clash.json()["detail"]
    assert quiet_api.db().scans.count_documents({}) == n


def test_idempotency_keys_are_per_owner(quiet_api: OpsApi) -> None:
    ids = set()
    for who in ("owner", "other"):
        with quiet_api.http(who) as http:
            ids.add(
                http.post("/api/v1/scans", json=_body(), headers={"Idempotency-Key": "shared"}).json()[
                    "scan_id"
                ]
            )
    assert len(ids) == 2


def test_concurrent_requests_with_one_key_make_one_scan(quiet_api: OpsApi) -> None:
    def post(_: int) -> tuple[int, str]:
        with quiet_api.http("owner") as http:
            resp = http.post("/api/v1/scans", json=_body(), headers={"Idempotency-Key": "race-1"})
            return resp.status_code, resp.json()["scan_id"]

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(post, range(6)))
    assert len({scan_id for _, scan_id in results}) == 1
    assert sorted(code for code, _ in results).count(201) == 1
    assert quiet_api.db().scans.count_documents({"idempotency_key": "race-1"}) == 1


def test_invalid_request_does_not_reserve_the_key(quiet_api: OpsApi) -> None:
    with quiet_api.http("owner") as http:
        bad = http.post(
            "/api/v1/scans", json=_body(reco="no-such-reco"), headers={"Idempotency-Key": "k-bad"}
        )
        good = http.post("/api/v1/scans", json=_body(), headers={"Idempotency-Key": "k-bad"})
    assert bad.status_code == 422 and good.status_code == 201


# -- listing -----------------------------------------------------------------------------------------
def test_pagination_is_stable_while_scans_are_added(quiet_api: OpsApi) -> None:
    marker = {"classifiers": {"batch": "paging"}}
    with quiet_api.http("owner") as http:
        before = [http.post("/api/v1/scans", json=_body(**marker)).json()["scan_id"] for _ in range(23)]
        seen: list[str] = []
        cursor = None
        stop = threading.Event()
        added: list[str] = []

        def keep_adding() -> None:
            with quiet_api.http("other") as other:
                while not stop.is_set() and len(added) < 30:
                    added.append(other.post("/api/v1/scans", json=_body(**marker)).json()["scan_id"])

        adder = threading.Thread(target=keep_adding)
        adder.start()
        try:
            while True:
                params = {"classifier": "batch:paging", "limit": 5, **({"cursor": cursor} if cursor else {})}
                resp = http.get("/api/v1/scans", params=params)
                assert resp.status_code == 200, resp.text
                page = resp.json()
                seen.extend(s["scan_id"] for s in page["scans"])
                created = [s["created_at"] for s in page["scans"]]
                assert created == sorted(created, reverse=True)
                cursor = page["next_cursor"]
                if cursor is None:
                    break
        finally:
            stop.set()
            adder.join()
    assert len(seen) == len(set(seen))  # nothing twice
    assert set(before) <= set(seen)  # nothing that existed before was skipped
    assert set(seen) <= set(before) | set(added)


def test_filters_and_sort(quiet_api: OpsApi) -> None:
    db = quiet_api.db()
    t0 = dt.datetime.now(dt.UTC)
    a = quiet_api.insert_scan(
        "carol",
        "completed",
        run_id=900,
        event_id=1,
        reco="pandel-mpe",
        classifiers={"campaign": "ic23", "n": 3},
        priority=5,
    )
    b = quiet_api.insert_scan("carol", "failed", run_id=900, event_id=2, classifiers={"campaign": "ic24"})
    c = quiet_api.insert_scan("dave", "completed", run_id=901, event_id=1, priority=-10)
    db.scans.update_one({"_id": c}, {"$set": {"created_at": t0 - dt.timedelta(days=2)}})

    def ids(**params: object) -> list[str]:
        with quiet_api.http("reader") as http:
            resp = http.get("/api/v1/scans", params={"limit": 500, **params})
        assert resp.status_code == 200, resp.text
        return [s["scan_id"] for s in resp.json()["scans"]]

    assert set(ids(owner="carol")) == {a, b}
    assert ids(run_id=900, event_id=2) == [b]
    assert set(ids(run_id=900, state="completed,failed")) == {a, b}
    assert ids(owner="carol", state="failed") == [b]
    assert ids(owner="carol", reco="pandel-mpe") == [a]
    assert ids(classifier="campaign:ic23") == [a]
    assert ids(classifier=["campaign:ic23", "n:3"]) == [a]
    assert ids(classifier="n:4") == []
    assert c not in ids(owner="dave", created_after=(t0 - dt.timedelta(hours=1)).isoformat())
    assert ids(owner="dave", created_before=(t0 - dt.timedelta(days=1)).isoformat()) == [c]
    exact = db.scans.find_one({"_id": c})["created_at"]
    assert ids(owner="dave", created_after=exact.isoformat()) == [c]  # inclusive
    assert ids(owner="dave", created_before=exact.isoformat()) == []  # exclusive
    carol_and_dave = ids(run_id=900, sort="-priority") + ids(run_id=901, sort="-priority")
    assert carol_and_dave == [a, b, c]
    assert ids(owner="carol", sort="created_at")[0] == a
    with quiet_api.http("reader") as http:
        assert http.get("/api/v1/scans", params={"state": "sleeping"}).status_code == 422
        assert http.get("/api/v1/scans", params={"classifier": "nocolon"}).status_code == 422
        assert http.get("/api/v1/scans", params={"limit": 501}).status_code == 422
        assert http.get("/api/v1/scans", params={"sort": "owner"}).status_code == 422
        assert http.get("/api/v1/scans", params={"cursor": "garbage"}).status_code == 422


def test_priority_sort_pages_without_gaps(quiet_api: OpsApi) -> None:
    made = {quiet_api.insert_scan("erin", priority=p, run_id=950) for p in (3, 1, 3, 2, 1, 3, 0)}
    seen, cursor = [], None
    with quiet_api.http("reader") as http:
        while True:
            params = {
                "run_id": 950,
                "sort": "-priority",
                "limit": 2,
                **({"cursor": cursor} if cursor else {}),
            }
            page = http.get("/api/v1/scans", params=params).json()
            seen.extend(page["scans"])
            cursor = page["next_cursor"]
            if not cursor:
                break
    assert {s["scan_id"] for s in seen} == made and len(seen) == len(made)
    assert [s["priority"] for s in seen] == [3, 3, 3, 2, 1, 1, 0]


# -- rescan ------------------------------------------------------------------------------------------
def test_rescan_with_overrides_links_to_the_origin(quiet_api: OpsApi) -> None:
    original = quiet_api.insert_scan("alice", "completed", classifiers={"campaign": "x"})
    with quiet_api.http("other") as http:
        resp = http.post(
            f"/api/v1/scans/{original}/rescan",
            json={"nsides": "8:0,64:12", "workers": 3, "priority": 7, "reco": "dummy"},
        )
        assert resp.status_code == 201, resp.text
        new = http.get(f"/api/v1/scans/{resp.json()['scan_id']}").json()
        again = http.post(f"/api/v1/scans/{new['scan_id']}/rescan", json={}).json()
    assert new["rescan_of"] == original and new["owner"] == "bob"
    assert (new["nsides"], new["priority"], new["workers"], new["classifiers"]) == (
        "8:0,64:12",
        7,
        3,
        {"campaign": "x"},
    )
    db = quiet_api.db()
    copied, source = (db.events.find_one({"_id": i})["event"] for i in (new["scan_id"], original))
    assert all(copied[k] == source[k] for k in ("run_id", "event_id", "mjd", "pulses", "truth"))
    assert [d["_id"] for d in db.scans.find({"rescan_of": original})] == [new["scan_id"]]
    second = db.scans.find_one({"_id": again["scan_id"]})
    assert second["rescan_of"] == new["scan_id"] and second["rescan_root"] == original
    assert second["nsides"] == "8:0,64:12"  # copied from its origin
    assert db.scans.find_one({"_id": original})["state"] == "completed"


def test_rescan_can_abort_the_original_only_for_its_manager(quiet_api: OpsApi) -> None:
    original = quiet_api.insert_scan("alice", "running")
    with quiet_api.http("other") as http:
        assert http.post(f"/api/v1/scans/{original}/rescan", json={"abort_original": True}).status_code == 403
    with quiet_api.http("owner") as http:
        assert http.post(f"/api/v1/scans/{original}/rescan", json={"abort_original": True}).status_code == 201
    doc = quiet_api.db().scans.find_one({"_id": original})
    assert doc["state"] == "aborted" and "for rescan" in doc["state_reason"]


def test_rescan_refuses_bad_overrides(quiet_api: OpsApi) -> None:
    original = quiet_api.insert_scan("alice", "completed")
    with quiet_api.http("owner") as http:
        assert http.post(f"/api/v1/scans/{original}/rescan", json={"nsides": "banana"}).status_code == 422
        assert http.post(f"/api/v1/scans/{original}/rescan", json={"colour": "red"}).status_code == 422
        assert http.post("/api/v1/scans/nope/rescan", json={}).status_code == 404


# -- more workers ------------------------------------------------------------------------------------
def test_add_workers_records_a_request_for_the_reconciler(quiet_api: OpsApi) -> None:
    scan = quiet_api.insert_scan("alice", "queued")
    with quiet_api.http("owner") as http:
        resp = http.post(f"/api/v1/scans/{scan}/workers", json={"workers": 3, "cluster": "osg"})
        assert resp.status_code == 202
        status = http.get(f"/api/v1/scans/{scan}").json()
    req = status["worker_requests"][0]
    assert (req["workers"], req["cluster"], req["state"], req["by"]) == (3, "osg", "pending", "alice")
    assert req["request_id"] == resp.json()["request_id"]


def test_add_workers_to_an_ended_scan_is_a_conflict(quiet_api: OpsApi) -> None:
    scan = quiet_api.insert_scan("alice", "completed")
    with quiet_api.http("admin") as http:
        resp = http.post(f"/api/v1/scans/{scan}/workers", json={"workers": 1})
        assert resp.status_code == 409 and "completed" in resp.json()["detail"]
        assert http.post(f"/api/v1/scans/{scan}/workers", json={"workers": 0}).status_code == 422


# -- backlog -----------------------------------------------------------------------------------------
def test_backlog_lists_queued_scans_in_admission_order(quiet_api: OpsApi) -> None:
    db = quiet_api.db()
    db.scans.update_many({"state": "queued"}, {"$set": {"state": "aborted"}})  # start from an empty queue
    catalog = quiet_api.insert_scan("alice", priority=-10, admit=True)
    normal_a1 = quiet_api.insert_scan("alice", priority=0, admit=True)
    normal_a2 = quiet_api.insert_scan("alice", priority=0, admit=True)
    normal_b1 = quiet_api.insert_scan("bob", priority=0, admit=True)
    realtime = quiet_api.insert_scan("bob", priority=100, admit=True)
    with quiet_api.http("reader") as http:
        data = http.get("/api/v1/backlog").json()
    order = [e["scan_id"] for e in data["entries"]]
    assert order == [realtime, normal_a1, normal_b1, normal_a2, catalog]
    first = data["entries"][0]
    assert (first["priority"], first["owner"], first["attempts"], first["position"]) == (100, "bob", 0, 0)
    assert first["waiting_for"].startswith("concurrent-scan budget full")
    assert data["active_scans"] == 1 and data["max_concurrent_scans"] == 1


# -- metrics -----------------------------------------------------------------------------------------
def test_metrics_show_backlog_and_queue_depths_without_per_scan_labels(quiet_api: OpsApi) -> None:
    for _ in range(2):
        quiet_api.insert_scan("alice", priority=100)
    catalog_scan = quiet_api.insert_scan("alice", priority=-10)
    db = quiet_api.db()
    db.scans.update_one({"_id": catalog_scan}, {"$set": {"progress.tasks_done": 37}})
    results_recorded = sum((d.get("progress") or {}).get("tasks_done", 0) for d in db.scans.find({}))
    assert results_recorded >= 37
    queued = [d["priority"] for d in db.scans.find({"state": "queued"}, {"priority": 1})]
    expected = {
        "realtime": sum(p >= 100 for p in queued),
        "catalog": sum(p < 0 for p in queued),
        "normal": sum(0 <= p < 100 for p in queued),
    }
    assert expected["realtime"] >= 2 and expected["catalog"] >= 1
    with quiet_api.http(None) as http:
        # the gauges come from a background snapshot: wait for one computed after the inserts
        inserted_at = time.time()
        text = wait_until(
            lambda: (
                (t := http.get("/metrics").text)
                and metric_values(t)["skydriver_metrics_refreshed_timestamp_seconds"] > inserted_at + 0.1
                and t
            ),
            20,
            "a metrics refresh after the inserts",
            poll_s=0.2,
        )
    values = metric_values(text)
    for cls, n in expected.items():
        assert values[f'skydriver_backlog_scans{{priority_class="{cls}"}}'] == n, (cls, values)
    assert values["skydriver_queue_depths_up"] == 1.0
    assert {k for k in values if k.startswith("skydriver_queue_messages")} == {
        f'skydriver_queue_messages{{queue="{q}"}}' for q in ("pixels", "results", "dead")
    }
    assert values['skydriver_scans{state="running"}'] == db.scans.count_documents({"state": "running"})
    assert values["skydriver_pixel_results_total"] == results_recorded  # from the scans' progress
    assert not any(scan_id in text for scan_id in (d["_id"] for d in db.scans.find({}, {"_id": 1})))


def test_rescan_without_overrides_keeps_the_worker_clusters(quiet_api: OpsApi) -> None:
    clusters = [{"name": "osg", "workers": 4}, {"name": "k8s", "workers": 2}]
    original = quiet_api.insert_scan("alice", "failed", clusters=clusters, workers=6)
    with quiet_api.http("owner") as http:
        new_id = http.post(f"/api/v1/scans/{original}/rescan").json()["scan_id"]
    doc = quiet_api.db().scans.find_one({"_id": new_id})
    assert doc["clusters"] == clusters and doc["workers"] == 6


def test_an_expired_idempotency_key_is_free_again(quiet_api: OpsApi) -> None:
    import datetime as dt

    with quiet_api.http("owner") as http:
        first = http.post("/api/v1/scans", json=_body(), headers={"Idempotency-Key": "k-old"})
        # the key was used two days ago (default retention: one day)
        quiet_api.db().idempotency_keys.update_one(
            {"key": "k-old"}, {"$set": {"created_at": dt.datetime.now(dt.UTC) - dt.timedelta(days=2)}}
        )
        again = http.post("/api/v1/scans", json=_body(), headers={"Idempotency-Key": "k-old"})
        third = http.post("/api/v1/scans", json=_body(), headers={"Idempotency-Key": "k-old"})
    assert first.status_code == 201 and again.status_code == 201
    assert again.json()["scan_id"] != first.json()["scan_id"]
    assert third.status_code == 200 and third.json()["scan_id"] == again.json()["scan_id"]


def metric_values(text: str) -> dict[str, float]:
    return {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith("skydriver_") and " " in line
    }
