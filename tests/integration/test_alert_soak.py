"""The bounded soak of ``make test``: ``alertsim`` sends 50 alerts in about a minute (a burst of 10
in one second, 20% duplicates, 10% corrupt of every kind, 25% of the events updated) to a real
broker while the listener is killed twice and the broker's connections are dropped once; then
``alertsim check`` must find every alert revision with one scan and one notice, every corrupt
message rejected with its reason, and nothing else."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, start_api, stop_api
from tests.support.kafka import Broker, create_topic, kafka_broker, listener_env, unique_topic

FIXTURES = (kafka_broker,)


def can_drop_connections() -> bool:
    return os.geteuid() == 0 and shutil.which("ss") is not None


@pytest.mark.restarts_services  # it drops every connection to the Kafka broker for a while
@pytest.mark.timeout(1500)  # the stream takes a minute; 35 scans' processes take what the machine gives
def test_an_alert_stream_with_disruptions_loses_and_doubles_nothing(
    kafka_broker: Broker, tmp_path: Path, services: None
) -> None:
    topic = unique_topic("soak")
    notices = f"{topic}.notices"
    create_topic(kafka_broker.bootstrap, topic, partitions=3)
    api = start_api(
        tmp_path,
        alert_reco="dummy",
        alert_nsides="1:0",
        alert_workers="1",
        max_event_bytes=str(1024 * 1024),
        worker_idle_timeout_s="5",
        # as a realtime deployment runs: pooled processes serve the alerts' scans one after another
        warm_servers="2",
        warm_workers="2",
        kafka_bootstrap=kafka_broker.bootstrap,
        kafka_notice_topic=notices,
    )
    env = listener_env(
        api,
        kafka_alert_topics=topic,
        kafka_dead_letter_topic=f"{topic}.dead",
        kafka_group_id=f"group-{topic}",
        kafka_session_timeout_s="6",
        log_format="text",
    )
    disruptions = [{"at_s": 12, "kind": "restart_consumer"}, {"at_s": 30, "kind": "restart_consumer"}]
    if can_drop_connections():  # root and iproute2: the set-up of make test has both
        disruptions.append({"at_s": 20, "kind": "drop_broker_connections", "seconds": 2})
    stream = {
        "seed": 2026,
        "topic": topic,
        "notice_topic": notices,
        "rate_per_s": 1.0,
        "duration_s": 40,
        "bursts": [{"at_s": 5, "messages": 10}],
        "energy_gev": [1.0e4, 1.0e6],
        "revisions": 0.25,
        "duplicates": 0.2,
        "corrupt": 0.1,
        "oversize_bytes": 1_100_000,
        "disruptions": disruptions,
        "listener": {
            "command": [sys.executable, "-m", "skydriver_api.cli", "alerts", "listen"],
            "log": str(tmp_path / "listener.log"),
        },
    }
    (tmp_path / "stream.yaml").write_text(yaml.safe_dump(stream))
    provenance = tmp_path / "provenance.json"
    try:
        sent = subprocess.run(
            [
                sys.executable,
                "-m",
                "skydriver_api.cli",
                "alertsim",
                "run",
                "stream.yaml",
                "-o",
                str(provenance),
            ],
            env={**env, "PYTHONPATH": str(ROOT)},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=400,
        )
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert "sent 50 of 50 messages" in sent.stdout, sent.stdout
        checked = subprocess.run(
            [
                sys.executable,
                "-m",
                "skydriver_api.cli",
                "alertsim",
                "check",
                str(provenance),
                "--wait-s",
                "900",
            ],
            env={**env, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=1000,
        )
    finally:
        stop_api(api)
    report = checked.stdout
    assert checked.returncode == 0, report + checked.stderr
    prov = json.loads(provenance.read_text())
    kinds = [m["kind"] for m in prov["messages"]]
    assert (kinds.count("duplicate"), kinds.count("corrupt"), kinds.count("update")) == (10, 5, 7)
    assert prov["listener_starts"] == 3 and prov["all_consumed"] is True
    assert len(prov["disruptions"]) == len(disruptions)
    assert "35 expected; scans: 0 lost, 0 doubled, 0 unexpected" in report
    assert "5 rejected (5 with the expected reason), 0 not rejected, 5 dead-lettered" in report
    assert "35 of 35 published, 0 missing, 0 with different contents" in report
    assert report.rstrip().endswith("RESULT: OK")
