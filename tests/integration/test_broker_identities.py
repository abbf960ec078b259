"""Per-scan broker identities and signed messages, against the real RabbitMQ and a live API.

The broker is not trusted: whoever can publish on it (the shared administrator account included)
cannot make a scan take a result or a task its own processes did not sign, and each scan's
identities reach that scan's queues only.
"""

from __future__ import annotations

import json
import os
import stat
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pika
import pika.exceptions
import pytest

from skydriver_api.broker_identities import BrokerIdentities, broker_user
from skydriver_api.settings import ApiSettings
from skyscan.wire import (
    Direction,
    PixelResult,
    PixelTask,
    ResultBatch,
    TaskBatch,
    encode,
    exchange_name,
    queue_names,
    task_id,
)
from tests.conftest import AMQP_URL, MONGO_URI, LiveApi, make_event, signed, start_api, stop_api, wait_until
from tests.support.stored_results import stored_count, stored_results

NPIX8 = 768
MANAGEMENT = "http://127.0.0.1:15672/api"


@pytest.fixture(scope="module")
def api(services: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    # the database URL set explicitly, as a deployment does: the server must inherit it, a worker not
    live = start_api(tmp_path_factory.mktemp("brokerid"), max_concurrent_scans="3", mongodb_uri=MONGO_URI)
    try:
        yield live
    finally:
        stop_api(live)


def identities(api: LiveApi) -> BrokerIdentities:
    """The identities as the API derives them (the test reads the API's service secret)."""
    return BrokerIdentities(ApiSettings(runtime_dir=api.runtime_dir, rabbitmq_url=AMQP_URL))


def submit(api: LiveApi, **body: Any) -> str:
    body = {
        "event": make_event(event_id=int(uuid.uuid4().int % 10**6)),
        "nsides": "8:0",
        "reco": "dummy",
        **body,
    }
    with api.client() as client:
        return client.submit(body)["scan_id"]


def doc(api: LiveApi, scan_id: str) -> dict[str, Any]:
    return api.db().scans.find_one({"_id": scan_id}) or {}


def running(api: LiveApi, scan_id: str) -> bool:
    return doc(api, scan_id).get("state") == "running" and bool(doc(api, scan_id).get("first_dispatch_at"))


def final(api: LiveApi, scan_id: str) -> dict[str, Any]:
    with api.client() as client:
        return client.wait(scan_id, timeout_s=240)


def user_exists(name: str) -> bool:
    resp = httpx.get(f"{MANAGEMENT}/users/{name}", auth=("guest", "guest"), timeout=5)
    return resp.status_code == 200


# -- the credential matrix -----------------------------------------------------------------------------
def _try(url: str, operation: Callable[[Any], Any]) -> str:
    """'allowed' when the broker let the operation past its permission check, else 'refused'."""
    try:
        conn = pika.BlockingConnection(pika.URLParameters(url))
    except pika.exceptions.ProbableAuthenticationError:
        return "refused"
    except pika.exceptions.AMQPConnectionError as err:
        return "refused" if "ACCESS_REFUSED" in repr(err) else f"error {err!r}"
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        operation(channel)
        return "allowed"
    except pika.exceptions.ChannelClosedByBroker as err:
        # 406 (in use, argument mismatch) and 404 come after the permission check passed
        return "refused" if err.reply_code == 403 else "allowed"
    finally:
        if conn.is_open:
            conn.close()


def _get_and_return(queue: str) -> Callable[[Any], None]:
    def op(ch: Any) -> None:
        method, _props, _body = ch.basic_get(queue)
        if method is not None:
            ch.basic_nack(method.delivery_tag, requeue=True)  # put back what was taken

    return op


def test_each_identity_reaches_only_what_its_holder_needs(api: LiveApi) -> None:
    slow = {"delay_s": 0.02}  # running while probed: 768 pixels of 20 ms with one worker each
    scan_a = submit(api, reco_options=slow, workers=1)
    scan_b = submit(api, reco_options=slow, workers=1)
    wait_until(lambda: running(api, scan_a) and running(api, scan_b), 120, "both scans dispatching")
    ids = identities(api)
    a, b = ids.credentials(scan_a), ids.credentials(scan_b)
    q, ex = queue_names(scan_a), exchange_name(scan_a)
    task = signed(api.scan_key(scan_a), b"{}")  # content is irrelevant: only the permission is tested
    operations: dict[str, Callable[[Any], Any]] = {
        "consume tasks": _get_and_return(q["pixels"]),
        "consume results": _get_and_return(q["results"]),
        "consume dead letters": _get_and_return(q["dead"]),
        "publish into the scan's exchange": lambda ch: ch.basic_publish(ex, "no-such-route", b"{}", task),
        "publish through the default exchange": lambda ch: ch.basic_publish("", "no-such-queue", b"{}"),
        # configure, the permission that also deletes (declared with other arguments: refused as
        # inequivalent once past the permission check, so it changes nothing)
        "declare the task queue": lambda ch: ch.queue_declare(q["pixels"], durable=True),
        "bind the task queue": lambda ch: ch.queue_bind(q["pixels"], ex, routing_key="pixels"),
    }
    identities_ = {
        "admin": AMQP_URL,
        "scan A server": a.server_broker_url,
        "scan A worker": a.worker_broker_url,
        "scan B worker": b.worker_broker_url,
        "scan B server": b.server_broker_url,
        "none": AMQP_URL.replace("guest:guest", f"{broker_user(scan_a, 'worker')}:wrong-password"),
    }
    matrix = {who: {op: _try(url, fn) for op, fn in operations.items()} for who, url in identities_.items()}
    everything = dict.fromkeys(operations, "allowed")
    nothing = dict.fromkeys(operations, "refused")
    assert matrix["admin"] == everything
    assert matrix["scan A server"] == {**everything, "publish through the default exchange": "refused"}
    assert matrix["scan A worker"] == {
        **nothing,
        "consume tasks": "allowed",
        "publish into the scan's exchange": "allowed",
    }
    assert matrix["scan B worker"] == matrix["scan B server"] == matrix["none"] == nothing
    for scan_id in (scan_a, scan_b):  # the probes changed nothing: both scans complete in full
        status = final(api, scan_id)
        assert status["state"] == "completed" and status["failed_pixels"] == 0, status
        assert stored_count(api.db(), scan_id) == NPIX8


# -- forged messages -----------------------------------------------------------------------------------
def test_a_forged_result_changes_nothing(api: LiveApi) -> None:
    """The attack: with broker access, publish -1e6 for every pixel the scan really asked for. The
    unsigned copy and the copy signed with another scan's key are rejected and counted; the best
    fit and every stored result are the genuine ones, none of which is taken for a duplicate."""
    other = submit(api, workers=1)
    scan_id = submit(api, reco_options={"delay_s": 0.01}, workers=1)
    wait_until(lambda: running(api, scan_id), 120, "the scan dispatching")
    forged = encode(
        ResultBatch(
            scan_id=scan_id,
            worker="mallory",
            results=[
                PixelResult(task_id=task_id(scan_id, 8, p, 0), nside=8, pixel=p, variation=0, llh=-1e6)
                for p in range(NPIX8)
            ],
        )
    )
    results = queue_names(scan_id)["results"]
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))  # the shared administrator account
    ch = conn.channel()
    ch.basic_publish("", results, forged, pika.BasicProperties(delivery_mode=2))
    ch.basic_publish("", results, forged, signed(api.scan_key(other), forged))
    conn.close()
    status = final(api, scan_id)
    assert status["state"] == "completed", status
    assert status["counters"]["unsigned"] == 2
    assert status["counters"]["duplicates"] == 0
    with api.client() as client:
        assert client.result(scan_id).json()["best_fit"]["llh"] > -1e6
    stored = stored_results(api.db(), scan_id)
    assert len(stored) == NPIX8 and not [d for d in stored if d.get("llh") == -1e6]


