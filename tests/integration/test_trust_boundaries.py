"""The attacks of issue 12, each reproduced against a live API and refused, with nothing changed.

The API here runs as production would: test recos off except ``dummy`` (named explicitly, so the
scans stay cheap), a worker budget of 2, a body limit of 1 MiB. Every test checks the refusal and
that no record was written; the ones that launch something check the processes too. (The broker
attacks, forged results and tasks over a shared broker identity, are the per-scan broker
credentials' part, not here.)
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import select
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pika
import pytest

from skyscan.wire import Direction, PixelTask, TaskBatch, encode, queue_names, task_id
from tests.conftest import AMQP_URL, make_event, signed, start_api, stop_api, wait_until
from tests.integration.conftest import OpsApi, ops_api
from tests.support.stored_results import stored_count

BODY_LIMIT = 1024 * 1024


@pytest.fixture(scope="module")
def guarded(services: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpsApi]:
    with ops_api(
        tmp_path_factory.mktemp("guarded"),
        test_recos="false",
        enabled_recos='["dummy", "pandel-mpe"]',
        max_total_workers="2",
        alert_workers="1",
        max_concurrent_scans="2",
        max_event_bytes=str(BODY_LIMIT),
    ) as ops:
        yield ops


def counts(ops: OpsApi) -> dict[str, int]:
    db = ops.db()
    return {c: db[c].count_documents({}) for c in ("scans", "events", "catalogs", "idempotency_keys")}


def body(**extra: Any) -> dict[str, Any]:
    return {"event": make_event(), "reco": "dummy", "nsides": "8:0", "workers": 1, **extra}


def refused(ops: OpsApi, who: str, path: str, payload: Any, status: int, says: str) -> None:
    before = counts(ops)
    with ops.http(who) as http:
        resp = http.post(path, json=payload)
    assert resp.status_code == status, resp.text
    assert says in resp.json()["detail"], resp.json()["detail"]
    assert counts(ops) == before


# -- no request field chooses code, images or credentials ---------------------------------------------
def test_a_request_cannot_choose_the_image(guarded: OpsApi) -> None:
    evil = {"cpus": 1, "image": "attacker.example.org/steal-the-secrets:latest"}
    refused(guarded, "owner", "/api/v1/scans", body(resources=evil), 422, "resources")
    refused(guarded, "admin", "/api/v1/scans", body(resources=evil), 422, "resources")  # nobody may
    refused(guarded, "owner", "/api/v1/scans", body(profile="gpu"), 422, "known: default")
    refused(guarded, "owner", "/api/v1/scans", body(clusters=[{"name": "x", "workers": 1}]), 422, "known")


def test_test_recos_are_refused_where_not_enabled(guarded: OpsApi) -> None:
    refused(guarded, "owner", "/api/v1/scans", body(reco="crash-dummy"), 422, "'crash-dummy' is not enabled")
    with guarded.http("owner") as http:
        listed = {r["name"] for r in http.get("/api/v1/recos").json()["recos"]}
    assert listed == {"dummy", "pandel-mpe"}


def test_a_worker_refuses_a_task_whose_reco_is_not_enabled(guarded: OpsApi) -> None:
    """A crash-dummy task on the scan's queue, even one signed with the scan's key (a holder of it
    went wrong), is refused by a worker where that reco is not enabled: it lives on, and the scan
    completes with every pixel fitted. Unsigned tasks: test_broker_identities.py."""
    with guarded.http("owner") as http:
        scan_id = http.post("/api/v1/scans", json=body(nsides="1:0", reco_options={"delay_s": 0.3})).json()[
            "scan_id"
        ]
    worker = wait_until(lambda: _pids(guarded, scan_id, "worker_pids"), 60, "a worker")[0]
    wait_until(lambda: stored_count(guarded.db(), scan_id) >= 1, 60, "a fit")
    poison = TaskBatch(
        scan_id=scan_id,
        reco="crash-dummy",
        options={"nside": 1, "kill_worker_pixels": list(range(12))},
        tasks=[
            PixelTask(
                task_id=task_id(scan_id, 1, 3, 7),  # a variation the scan never asked for
                nside=1,
                pixel=3,
                variation=7,
                direction=Direction(ra=0.1, dec=0.2, zenith=1.0, azimuth=1.0),
            )
        ],
    )
    message = encode(poison)  # signed: as if one of the scan's own identities sent it
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    conn.channel().basic_publish(
        "", queue_names(scan_id)["pixels"], message, signed(guarded.api.scan_key(scan_id), message)
    )
    conn.close()
    with guarded.api.client(guarded.tokens["owner"]) as client:
        status = client.wait(scan_id, timeout_s=180)
    assert status["state"] == "completed", status
    assert status["failed_pixels"] == 0
    logs = guarded.api.scan_logs(scan_id)
    assert "reco 'crash-dummy' is not enabled on this worker" in logs["worker-0.log"]
    assert [n for n in logs if n.startswith("worker")] == ["worker-0.log"]  # it never died
    assert not any(str(worker) in r for r in status["workforce"]["reasons"])


# -- budgets that hold -------------------------------------------------------------------------------
def test_worker_budget_holds_over_clusters_and_add_workers(guarded: OpsApi) -> None:
    three = body(clusters=[{"name": "default", "workers": 1}] * 3)
    refused(guarded, "owner", "/api/v1/scans", three, 422, "at most 2 workers")
    refused(guarded, "owner", "/api/v1/scans", body(workers=15), 422, "at most 2 workers")
    scan = guarded.insert_scan("alice", "queued", workers=2, clusters=[{"name": "default", "workers": 2}])
    try:
        for _ in range(3):
            refused(
                guarded, "owner", f"/api/v1/scans/{scan}/workers", {"workers": 1}, 422, "1 more on top of 2"
            )
        assert guarded.db().scans.find_one({"_id": scan}).get("worker_requests", []) == []
    finally:
        with guarded.http("owner") as http:
            assert http.delete(f"/api/v1/scans/{scan}").status_code == 202


def test_realtime_priority_is_for_alerts_and_admins(guarded: OpsApi) -> None:
    refused(guarded, "owner", "/api/v1/scans", body(priority=100), 403, "reserved for realtime alerts")
    original = guarded.insert_scan("alice", "completed")
    refused(guarded, "owner", f"/api/v1/scans/{original}/rescan", {"priority": 100}, 403, "reserved")
    catalog = {"events": [make_event()], "reco": "dummy", "nsides": "8:0", "priority": 100}
    refused(guarded, "owner", "/api/v1/catalogs", catalog, 403, "reserved")
    with guarded.http("admin") as http:
        resp = http.post("/api/v1/scans", json=body(priority=100))
        assert resp.status_code == 201
        assert http.delete(f"/api/v1/scans/{resp.json()['scan_id']}").status_code == 202
    stored = guarded.db().scans.find_one({"_id": resp.json()["scan_id"]})
    assert stored["priority"] == 100 and stored["owner"] == "root"


def test_task_count_is_bounded_at_submission(guarded: OpsApi) -> None:
    refused(guarded, "owner", "/api/v1/scans", body(nsides="256:0"), 422, "limit of 100,000 tasks per step")
    refused(guarded, "owner", "/api/v1/scans", body(nsides="8:0,1024:100000"), 422, "tasks per step")


# -- every bad input a 4xx, nothing written -----------------------------------------------------------
def _chunked_post(ops: OpsApi, path: str, total: int) -> tuple[int, dict[str, Any]]:
    """POST ``total`` bytes with Transfer-Encoding: chunked (no Content-Length) over a raw socket,
    stopping as soon as the server has answered."""
    host, port = ops.url.removeprefix("http://").split(":")
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {ops.tokens['owner']}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    piece = b"x" * (64 * 1024)
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(head + b"8\r\n" + b'{"pad":"' + b"\r\n")
        sent = 0
        try:
            while sent < total and not select.select([sock], [], [], 0)[0]:
                sock.sendall(chunk)
                sent += len(piece)
            if sent >= total:
                sock.sendall(b'2\r\n"}\r\n0\r\n\r\n')
        except (BrokenPipeError, ConnectionResetError):
            pass  # it answered and closed while we were still sending: the answer was read first
        data = b""
        while True:
            more = sock.recv(65536)
            if not more:
                break
            data += more
            head_text, sep, payload = data.partition(b"\r\n\r\n")
            if sep and len(payload) >= _length(head_text):
                break
    head_text, _, payload = data.partition(b"\r\n\r\n")
    return int(head_text.split()[1]), json.loads(payload[: _length(head_text)])


def _length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


@pytest.mark.parametrize("size", [BODY_LIMIT + 1, 17 * 1024 * 1024, 100 * 1024 * 1024])
def test_body_limit_holds_for_chunked_bodies(guarded: OpsApi, size: int) -> None:
    before = counts(guarded)
    for path in ("/api/v1/scans", "/api/v1/catalogs"):
        status, answer = _chunked_post(guarded, path, size)
        assert status == 413 and f"exceeds the limit of {BODY_LIMIT} bytes" in answer["detail"]
    assert counts(guarded) == before
    with guarded.http("owner") as http:
        assert http.get("/api/v1/recos").status_code == 200  # and the API goes on


def test_an_event_too_large_for_the_database_is_refused_and_the_catalog_left_out(
    services: None, tmp_path: Path
) -> None:
    """A catalog whose second event would make a stored document over MongoDB's 16 MiB: 413 naming
    it, and neither the catalog nor the first event nor any scan is stored."""
    with ops_api(tmp_path) as ops:  # the default body limit of 16 MiB: the JSON is smaller than that
        big = make_event(n_pulses=1)
        pulse = {"x": 0, "y": 0, "z": 0, "time": 0, "charge": 1, "string": 1, "om": 1, "hlc": True}
        big["pulses"] = [pulse] * 190_000  # 12.6 MB as JSON, over 19 MB as BSON
        assert len(json.dumps(big)) < 16 * 1024 * 1024
        lines = b"\n".join(json.dumps(e).encode() for e in (make_event(), big, make_event()))
        before = counts(ops)
        with ops.http("owner") as http:
            resp = http.post(
                "/api/v1/catalogs",
                content=lines,
                params={"reco": "dummy", "nsides": "8:0"},
                headers={"Content-Type": "application/x-ndjson"},
                timeout=120,
            )
            assert resp.status_code == 413, resp.text
            assert "events[1]" in resp.json()["detail"] and "16,777,216" in resp.json()["detail"]
            assert counts(ops) == before
            resp = http.post("/api/v1/scans", json=body(event=big), timeout=120)
            assert resp.status_code == 413 and "the event" in resp.json()["detail"]
        assert counts(ops) == before


def test_a_cursor_cannot_carry_query_operators(guarded: OpsApi) -> None:
    for _ in range(3):
        guarded.insert_scan("alice", "completed")
    with guarded.http("reader") as http:
        page = http.get("/api/v1/scans", params={"limit": 1}).json()
        assert page["next_cursor"]
        # the keyset condition puts the first values in equality clauses: {"priority": {"$gt": ...}}
        # would have matched every scan
        operators = ["-priority", [{"$gt": -1000}, "2100-01-01T00:00:00+00:00", {"$ne": None}]]
        forged = base64.urlsafe_b64encode(json.dumps(operators).encode()).decode()
        signature = page["next_cursor"].partition(".")[2]
        for cursor in (forged, f"{forged}.{signature}", page["next_cursor"][:-2] + "AA"):
            resp = http.get("/api/v1/scans", params={"cursor": cursor, "sort": "-priority"})
            assert resp.status_code == 422 and "not a cursor this API returned" in resp.json()["detail"]
        assert (
            http.get("/api/v1/scans", params={"limit": 1, "cursor": page["next_cursor"]}).status_code == 200
        )


# -- unauthenticated endpoints cannot starve the service ----------------------------------------------
def test_a_metrics_storm_neither_starves_the_reconciler_nor_reaches_the_database(guarded: OpsApi) -> None:
    """150 clients keep calling /metrics (unauthenticated) while a scan is submitted: the metrics
    make no database query of their own beyond the scheduled refresh (counted by the database's
    profiler), /readyz keeps answering 200, and the scan is launched at once. (Before: every
    request ran the metrics' queries and a broker connection; readiness failed, launches waited.)"""
    db = guarded.db()
    db.command("profile", 2)  # record every operation on this test's database
    started = dt.datetime.now(dt.UTC)
    storming = threading.Event()
    storming.set()

    def hammer(_: int) -> int:
        n = 0
        with httpx.Client(base_url=guarded.url, timeout=60) as client:
            while storming.is_set():
                client.get("/metrics")
                n += 1
        return n

    try:
        with ThreadPoolExecutor(max_workers=150) as pool:
            storm = [pool.submit(hammer, i) for i in range(150)]
            try:
                with guarded.http("owner") as http:
                    scan_id = http.post("/api/v1/scans", json=body(nsides="1:0")).json()["scan_id"]
                ready = [httpx.get(f"{guarded.url}/readyz", timeout=60).status_code for _ in range(6)]
                launched = wait_until(
                    lambda: db.scans.find_one({"_id": scan_id, "launch.launched_at": {"$exists": 1}}),
                    60,
                    "the launch",
                )
            finally:
                storming.clear()
            served = sum(f.result() for f in storm)
        ended = dt.datetime.now(dt.UTC)
    finally:
        db.command("profile", 0)
    # the metrics' own query (the per-state count) ran on its schedule, every 15 s, not per request
    metric_queries = db["system.profile"].count_documents(
        {"command.aggregate": "scans", "ts": {"$gte": started.replace(tzinfo=None), "$lte": ended}}
    )
    assert served > 300  # the storm really happened
    assert metric_queries <= 2 + (ended - started).total_seconds() / 15, (metric_queries, served)
    assert set(ready) == {200}, ready
    # the reconciler runs beside the request handling: the launch came at once
    assert (launched["launch"]["launched_at"] - launched["created_at"]).total_seconds() < 5


# -- scan tokens end with their scan ------------------------------------------------------------------
def test_a_scan_token_expires_with_its_scan_and_its_file_is_deleted(guarded: OpsApi) -> None:
    with guarded.http("owner") as http:
        scan_id = http.post("/api/v1/scans", json=body(nsides="1:0")).json()["scan_id"]
    token_file = guarded.api.runtime_dir / scan_id / "scan-token"
    token = wait_until(lambda: token_file.exists() and token_file.read_text().strip(), 60, "the token")
    with guarded.api.client(guarded.tokens["owner"]) as client:
        assert client.wait(scan_id, timeout_s=120)["state"] == "completed"
    resp = httpx.get(
        f"{guarded.url}/api/v1/scans/{scan_id}/event", headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status_code == 401 and "expired when the scan ended" in resp.json()["detail"]
    db = guarded.db()
    wait_until(lambda: db.scans.find_one({"_id": scan_id})["launch"].get("reaped"), 60, "the reaper")
    assert db.scans.find_one({"_id": scan_id})["token_hashes"] == []
    assert not token_file.exists()


# -- poison pixels with any worker count; fit processes end with their worker ---------------------------
def test_a_poison_pixel_with_a_single_worker_is_dead_lettered(services: None, tmp_path: Path) -> None:
    """The task kills every worker that takes it; with one worker the reconciler relaunches it until
    the broker's delivery limit (4) dead-letters the task, and the scan completes without it."""
    api = start_api(tmp_path, worker_prefetch="1")
    try:
        with api.client() as client:
            poison = {"nside": 1, "kill_worker_pixels": [5]}
            scan_id = client.submit(body(reco="crash-dummy", nsides="1:0", reco_options=poison))["scan_id"]
            status = client.wait(scan_id, timeout_s=420)
            result = client.result(scan_id).json()
        assert status["state"] == "completed", (status["state_reason"], status["workforce"])
        failed = {p["pixel"]: p.get("error", "") for p in result["pixels"] if p["status"] == "failed"}
        assert list(failed) == [5] and "poison" in failed[5]
        assert status["counters"]["dead_lettered"] == 1
        assert len(result["pixels"]) == 12
        workers = [n for n in api.scan_logs(scan_id) if n.startswith("worker")]
        assert len(workers) >= 5  # the first and the replacements the delivery limit took
    finally:
        stop_api(api)


def test_a_fit_process_dies_with_its_worker(services: None, tmp_path: Path) -> None:
    """A fit that kills its worker (as the OOM killer would kill the worker, not the fit) must not
    live on as an orphan: crash-dummy's fit goes on sleeping after it killed the worker."""
    api = start_api(tmp_path)
    try:
        poison = {"nside": 1, "kill_worker_pixels": list(range(12))}
        with api.client() as client:
            scan_id = client.submit(body(reco="crash-dummy", nsides="1:0", reco_options=poison))["scan_id"]
        scans = api.db().scans

        def first_worker() -> int | None:
            handles = scans.find_one({"_id": scan_id})["launch"].get("handles") or {}
            return (handles.get("worker_pids") or [None])[0]

        worker = wait_until(first_worker, 60, "a worker")
        wait_until(lambda: not _alive(worker), 120, "the fit to kill its worker")
        # the local launcher starts each worker as its own process group: its fit process is in it
        wait_until(lambda: _group(worker) == [], 10, "the fit process to die with its worker")
        with api.client() as client:
            client.abort(scan_id)
    finally:
        stop_api(api)


def _pids(ops: OpsApi, scan_id: str, kind: str) -> list[int]:
    handles = ops.db().scans.find_one({"_id": scan_id})["launch"].get("handles") or {}
    return [p for p in handles.get(kind, []) if _alive(p)]


def _group(pgid: int) -> list[int]:
    """Live processes of a process group (the local launcher starts each worker as its own group)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z" and int(fields[2]) == pgid:
                members.append(int(entry.name))
    return members


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
