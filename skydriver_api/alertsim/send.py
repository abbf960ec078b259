"""Send a planned stream to Kafka or the REST API, carry out its disruptions, write the provenance."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from skydriver_api.alertsim.plan import PlannedMessage, plan, stream_run_id
from skydriver_api.alertsim.spec import AlertSimError, Disruption, ListenerSpec, StreamSpec
from skyinfra.kafka import (
    KafkaConfigError,
    KafkaTarget,
    Publisher,
    client_config,
    make_consumer,
    resolve_target,
)
from skyinfra.settings import KafkaSettings

PROVENANCE_SCHEMA = "skydriver.alertsim.provenance/1"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


class ListenerProcess:
    """The consumer under test, run by alertsim so that it can be killed and started again."""

    def __init__(self, spec: ListenerSpec) -> None:
        self.spec = spec
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        log = open(self.spec.log, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            self.spec.command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.starts += 1

    def kill(self) -> int | None:
        """SIGKILL: no clean leave of the group, no last commit, exactly like a crash."""
        if self.proc is None:
            return None
        pid = self.proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        self.proc.wait()
        return pid

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()


def drop_connections(target: KafkaTarget) -> int:
    """Abort every TCP connection to the broker ports (``ss -K``: needs root, Linux); how many."""
    dropped = 0
    for broker in target.brokers.split(","):
        host, port = broker.rsplit(":", 1)
        for side in ("dport", "sport"):
            out = subprocess.run(
                ["ss", "-K", "-t", "-n", "state", "established", side, "=", f":{port}"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            dropped += max(0, len(out.strip().splitlines()) - 1)
    return dropped


def check_can_drop(target: KafkaTarget) -> None:
    non_local = [b for b in target.brokers.split(",") if b.rsplit(":", 1)[0] not in LOCAL_HOSTS]
    if non_local:
        raise AlertSimError(f"drop_broker_connections: the broker must run on this machine, not {non_local}")
    if shutil.which("ss") is None or os.geteuid() != 0:
        raise AlertSimError("drop_broker_connections: needs root and 'ss' (iproute2) to abort sockets")


class KafkaSender:
    def __init__(self, spec: StreamSpec) -> None:
        settings = KafkaSettings()
        try:
            self.target = resolve_target(spec.topic, settings.kafka_bootstrap, "alertsim topic")
            config = client_config(settings, self.target)
        except KafkaConfigError as err:
            raise AlertSimError(str(err)) from None
        self.topic = self.target.topic
        # a broker outage in a disruption must not fail a message: librdkafka keeps retrying
        limit = max(1_000_000, spec.oversize_bytes + 100_000)
        self.publisher = Publisher(config, timeout_s=300, **{"message.max.bytes": limit})
        self.results: dict[int, dict[str, Any]] = {}

    def send(self, msg: PlannedMessage) -> None:
        self.publisher.produce(str(msg.seq), self.topic, msg.value, key=msg.key)
        self._collect(0)

    def _collect(self, wait_s: float) -> None:
        for d in self.publisher.deliveries(wait_s):
            self.results[int(d.token)] = {"partition": d.partition, "offset": d.offset, "error": d.error}

    def finish(self) -> None:
        deadline = time.monotonic() + 330
        while self.publisher.in_flight and time.monotonic() < deadline:
            self._collect(0.2)


class RestSender:
    def __init__(self, spec: StreamSpec) -> None:
        import httpx

        url = spec.api_url or os.environ.get("SKYDRIVER_API_URL", "http://127.0.0.1:8000")
        token = os.environ.get("SKYDRIVER_TOKEN", "")
        headers = {
            "Content-Type": "application/json",
            **({"Authorization": f"Bearer {token}"} if token else {}),
        }
        self.http = httpx.Client(base_url=url, headers=headers, timeout=60)
        self.results: dict[int, dict[str, Any]] = {}

    def send(self, msg: PlannedMessage) -> None:
        try:
            resp = self.http.post("/api/v1/alerts", content=msg.value)
        except Exception as err:
            self.results[msg.seq] = {"error": f"{type(err).__name__}: {err}"}
            return
        try:
            body = resp.json()
        except ValueError:
            body = {"detail": resp.text[:500]}
        self.results[msg.seq] = {
            "status": resp.status_code,
            "scan_id": body.get("scan_id"),
            "duplicate": body.get("duplicate"),
            "detail": body.get("detail") if resp.status_code >= 400 else None,
            "error": None,
        }

    def finish(self) -> None:
        self.http.close()


def wait_consumed(
    settings: KafkaSettings, sender: KafkaSender, listener: ListenerProcess, timeout_s: float
) -> bool:
    """Until the listeners' group has committed up to the end of every partition of the topic (or
    the time is up). The ends, not the offsets of our messages: a message the producer sent again
    after a dropped connection is acknowledged without its offset."""
    from confluent_kafka import TopicPartition

    consumer = make_consumer({**client_config(settings, sender.target), "group.id": settings.kafka_group_id})
    try:
        meta = consumer.list_topics(sender.topic, timeout=10).topics[sender.topic]
        parts = [TopicPartition(sender.topic, p) for p in meta.partitions]
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in parts}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            done = consumer.committed(parts, timeout=10)
            if all(tp.offset >= ends[tp.partition] for tp in done if ends[tp.partition] > 0):
                return True
            if listener.proc is not None and listener.proc.poll() is not None:
                raise AlertSimError(
                    f"the listener exited (code {listener.proc.returncode}), see {listener.spec.log}",
                )
            time.sleep(0.5)
        return False
    finally:
        consumer.close()


def run_stream(spec: StreamSpec, provenance_path: Path, say: Callable[[str], Any] = print) -> str:
    """Send the stream, carry out its disruptions, wait for the consumer, write the provenance."""
    messages = plan(spec)
    sender: KafkaSender | RestSender = KafkaSender(spec) if spec.target == "kafka" else RestSender(spec)
    if any(d.kind == "drop_broker_connections" for d in spec.disruptions):
        assert isinstance(sender, KafkaSender)
        check_can_drop(sender.target)
    listener = ListenerProcess(spec.listener) if spec.listener else None
    say(
        f"alertsim: {len(messages)} messages over {messages[-1].at_s if messages else 0:.1f} s "
        f"(seed {spec.seed})"
    )
    done: list[dict[str, Any]] = []
    lock = threading.Lock()
    started_at = _now()
    start = time.monotonic()

    def disrupt(d: Disruption) -> None:
        time.sleep(max(0.0, start + d.at_s - time.monotonic()))
        entry: dict[str, Any] = {"at_s": d.at_s, "kind": d.kind, "seconds": d.seconds, "started_at": _now()}
        if d.kind == "restart_consumer":
            assert listener is not None
            entry["killed_pid"] = listener.kill()
            time.sleep(d.seconds)
            listener.start()
        else:
            assert isinstance(sender, KafkaSender)
            dropped = drop_connections(sender.target)
            until = time.monotonic() + d.seconds
            while time.monotonic() < until:
                time.sleep(0.2)
                dropped += drop_connections(sender.target)
            entry["connections_dropped"] = dropped
        entry["ended_at"] = _now()
        with lock:
            done.append(entry)
        say(f"alertsim: {d.kind} at {d.at_s:.1f} s done ({entry})")

    if listener is not None:
        listener.start()
    threads = [threading.Thread(target=disrupt, args=(d,), daemon=True) for d in spec.disruptions]
    for t in threads:
        t.start()
    sent_at: dict[int, str] = {}
    try:
        for msg in messages:
            time.sleep(max(0.0, start + msg.at_s - time.monotonic()))
            sent_at[msg.seq] = _now()
            sender.send(msg)
        for t in threads:
            t.join()
        sender.finish()
        consumed, consumer_note = None, ""
        if isinstance(sender, KafkaSender) and listener is not None:
            try:
                consumed = wait_consumed(KafkaSettings(), sender, listener, timeout_s=300)
            except AlertSimError as err:
                consumed, consumer_note = False, str(err)
    finally:
        if listener is not None:
            listener.stop()
    records = []
    for msg in messages:
        record = {**msg.record(), "sent_at": sent_at.get(msg.seq), **sender.results.get(msg.seq, {})}
        records.append(record)
    provenance = {
        "schema": PROVENANCE_SCHEMA,
        "stream": spec.model_dump(mode="json"),
        "seed": spec.seed,
        "run_id": stream_run_id(spec),
        "started_at": started_at,
        "finished_at": _now(),
        "target": spec.target,
        "topic": getattr(sender, "topic", None),
        "notice_topic": spec.notice_topic or os.environ.get("SKYDRIVER_KAFKA_NOTICE_TOPIC", ""),
        "listener_starts": listener.starts if listener else None,
        "all_consumed": consumed,
        "consumer_note": consumer_note,
        "disruptions": sorted(done, key=lambda e: e["at_s"]),
        "messages": records,
    }
    Path(provenance_path).write_text(json.dumps(provenance, indent=1))
    failed = [r["seq"] for r in records if r.get("error")]
    kinds = {k: sum(1 for m in messages if m.kind == k) for k in ("new", "update", "duplicate", "corrupt")}
    return (
        f"alertsim: sent {len(records) - len(failed)} of {len(records)} messages {kinds}, "
        f"{len(done)} disruptions; provenance in {provenance_path}"
        + (f"; NOT SENT: {failed}" if failed else "")
        + ("" if consumed in (None, True) else f"; NOT ALL CONSUMED: {consumer_note or 'timed out'}")
    )