def test_a_forged_task_is_never_fitted(api: LiveApi) -> None:
    """crash-dummy is enabled on this API (test recos): only the missing signature stops an
    unsigned task that would kill every worker."""
    scan_id = submit(api, reco_options={"delay_s": 0.01}, workers=1)
    wait_until(lambda: running(api, scan_id), 120, "the scan dispatching")
    poison = encode(
        TaskBatch(
            scan_id=scan_id,
            reco="crash-dummy",
            options={"nside": 8, "kill_worker_pixels": [3]},
            tasks=[
                PixelTask(
                    task_id=task_id(scan_id, 8, 3, 0),
                    nside=8,
                    pixel=3,
                    variation=0,
                    direction=Direction(ra=0.1, dec=0.2, zenith=1.0, azimuth=1.0),
                )
            ],
        )
    )
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    conn.channel().basic_publish(
        "", queue_names(scan_id)["pixels"], poison, pika.BasicProperties(delivery_mode=2)
    )
    conn.close()
    status = final(api, scan_id)
    assert status["state"] == "completed" and status["failed_pixels"] == 0, status
    assert status["counters"]["unsigned"] == 1  # the worker dead-lettered it, the server counted it
    logs = api.scan_logs(scan_id)
    assert "unsigned message" in logs["worker-0.log"]
    assert [n for n in logs if n.startswith("worker")] == ["worker-0.log"]  # it never died


