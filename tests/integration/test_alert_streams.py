"""Kafka intake and notices against a real broker (tansu) and the real database.

* The listener killed right after each step of the intake (received, stored, committed) and
  started again: every alert has one scan, the malformed message one rejection, nothing lost.
* A malformed message is recorded with its reason, topic, partition and offset, and republished on
  the dead-letter topic with headers saying why.
* Notices: published once per ended alert scan with the recorded placement; while the broker is
  away the attempts are retried with backoff and recorded; after the broker and the API restart,
  only what was missing is published, with the bytes stored before the outage.

tansu keeps everything in memory, so these tests restart our consumer and our API, and a broker
restart means an empty broker.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from skydriver_api.alertsim.check import read_topic
from tests.conftest import ROOT, make_event, start_api, stop_api, wait_until
from tests.integration.conftest import hold_the_only_slot
from tests.support.kafka import (
    Broker,
    committed,
    create_topic,
    kafka_broker,
    listener_env,
    own_broker,
    produce,
    restart_api,
    start_listener,
    unique_topic,
)

FIXTURES = (kafka_broker, own_broker)  # the brokers these tests use, as pytest fixtures


def alert_message(run_id: int, event_id: int, revision: int = 0) -> tuple[bytes, bytes]:
    body = {
        "event": make_event(run_id=run_id, event_id=event_id),
        "alert": {"run_id": run_id, "event_id": event_id, "revision": revision, "stream": "test"},
    }
    return f"{run_id}:{event_id}:{revision}".encode(), json.dumps(body).encode()


@pytest.fixture
def quiet_intake(kafka_broker: Broker, tmp_path: Path, services: None):
    """An API that launches nothing (its only slot is taken) and an alert topic of one partition."""
    api = start_api(tmp_path, max_concurrent_scans="1")
    hold_the_only_slot(api)
    topic = unique_topic("alerts")
    create_topic(kafka_broker.bootstrap, topic)
    env = listener_env(
        api,
        kafka_bootstrap=kafka_broker.bootstrap,
        kafka_alert_topics=topic,
        kafka_dead_letter_topic=f"{topic}.dead",
        kafka_group_id=f"group-{topic}",
        kafka_session_timeout_s="6",
    )
    yield api, topic, env
    stop_api(api)


@pytest.mark.parametrize("step", ["received", "stored", "committed"])
def test_a_listener_killed_after_each_step_loses_and_doubles_nothing(
    quiet_intake: Any,
    kafka_broker: Broker,
    tmp_path: Path,
    step: str,
) -> None:
    api, topic, env = quiet_intake
    group = env["SKYDRIVER_KAFKA_GROUP_ID"]
    messages = [
        alert_message(7001, 1),
        alert_message(7001, 2),
        (b"bad", b'{"event": {'),
        alert_message(7001, 3),
    ]
    placed = produce(kafka_broker.bootstrap, topic, messages)
    assert [offset for _, offset in placed] == [0, 1, 2, 3]
    db = api.db()

    crash = start_listener(
        env, tmp_path / "crash.log", str(ROOT / "tests" / "support" / "crash_listener.py"), step, "2"
    )
    assert crash.proc.wait(120) == 17, crash.text()
    # the state the crash left: the second message is stored only from 'stored' on, committed only after
    stored_ids = {d["event_id"] for d in db.alerts.find({"run_id": 7001})}
    assert stored_ids == ({1} if step == "received" else {1, 2})
    assert committed(kafka_broker.bootstrap, group, topic)[0] == (2 if step == "committed" else 1)

    listener = start_listener(env, tmp_path / "listener.log")
    try:
        wait_until(
            lambda: committed(kafka_broker.bootstrap, group, topic)[0] == 4, 120, "every offset committed"
        )
    finally:
        assert listener.stop() == 0, listener.text()
    assert sorted(d["event_id"] for d in db.alerts.find({"run_id": 7001})) == [1, 2, 3]
    for event_id in (1, 2, 3):
        assert db.scans.count_documents({"alert.run_id": 7001, "alert.event_id": event_id}) == 1
    rejections = list(db.alert_rejections.find({"topic": topic}))
    assert [(r["partition"], r["offset"]) for r in rejections] == [(0, 2)]
    assert "not JSON" in rejections[0]["reason"]
    origin = db.alerts.find_one({"run_id": 7001, "event_id": 3})["origin"]
    assert (origin["topic"], origin["partition"], origin["offset"]) == (topic, 0, 3)


def test_malformed_messages_are_recorded_and_dead_lettered(
    quiet_intake: Any,
    kafka_broker: Broker,
    tmp_path: Path,
) -> None:
    api, topic, env = quiet_intake
    bodies = [
        b"\xff\xfe not text",
        b"[1, 2, 3]",
        json.dumps(
            {"event": {**make_event(), "schema": "skydriver.event/99"}, "alert": {"run_id": 1, "event_id": 2}}
        ).encode(),
        json.dumps({"hello": "world"}).encode(),
        alert_message(7002, 1)[1],
    ]
    produce(kafka_broker.bootstrap, topic, [(f"k{i}".encode(), b) for i, b in enumerate(bodies)])
    listener = start_listener(env, tmp_path / "listener.log")
    try:
        wait_until(
            lambda: committed(kafka_broker.bootstrap, env["SKYDRIVER_KAFKA_GROUP_ID"], topic)[0] == 5,
            120,
            "offsets",
        )
    finally:
        listener.stop()
    db = api.db()
    reasons = {r["offset"]: r["reason"] for r in db.alert_rejections.find({"topic": topic})}
    assert set(reasons) == {0, 1, 2, 3}
    assert "not UTF-8" in reasons[0]
    assert "not a JSON object" in reasons[1]
    assert "event.schema" in reasons[2] and "skydriver.event/1" in reasons[2]
    assert "expected {event, alert}" in reasons[3]
    assert db.scans.count_documents({"alert.run_id": 7002}) == 1
    letters = read_topic(f"kafka://{kafka_broker.bootstrap}/{topic}.dead")
    assert sorted(int(h["skydriver-offset"]) for _, _, h in letters) == [0, 1, 2, 3]
    by_offset = {int(h["skydriver-offset"]): (h, v) for _, v, h in letters}
    assert by_offset[1][1] == bodies[1] and by_offset[1][0]["skydriver-topic"] == topic
    assert by_offset[0][0]["skydriver-reason"] == reasons[0]
    recorded = db.alert_rejections.find_one({"topic": topic, "offset": 2})
    assert recorded["dead_letter"]["topic"] == f"{topic}.dead"


def test_notices_survive_the_broker_going_away_and_an_api_restart(
    own_broker: Broker,
    tmp_path: Path,
    services: None,
) -> None:
    topic = unique_topic("notices")
    api = start_api(
        tmp_path,
        alert_reco="dummy",
        alert_nsides="2:0",
        alert_workers="1",
        kafka_bootstrap=own_broker.bootstrap,
        kafka_notice_topic=topic,
        kafka_notice_timeout_s="2",
    )
    try:
        db = api.db()
        with api.client() as client:
            first = client.request("POST", "/api/v1/alerts", json=json_alert(7101, 1)).json()["scan_id"]

            def notice_of(scan_id: str) -> dict[str, Any]:
                return (db.scans.find_one({"_id": scan_id}) or {}).get("notice") or {}

            wait_until(lambda: "published" in notice_of(first), 120, "the first notice published")
            assert [k for k, _, _ in read_topic(f"kafka://{own_broker.bootstrap}/{topic}")] == ["7101:1:0"]

            own_broker.stop()
            second = client.request("POST", "/api/v1/alerts", json=json_alert(7101, 2, revision=3)).json()[
                "scan_id"
            ]
            wait_until(lambda: notice_of(second).get("attempts", 0) >= 2, 120, "failed attempts recorded")
        stored = notice_of(second)
        assert "published" not in stored and stored["last_error"]
        assert stored["next_attempt_at"] > stored["prepared_at"]  # backing off, not spinning

        restart_api(api, tmp_path)
        own_broker.start()  # an empty broker: tansu keeps nothing across a restart
        wait_until(lambda: "published" in notice_of(second), 120, "the second notice published")
        on_topic = read_topic(f"kafka://{own_broker.bootstrap}/{topic}")
        # only what was missing went out, with the bytes stored before the outage
        assert [(k, v.decode()) for k, v, _ in on_topic] == [("7101:2:3", stored["payload"])]
        notice = json.loads(stored["payload"])
        assert notice["schema"] == "skydriver.notice/1" and notice["state"] == "completed"
        assert notice["alert"]["revision"] == 3 and notice["gcn"]["id"] == ["7101_2"]
        published = notice_of(second)["published"]
        assert (published["topic"], published["offset"]) == (topic, 0)
    finally:
        stop_api(api)


def json_alert(run_id: int, event_id: int, revision: int = 0) -> dict[str, Any]:
    return json.loads(alert_message(run_id, event_id, revision)[1])


def test_the_listener_refuses_a_bad_kafka_setting_with_the_reason(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "skydriver_api.cli", "alerts", "listen"],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "SKYDRIVER_KAFKA_ALERT_TOPICS": "alerts"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "SKYDRIVER_KAFKA_BOOTSTRAP" in result.stdout + result.stderr


def test_alertsim_over_rest_and_its_check(tmp_path: Path, services: None) -> None:
    """The same simulated stream through POST /api/v1/alerts: corrupt bodies get a 4xx, duplicates
    the first scan, and the check counts exactly that (scans are not run here: the only slot is
    taken, so the check looks at what was stored)."""
    import yaml

    api = start_api(tmp_path, max_concurrent_scans="1", max_event_bytes=str(1024 * 1024))
    hold_the_only_slot(api)
    spec = {
        "seed": 5,
        "target": "rest",
        "api_url": api.url,
        "rate_per_s": 20,
        "duration_s": 1,
        "revisions": 0.25,
        "duplicates": 0.2,
        "corrupt": 0.2,
        "oversize_bytes": 1_100_000,
        "energy_gev": [1e4, 3e4],
    }
    (tmp_path / "rest.yaml").write_text(yaml.safe_dump(spec))
    env = {**api.env, "SKYDRIVER_TOKEN": api.admin_token, "PYTHONPATH": str(ROOT)}
    cli = [sys.executable, "-m", "skydriver_api.cli", "alertsim"]
    try:
        sent = subprocess.run(
            [*cli, "run", "rest.yaml", "-o", "prov.json"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert sent.returncode == 0, sent.stdout + sent.stderr
        prov = json.loads((tmp_path / "prov.json").read_text())
        statuses = {m["kind"]: set() for m in prov["messages"]}
        for m in prov["messages"]:
            statuses[m["kind"]].add(m["status"])
        assert statuses == {"new": {201}, "update": {201}, "duplicate": {200}, "corrupt": {400, 413, 422}}
        checked = subprocess.run(
            [*cli, "check", "prov.json"], env=env, cwd=tmp_path, capture_output=True, text=True
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "0 lost, 0 doubled, 0 unexpected" in checked.stdout
        assert "corrupt: 4 sent, 4 refused with a 4xx" in checked.stdout
        # a scan deleted behind the service's back is reported lost, and the check fails
        victim = next(m["identity"] for m in prov["messages"] if m["kind"] == "new")
        api.db().scans.delete_one({"alert.run_id": victim[0], "alert.event_id": victim[1]})
        checked = subprocess.run(
            [*cli, "check", "prov.json"], env=env, cwd=tmp_path, capture_output=True, text=True
        )
        assert checked.returncode == 1 and f"lost: no scan for {victim[0]}:{victim[1]}:0" in checked.stdout
    finally:
        stop_api(api)


def test_an_alert_stored_without_its_scan_gets_it_from_the_next_copy(
    quiet_intake: Any, kafka_broker: Broker, tmp_path: Path
) -> None:
    """A listener (or API) killed between storing the alert and its scan leaves the alert alone; the
    copy that comes again (the uncommitted message, a duplicate) writes the scan under the alert's
    scan id instead of answering with a scan that does not exist."""
    api, topic, env = quiet_intake
    db = api.db()
    key, value = alert_message(7003, 1, revision=1)
    db.alerts.insert_one(
        {
            "run_id": 7003,
            "event_id": 1,
            "revision": 1,
            "stream": "test",
            "scan_id": "a" * 32,
            "owner": "kafka-listener",
        }
    )
    with api.client() as client:
        answer = client.request("POST", "/api/v1/alerts", json=json.loads(value)).json()
    assert (answer["scan_id"], answer["duplicate"]) == ("a" * 32, True)
    scan = db.scans.find_one({"_id": "a" * 32})
    assert scan["alert"]["revision"] == 1 and scan["state"] == "queued" and scan["priority"] == 100
    assert db.events.count_documents({"_id": "a" * 32}) == 1
    produce(kafka_broker.bootstrap, topic, [(key, value)])  # the same alert over Kafka: nothing new
    listener = start_listener(env, tmp_path / "listener.log")
    try:
        wait_until(
            lambda: committed(kafka_broker.bootstrap, env["SKYDRIVER_KAFKA_GROUP_ID"], topic)[0] == 1,
            120,
            "offset",
        )
    finally:
        listener.stop()
    assert db.scans.count_documents({"alert.run_id": 7003}) == 1
