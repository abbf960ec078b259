"""Batched tasks and results keep exactly once per pixel.

The first test plays the workers itself (real RabbitMQ, the real scan server, a real MongoDB-wire
server): it answers part of a batch, hands the batch back, then answers it whole when it comes
back, and slips a version-1 result onto the results queue. The second runs the whole service with
a reco that kills its worker on one pixel of a batch.
"""

from __future__ import annotations

import pika
import pytest

from server.settings import ServerSettings
from skyscan.physics.event import parse_event
from skyscan.physics.recos.dummy import DummyReco
from skyscan.wire import decode_tasks, queue_names
from tests.conftest import (
    AMQP_URL,
    MONGO_URI,
    TEST_SCAN_KEY,
    LiveApi,
    make_event,
    scan_key_file,
    signed,
    start_api,
    stop_api,
    wait_until,
)
from tests.integration.test_redelivery import answer, database, insert_scan, run_server_in_thread  # noqa: F401
from tests.support.stored_results import stored_count, stored_results

V1_RESULT = (
    b'{"schema": "skydriver.result/1", "task_id": "x:8:1:0", "scan_id": "x", "nside": 8, "pixel": 1,'
    b' "variation": 0, "llh": -1e9}'
)


def publish_answer(ch, queue: str, body: bytes) -> None:  # type: ignore[no-untyped-def]
    ch.basic_publish("", queue, body, signed(TEST_SCAN_KEY, body))


def test_partly_answered_and_redelivered_batches_change_nothing(database, tmp_path) -> None:  # type: ignore[no-untyped-def] # noqa: F811
    name, db = database
    event = make_event()
    scan_id = insert_scan(db, event)  # nside 8, one worker asked for
    settings = ServerSettings(
        mongodb_database=name,
        mongodb_uri=MONGO_URI,
        rabbitmq_url=AMQP_URL,
        scan_key_file=scan_key_file(tmp_path),
    )
    thread, exit_codes = run_server_in_thread(settings, scan_id)
    reco = DummyReco()
    prepared = reco.prepare(parse_event(event))
    queues = queue_names(scan_id)
    wait_until(
        lambda: db.scans.find_one({"_id": scan_id, "first_dispatch_at": {"$exists": True}}), 60, "dispatch"
    )

    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    ch = conn.channel()
    try:
        # before any result the server holds back all but a window of single-pixel messages
        first = [ch.basic_get(queues["pixels"]) for _ in range(5)]
        assert first[-1] == (None, None, None)
        assert [len(decode_tasks(body).tasks) for _m, _p, body in first[:4]] == [1, 1, 1, 1]
        ch.basic_publish("", queues["results"], V1_RESULT, signed(TEST_SCAN_KEY, V1_RESULT))
        for method, _props, body in first[:4]:
            publish_answer(ch, queues["results"], answer(reco, prepared, scan_id, decode_tasks(body)))
            ch.basic_ack(method.delivery_tag)

        handed_back: set[str] = set()
        answered_twice = 0
        sizes: list[int] = []
        ch.basic_qos(prefetch_count=1)
        for method, _props, body in ch.consume(queues["pixels"], inactivity_timeout=20):
            if method is None:
                break
            batch = decode_tasks(body)
            sizes.append(len(batch.tasks))
            if not handed_back and len(batch.tasks) >= 4:
                # a worker fitted half of this batch, published those results, then died
                half = batch.with_tasks(batch.tasks[: len(batch.tasks) // 2])
                publish_answer(ch, queues["results"], answer(reco, prepared, scan_id, half))
                ch.basic_nack(method.delivery_tag, requeue=True)
                handed_back = {t.task_id for t in batch.tasks}
                answered_twice = len(half.tasks)
                continue
            if {t.task_id for t in batch.tasks} == handed_back:
                assert method.redelivered
            publish_answer(ch, queues["results"], answer(reco, prepared, scan_id, batch))
            ch.basic_ack(method.delivery_tag)
        ch.cancel()
    finally:
        conn.close()

    thread.join(120)
    assert exit_codes == [0]
    assert handed_back and answered_twice >= 2
    assert max(sizes) > 1  # the batch size grew once fit times were measured
    stored = stored_results(db, scan_id)
    assert sorted(d["pixel"] for d in stored) == list(range(768))
    assert sorted(d["task_id"] for d in stored) == sorted(f"{scan_id}:8:{d['pixel']}:0" for d in stored)
    scan = db.scans.find_one({"_id": scan_id})
    assert scan["state"] == "completed"
    assert scan["progress"]["nsides"]["8"]["tasks_done"] == 768
    assert scan["counters"]["duplicates"] == answered_twice
    assert scan["counters"]["malformed"] == 1  # the version-1 result, refused
    assert scan["server"]["published"] == 768
    assert db.skymaps.find_one({"scan_id": scan_id})["result"]["best_fit"]["llh"] > 0


@pytest.fixture
def poison_api(services: None, tmp_path) -> LiveApi:  # type: ignore[no-untyped-def]
    # prefetch 1: a message buffered behind the poison one would die with its worker and be counted
    # too (docs/reliability.md, known limits; the same with or without batches)
    api = start_api(
        tmp_path, delivery_limit="2", server_restarts="6", worker_prefetch="1", worker_pixel_timeout_s="2"
    )
    yield api
    stop_api(api)


def test_a_poison_pixel_in_a_batch_is_dead_lettered_alone(poison_api: LiveApi) -> None:
    """Pixel 700 kills its worker, pixel 100 hangs past the per-pixel timeout; both sit in batches."""
    api = poison_api
    with api.client() as client:
        scan_id = client.submit(
            {
                "event": make_event(event_id=41),
                "reco": "crash-dummy",
                "reco_options": {"kill_worker_pixels": [700], "hang_pixels": [100]},
                "nsides": "8:0",
                "workers": 2,
            }
        )["scan_id"]
        status = client.wait(scan_id, timeout_s=300)
        assert status["state"] == "completed", (status, api.scan_logs(scan_id))
        result = client.result(scan_id).json()
    failed = {p["pixel"]: p["error"] for p in result["pixels"] if p["status"] == "failed"}
    assert sorted(failed) == [100, 700]
    assert "poison" in failed[700]
    assert "per-pixel timeout of 2 s" in failed[100]  # killed, and the rest of its batch fitted
    assert status["counters"]["dead_lettered"] == 1
    assert sorted(p["pixel"] for p in result["pixels"]) == list(range(768))
    # the poison pixel travelled in a batch, which came back and was split, not dead-lettered whole
    logs = "".join(t for n, t in api.scan_logs(scan_id).items() if n.startswith("worker"))
    splits = [
        int(line.split("a batch of ")[1].split()[0]) for line in logs.splitlines() if "a batch of" in line
    ]
    assert splits and max(splits) > 1, logs[-3000:]
    assert stored_count(api.db(), scan_id) == 768