# -- who holds what ------------------------------------------------------------------------------------
def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode(errors="replace").partition("=")[::2] for item in raw if b"=" in item)


def test_workers_hold_their_scan_identity_and_nothing_shared_and_it_ends_with_the_scan(api: LiveApi) -> None:
    scan_id = submit(api, reco_options={"delay_s": 0.02}, workers=1)
    wait_until(lambda: running(api, scan_id), 120, "the scan dispatching")
    handles = doc(api, scan_id)["launch"]["handles"]
    creds = identities(api).credentials(scan_id)
    for pid, url, own in (
        (handles["worker_pids"][0], creds.worker_broker_url, "worker"),
        (handles["server_pid"], creds.server_broker_url, "server"),
    ):
        env = _environ(pid)
        assert "SKYDRIVER_RABBITMQ_URL" not in env  # the shared account never leaves the API
        assert ("SKYDRIVER_MONGODB_URI" in env) == (own == "server")  # workers never reach the database
        secret_file = Path(env["SKYDRIVER_BROKER_URL_FILE"])
        assert secret_file.read_text() == url and stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600
        assert Path(env["SKYDRIVER_SCAN_KEY_FILE"]).read_text() == api.scan_key(scan_id).hex()
        values = "\n".join(env.values()) + Path(f"/proc/{pid}/cmdline").read_text()
        assert url.split("@")[0] not in values and api.scan_key(scan_id).hex() not in values
    assert user_exists(broker_user(scan_id, "worker")) and user_exists(broker_user(scan_id, "server"))
    assert final(api, scan_id)["state"] == "completed"
    wait_until(lambda: doc(api, scan_id).get("launch", {}).get("reaped"), 120, "the scan reaped")
    assert not user_exists(broker_user(scan_id, "worker")) and not user_exists(broker_user(scan_id, "server"))
    assert _try(creds.worker_broker_url, lambda ch: None) == "refused"
    assert not (api.runtime_dir / scan_id / "worker-broker-url").exists()
    assert not (api.runtime_dir / scan_id / "scan-key").exists()
    assert json.dumps(doc(api, scan_id), default=str).find(creds.scan_key) == -1  # not in the database


# -- what a stopped test API leaves on the shared broker ----------------------------------------------


def _queue_exists(name: str) -> bool:
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        conn.channel().queue_declare(name, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker:
        return False
    finally:
        if conn.is_open:
            conn.close()


def test_an_api_stopped_mid_scan_leaves_no_queues_on_the_broker(services: None, tmp_path: Path) -> None:
    api = start_api(tmp_path)
    try:
        scan_id = submit(api, reco_options={"delay_s": 0.05}, workers=1)
        wait_until(lambda: running(api, scan_id), 120, "the scan dispatching")
        names = list(queue_names(scan_id).values())
        assert all(_queue_exists(name) for name in names)  # the scan's server declared them
    finally:
        stop_api(api)  # before the reconciler could reap the scan
    assert not any(_queue_exists(name) for name in names)
