"""Fault injection: every case ends in the right state, with every pixel exactly once in the map
and nothing leaking between scans. Real processes, real RabbitMQ, real MongoDB-wire server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pika
import pytest

from skyscan.wire import PixelResult, ResultBatch, encode, queue_names, task_id
from tests.conftest import AMQP_URL, ROOT, LiveApi, make_event, signed, start_api, stop_api, wait_until
from tests.support.stored_results import stored_count, stored_results

pytestmark = pytest.mark.faults

NPIX8 = 768


@pytest.fixture
def api_with(services: None, tmp_path: Path) -> Iterator[Callable[..., LiveApi]]:
    started: list[LiveApi] = []

    def start(**settings: str) -> LiveApi:
        api = start_api(tmp_path / f"api{len(started)}", **settings)
        started.append(api)
        return api

    (tmp_path / "api0").mkdir()
    for i in range(1, 4):
        (tmp_path / f"api{i}").mkdir()
    yield start
    for api in started:
        stop_api(api)


def scan_doc(api: LiveApi, scan_id: str) -> dict[str, Any]:
    return api.db().scans.find_one({"_id": scan_id})


def tasks_done(api: LiveApi, scan_id: str) -> int:
    return stored_count(api.db(), scan_id)


def assert_each_pixel_once(api: LiveApi, scan_id: str, nside: int = 8) -> dict[str, Any]:
    with api.client() as client:
        result = client.result(scan_id).json()
    pixels = [(p["nside"], p["pixel"]) for p in result["pixels"]]
    assert sorted(pixels) == [(nside, i) for i in range(12 * nside * nside)]
    stored = stored_results(api.db(), scan_id)
    assert len(stored) == len({d["task_id"] for d in stored}) == 12 * nside * nside
    assert all(d["task_id"].startswith(f"{scan_id}:") for d in stored)  # nothing from another scan
    return result


def submit(api: LiveApi, **body: Any) -> str:
    body.setdefault("event", make_event())
    body.setdefault("nsides", "8:0")
    with api.client() as client:
        return client.submit(body)["scan_id"]


def final_status(api: LiveApi, scan_id: str, timeout_s: float = 240) -> dict[str, Any]:
    with api.client() as client:
        return client.wait(scan_id, timeout_s=timeout_s)


def running_pids(api: LiveApi, scan_id: str, kind: str) -> list[int]:
    handles = scan_doc(api, scan_id).get("launch", {}).get("handles", {})
    pids = (
        [handles["server_pid"]]
        if kind == "server" and "server_pid" in handles
        else handles.get("worker_pids", [])
    )
    return [p for p in pids if _alive(p)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def sum_worker_fits(api: LiveApi, scan_id: str) -> int:
    """Fits reported by every worker of the scan once they have all exited."""
    handles = scan_doc(api, scan_id)["launch"]["handles"]
    wait_until(lambda: not any(_alive(p) for p in handles.get("worker_pids", [])), 30, "workers to exit")
    logs = "".join(t for n, t in api.scan_logs(scan_id).items() if n.startswith("worker"))
    return sum(worker_fit_counts(logs))


def worker_fit_counts(logs: str) -> list[int]:
    """The fit count of each worker summary line ("worker done: N fits") in ``logs``."""
    return [
        int(line.split("worker done:")[1].split()[0]) for line in logs.splitlines() if "worker done:" in line
    ]


# ----------------------------------------------------------------------------------------------
def test_kill_9_worker_mid_pixel(api_with) -> None:  # type: ignore[no-untyped-def]
    api = api_with()
    scan_id = submit(api, reco="dummy", reco_options={"delay_s": 0.02}, workers=2)
    wait_until(lambda: tasks_done(api, scan_id) > 100, 120, "100 results")
    victim = wait_until(lambda: running_pids(api, scan_id, "worker"), 30, "a running worker")[0]
    os.killpg(victim, signal.SIGKILL)  # the worker and its fit process, mid-pixel
    status = final_status(api, scan_id)
    assert status["state"] == "completed", status
    assert status["failed_pixels"] == 0
    assert_each_pixel_once(api, scan_id)


def test_kill_9_server_resumes_without_refitting(api_with) -> None:  # type: ignore[no-untyped-def]
    api = api_with()
    scan_id = submit(api, reco="dummy", reco_options={"delay_s": 0.02}, workers=2)
    wait_until(lambda: tasks_done(api, scan_id) > 200, 120, "200 results")
    server_pid = running_pids(api, scan_id, "server")[0]
    os.killpg(server_pid, signal.SIGKILL)
    wait_until(lambda: not _alive(server_pid), 10, "the server to die")
    stored_at_crash = tasks_done(api, scan_id)
    status = final_status(api, scan_id)
    assert status["state"] == "completed", status
    assert status["server_restarts"] == 1
    doc = scan_doc(api, scan_id)
    # the replacement reloaded what was stored and published only what was missing; of that, what
    # the first server's tasks (still queued) answered before its turn came was not published again
    resumed = doc["server"]["resumed_results"]
    assert resumed >= stored_at_crash - 2 * 2  # results in flight at the crash may land after the count
    assert doc["server"]["published"] + doc["counters"]["answered_unpublished"] == NPIX8 - resumed
    assert_each_pixel_once(api, scan_id)
    # count the fits: at most the pixels plus what was in flight when the server died
    assert NPIX8 <= sum_worker_fits(api, scan_id) <= NPIX8 + (NPIX8 - resumed)


@pytest.mark.restarts_services
def test_rabbitmq_restart_mid_scan(api_with) -> None:  # type: ignore[no-untyped-def]
    if subprocess.run(["which", "rabbitmqctl"], capture_output=True).returncode != 0:
        pytest.skip("rabbitmqctl not on PATH: cannot restart the broker")
    api = api_with()
    scan_id = submit(api, reco="dummy", reco_options={"delay_s": 0.01}, workers=2)
    wait_until(lambda: tasks_done(api, scan_id) > 100, 120, "100 results")
    subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True)
    time.sleep(1.0)  # an outage, not a blip
    subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True)
    status = final_status(api, scan_id, timeout_s=300)
    assert status["state"] == "completed", (status, api.scan_logs(scan_id))
    assert_each_pixel_once(api, scan_id)


def _restart_mongo_wire() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    import services  # type: ignore[import-not-found]

    services.mongo_down()
    wait_until(lambda: not services.mongo_ok(services.mongo_uri()), 30, "the database to stop")


def _start_mongo_wire() -> None:
    import services  # type: ignore[import-not-found]

    services.mongo_up()


@pytest.mark.restarts_services
def test_mongodb_restart_mid_scan(api_with) -> None:  # type: ignore[no-untyped-def]
    if os.environ.get("SKYDRIVER_MONGODB_URI") or not (ROOT / ".services" / "mongo.pid").exists():
        pytest.skip(
            "the MongoDB-wire server was not started by scripts/services.py, so this test cannot restart it"
        )
    api = api_with()
    scan_id = submit(api, reco="dummy", reco_options={"delay_s": 0.02}, workers=2)
    wait_until(lambda: tasks_done(api, scan_id) > 100, 120, "100 results")
    _restart_mongo_wire()
    try:
        resp = httpx.get(
            f"{api.url}/api/v1/scans/{scan_id}",
            headers={"Authorization": f"Bearer {api.admin_token}"},
            timeout=30,
        )
        assert resp.status_code == 503
        assert "database is unavailable" in resp.json()["detail"]
        ready = httpx.get(f"{api.url}/readyz", timeout=30)
        assert ready.status_code == 503 and ready.json()["checks"]["mongodb"].startswith("unreachable")
        time.sleep(2.0)  # let the server and workers run into the outage
    finally:
        _start_mongo_wire()
    status = final_status(api, scan_id, timeout_s=300)
    assert status["state"] == "completed", (status, api.scan_logs(scan_id))
    assert_each_pixel_once(api, scan_id)


def test_malformed_and_foreign_messages_are_rejected_and_counted(api_with) -> None:  # type: ignore[no-untyped-def]
    api = api_with()
    other = submit(api, reco="dummy", workers=1, event=make_event(event_id=77))
    assert final_status(api, other)["state"] == "completed"
    scan_id = submit(api, reco="dummy", reco_options={"delay_s": 0.01}, workers=2)
    wait_until(lambda: tasks_done(api, scan_id) > 50, 120, "50 results")
    results_queue = queue_names(scan_id)["results"]
    foreign = ResultBatch(
        scan_id=other,
        results=[PixelResult(task_id=task_id(other, 8, 3, 0), nside=8, pixel=3, variation=0, llh=-1e9)],
    )
    forged = ResultBatch(
        scan_id=scan_id,
        results=[PixelResult(task_id=task_id(scan_id, 64, 5, 0), nside=64, pixel=5, variation=0, llh=-1e9)],
    )  # a pixel this scan never sent
    junk = [
        b"not json at all",
        b'{"schema": "skydriver.result/9"}',
        b"\x00\xff" * 10,
        b"[]",
        encode(foreign),
        encode(forged),
    ]
    key = api.scan_key(scan_id)  # junk from a holder of the key: rejected for what it says
    unsigned = [encode(forged), encode(forged) + b" "]  # from anyone else: rejected unread
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    ch = conn.channel()
    for body in junk:
        ch.basic_publish("", results_queue, body, signed(key, body))
    ch.basic_publish("", results_queue, unsigned[0], pika.BasicProperties(delivery_mode=2))
    ch.basic_publish("", results_queue, unsigned[1], signed(api.scan_key(other), unsigned[1]))
    conn.close()
    status = final_status(api, scan_id)
    assert status["state"] == "completed"
    assert status["counters"]["unsigned"] == 2
    assert status["counters"]["malformed"] == 4
    assert status["counters"]["foreign"] == 1
    assert status["counters"]["unexpected"] == 1
    result = assert_each_pixel_once(api, scan_id)
    assert result["best_fit"]["llh"] > 0  # the forged -1e9 never entered the map
    assert stored_count(api.db(), other) == NPIX8  # the other scan is untouched


def test_crash_dummy_raising_hanging_and_poison_pixels(api_with) -> None:  # type: ignore[no-untyped-def]
    # prefetch 1: a task buffered behind the poison one must not die with its worker and be counted too
    api = api_with(worker_pixel_timeout_s="2", delivery_limit="2", server_restarts="6", worker_prefetch="1")
    raise_pixels, hang_pixels, kill_pixels = [5, 400], [100], [700]
    scan_id = submit(
        api,
        reco="crash-dummy",
        workers=2,
        reco_options={
            "raise_pixels": raise_pixels,
            "hang_pixels": hang_pixels,
            "kill_worker_pixels": kill_pixels,
        },
    )
    status = final_status(api, scan_id, timeout_s=300)
    assert status["state"] == "completed", (status, api.scan_logs(scan_id))
    assert status["failed_pixels"] == 4
    result = assert_each_pixel_once(api, scan_id)
    failed = {p["pixel"]: p.get("error", "") for p in result["pixels"] if p["status"] == "failed"}
    assert set(failed) == {*raise_pixels, *hang_pixels, *kill_pixels}
    assert all("CrashDummyError" in failed[p] for p in raise_pixels)
    assert "timeout" in failed[100]
    assert "poison" in failed[700]
    assert status["counters"]["dead_lettered"] == 1
    assert result["best_fit"]["pixel"] not in failed


def test_failed_pixel_policy_fail_marks_the_scan_failed(api_with) -> None:  # type: ignore[no-untyped-def]
    api = api_with(failed_pixel_policy="fail")
    scan_id = submit(api, reco="crash-dummy", workers=2, reco_options={"raise_pixels": [10]})
    status = final_status(api, scan_id)
    assert status["state"] == "failed"
    assert "1 pixels failed" in status["state_reason"]


def test_sigterm_worker_hands_its_pixel_back(api_with) -> None:  # type: ignore[no-untyped-def]
    api = api_with()
    scan_id = submit(
        api,
        reco="dummy",
        reco_options={"delay_s": 1.0},
        workers=1,
        nsides="1:0",
        event=make_event(event_id=5),
    )
    wait_until(lambda: tasks_done(api, scan_id) >= 2, 60, "two results")
    worker = running_pids(api, scan_id, "worker")[0]
    os.kill(worker, signal.SIGTERM)  # during a one-second fit
    wait_until(lambda: not _alive(worker), 30, "the worker to exit")
    logs = "".join(t for n, t in api.scan_logs(scan_id).items() if n.startswith("worker"))
    assert "handing task" in logs and "back" in logs
    # it stopped in the fit it was in, not after the scan's other pixels: its own count says so
    fitted = worker_fit_counts(logs)
    assert len(fitted) == 1 and 2 <= fitted[0] < 12, fitted
    status = final_status(api, scan_id)  # the reconciler starts a new worker
    assert status["state"] == "completed"
    assert status["failed_pixels"] == 0
    assert status["workforce"]["workers"].get("succeeded", 0) >= 1
    result = assert_each_pixel_once(api, scan_id, nside=1)
    assert all(p["status"] == "ok" for p in result["pixels"])


def test_abort_stops_processes_deletes_queues_and_keeps_results(api_with) -> None:  # type: ignore[no-untyped-def]
    api = api_with()
    scan_id = submit(api, reco="dummy", reco_options={"delay_s": 0.05}, workers=2)
    wait_until(lambda: tasks_done(api, scan_id) > 30, 120, "30 results")
    pids = running_pids(api, scan_id, "server") + running_pids(api, scan_id, "worker")
    assert len(pids) == 3
    with api.client() as client:
        assert client.abort(scan_id)["state"] == "aborted"
    wait_until(lambda: not any(_alive(p) for p in pids), 10, "every process to stop")
    wait_until(lambda: scan_doc(api, scan_id).get("cleanup_pending") is False, 10, "clean-up")
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    for name in queue_names(scan_id).values():
        ch = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker):
            ch.queue_declare(name, passive=True)
    conn.close()
    doc = scan_doc(api, scan_id)
    assert doc["state"] == "aborted"
    kept = tasks_done(api, scan_id)
    assert kept >= 30
    with api.client() as client:
        partial = client.result(scan_id).json()
    assert partial["complete"] is False and partial["n_pixels"] == kept


def test_heartbeats_survive_fits_longer_than_the_heartbeat(api_with) -> None:  # type: ignore[no-untyped-def]
    # heartbeat 2 s: without heartbeats during a 5 s fit the broker would drop the connection
    # (1 s was too close to what a busy machine's scheduler does to a process between two beats)
    api = api_with(rabbitmq_heartbeat_s="2")
    scan_id = submit(api, reco="dummy", reco_options={"delay_s": 5.0}, workers=2, nsides="1:0")
    status = final_status(api, scan_id, timeout_s=120)
    assert status["state"] == "completed"
    assert_each_pixel_once(api, scan_id, nside=1)
    assert sum_worker_fits(api, scan_id) == 12  # no fit was lost and redone
    logs = "".join(t for n, t in api.scan_logs(scan_id).items() if n.startswith("worker"))
    assert "connection lost" not in logs


def test_worker_quarantines_after_consecutive_failures(api_with) -> None:  # type: ignore[no-untyped-def]
    api = api_with(worker_max_consecutive_failures="3", worker_prefetch="1")
    scan_id = submit(
        api, reco="crash-dummy", workers=1, nsides="1:0", reco_options={"nside": 1, "raise_pixels": [0, 1, 2]}
    )
    status = final_status(api, scan_id, timeout_s=120)
    assert status["state"] == "completed", status
    assert status["failed_pixels"] == 3
    logs = api.scan_logs(scan_id)
    assert "quarantined: 3 consecutive failed fits" in logs["worker-0.log"]
    assert any("exited with code 3" in r for r in status["workforce"]["reasons"])
    assert len([n for n in logs if n.startswith("worker")]) == 2  # the reconciler started a replacement
    assert_each_pixel_once(api, scan_id, nside=1)


def test_silent_task_is_republished_under_the_same_id(api_with) -> None:  # type: ignore[no-untyped-def]
    api = api_with(redeliver_after_s="1.5", worker_pixel_timeout_s="5")
    scan_id = submit(
        api, reco="crash-dummy", workers=2, nsides="1:0", reco_options={"nside": 1, "hang_pixels": [4]}
    )
    status = final_status(api, scan_id, timeout_s=120)
    assert status["state"] == "completed", status
    assert status["counters"]["republished"] >= 1
    # Each copy hangs until its worker's 5 s timeout, so the copy sent 1.5 s later answers 1.5 s
    # after the first: usually after the scan has ended. Whether it is counted as a duplicate is a
    # race, not asserted here; a second answer to one task id is stored once (test_redelivery,
    # test_batching) and this map holds one result per pixel.
    result = assert_each_pixel_once(api, scan_id, nside=1)
    failed = {p["pixel"]: p.get("error", "") for p in result["pixels"] if p["status"] == "failed"}
    assert list(failed) == [4] and "timeout" in failed[4]
