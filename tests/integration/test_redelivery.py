"""Idempotence: a result delivered twice leaves one pixel result and correct progress.

The test plays the worker itself (over real RabbitMQ), against the real scan server code and
a real MongoDB-wire server: it answers every task message with the same result message twice.
"""

from __future__ import annotations

import asyncio
import threading
import uuid

import pika
import pytest
from pymongo import MongoClient

from server.scan import ScanServer
from server.settings import ServerSettings as Settings
from skydriver_api.models import ScanRequest
from skydriver_api.services.scans import new_scan_document, spec_of
from skyscan.physics.event import parse_event
from skyscan.physics.recos.dummy import DummyReco
from skyscan.wire import PixelResult, ResultBatch, TaskBatch, decode_tasks, encode, queue_names
from tests.conftest import AMQP_URL, MONGO_URI, TEST_SCAN_KEY, make_event, scan_key_file, signed
from tests.support.stored_results import stored_count


@pytest.fixture
def database(services: None):  # type: ignore[no-untyped-def]
    name = f"skydriver_test_{uuid.uuid4().hex[:10]}"
    client = MongoClient(MONGO_URI, tz_aware=True)
    yield name, client[name]
    client.drop_database(name)
    client.close()


def insert_scan(db, event: dict, nsides: str = "8:0") -> str:  # type: ignore[no-untyped-def]
    req = ScanRequest(event=event, reco="dummy", nsides=nsides, workers=1)
    doc = new_scan_document(req, "tester", spec_of(req))
    db.events.insert_one({"_id": doc["_id"], "event": event})
    db.scans.insert_one(doc)
    return doc["_id"]


def answer(reco: DummyReco, prepared, scan_id: str, batch: TaskBatch) -> bytes:  # type: ignore[no-untyped-def]
    """What a worker would send back for a task message: one result message of its pixels."""
    results = []
    for task in batch.tasks:
        fit = reco.fit(prepared, task.direction, task.variation, task.seed)
        results.append(
            PixelResult(
                task_id=task.task_id,
                nside=task.nside,
                pixel=task.pixel,
                variation=task.variation,
                llh=fit.llh,
                fit=fit.params,
                runtime_s=1e-4,
            )
        )
    return encode(ResultBatch(scan_id=scan_id, worker="test", results=results))


def server_settings(database: str, tmp_path, **overrides) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(
        mongodb_database=database,
        mongodb_uri=MONGO_URI,
        rabbitmq_url=AMQP_URL,
        scan_key_file=scan_key_file(tmp_path),
        **overrides,
    )


def pixels_channel(conn: pika.BlockingConnection, queue: str):  # type: ignore[no-untyped-def]
    """A channel that may consume the scan's task queue, once the server has declared it."""
    ch = conn.channel()
    for _ in range(600):
        try:
            ch.queue_declare(queue, passive=True)
            break
        except pika.exceptions.ChannelClosedByBroker:  # not declared yet: the channel is gone
            ch = conn.channel()
            conn.sleep(0.1)
    ch.basic_qos(prefetch_count=100)
    return ch


def run_server_in_thread(settings: Settings, scan_id: str) -> tuple[threading.Thread, list[int]]:
    exit_codes: list[int] = []

    def target() -> None:
        async def main() -> int:
            server = ScanServer(settings, scan_id)
            try:
                return await server.run()
            finally:
                await server.close()

        exit_codes.append(asyncio.run(main()))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, exit_codes


def test_duplicate_result_messages_store_one_result_each(database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    name, db = database
    event = make_event()
    scan_id = insert_scan(db, event)
    thread, exit_codes = run_server_in_thread(server_settings(name, tmp_path), scan_id)

    reco = DummyReco()
    prepared = reco.prepare(parse_event(event))
    queues = queue_names(scan_id)
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    answered = 0
    try:
        ch = pixels_channel(conn, queues["pixels"])
        for method, _props, body in ch.consume(queues["pixels"], inactivity_timeout=10):
            if method is None:
                break
            batch = decode_tasks(body)
            message = answer(reco, prepared, scan_id, batch)
            for _ in range(2):  # the same results, delivered twice
                ch.basic_publish("", queues["results"], message, signed(TEST_SCAN_KEY, message))
            ch.basic_ack(method.delivery_tag)
            answered += len(batch.tasks)
            last_message = len(batch.tasks)
            if answered == 768:
                break
        ch.cancel()
    finally:
        conn.close()

    thread.join(120)
    assert exit_codes == [0]
    assert answered == 768
    assert stored_count(db, scan_id) == 768
    scan = db.scans.find_one({"_id": scan_id})
    assert scan["state"] == "completed"
    assert scan["progress"]["nsides"]["8"]["tasks_done"] == 768
    assert scan["progress"]["nsides"]["8"]["pixels_done"] == 768
    # every copy read before the scan completed is counted; the copy of the last message may come
    # after the first copy completed the scan, when the server has stopped reading
    assert 768 - last_message <= scan["counters"]["duplicates"] <= 768
    skymap = db.skymaps.find_one({"scan_id": scan_id})
    assert skymap["result"]["n_pixels"] == 768


def test_a_late_writer_cannot_replace_the_final_skymap(database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    name, db = database
    scan_id = insert_scan(db, make_event())
    settings = server_settings(name, tmp_path)

    async def main() -> None:
        server = ScanServer(settings, scan_id)
        try:
            await server.ensure_indexes()
            await server.store_final({"n_pixels": 768, "writer": "first"})
            await server.store_final({"n_pixels": 12, "writer": "late"})
        finally:
            await server.close()

    asyncio.run(main())
    docs = list(db.skymaps.find({"scan_id": scan_id}))
    assert len(docs) == 1
    assert docs[0]["result"] == {"n_pixels": 768, "writer": "first"} and docs[0]["final"] is True


def test_a_stale_task_is_republished_alone(database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A task with no result in redeliver_after_s goes out again in a message of its own: it may be
    the one that hangs its worker, and batched it would hold back its batch-mates each round."""
    name, db = database
    event = make_event()
    scan_id = insert_scan(db, event)
    thread, exit_codes = run_server_in_thread(server_settings(name, tmp_path, redeliver_after_s=1.0), scan_id)

    reco = DummyReco()
    prepared = reco.prepare(parse_event(event))
    queues = queue_names(scan_id)
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    held: set[str] = set()  # the task ids of the one batch left unanswered
    seen: set[str] = set()
    answered: set[str] = set()
    republished_sizes: list[int] = []
    try:
        ch = pixels_channel(conn, queues["pixels"])
        for method, _props, body in ch.consume(queues["pixels"], inactivity_timeout=20):
            if method is None:
                break
            batch = decode_tasks(body)
            ids = [t.task_id for t in batch.tasks]
            if any(i in seen for i in ids):
                republished_sizes.append(len(ids))
            seen.update(ids)
            ch.basic_ack(method.delivery_tag)
            if not held and len(ids) > 1:
                held = set(ids)  # acked, never answered: the server must publish these again
                continue
            message = answer(reco, prepared, scan_id, batch)
            ch.basic_publish("", queues["results"], message, signed(TEST_SCAN_KEY, message))
            answered.update(ids)
            if len(answered) == 768:
                break
        ch.cancel()
    finally:
        conn.close()

    thread.join(120)
    assert exit_codes == [0]
    assert len(answered) == 768
    assert len(held) > 1
    assert len(republished_sizes) >= len(held)
    assert set(republished_sizes) == {1}
    scan = db.scans.find_one({"_id": scan_id})
    assert scan["state"] == "completed"
    assert scan["counters"]["republished"] >= len(held)
