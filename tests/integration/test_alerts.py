"""Realtime alerts: one scan per (run, event, revision), realtime priority, configured defaults,
i3live documents converted, corrupt ones refused, and a webhook with the GCN-style summary."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from skyscan.physics.geometry import find_default_geometry
from tests.conftest import make_event, start_api, stop_api, wait_until
from tests.integration.conftest import OpsApi, make_tokens

GEOMETRY = find_default_geometry()
EVENTS = GEOMETRY.parent.parent / "realtime_events" if GEOMETRY else None
I3LIVE = EVENTS / "hese_event_00.json" if EVENTS else None
SUPERDST_ONLY = EVENTS / "138632_31747601.json" if EVENTS else None


def alert(run_id: int, event_id: int, revision: int = 0, stream: str = "gold") -> dict[str, Any]:
    return {
        "event": make_event(run_id=run_id, event_id=event_id),
        "alert": {
            "run_id": run_id,
            "event_id": event_id,
            "revision": revision,
            "stream": stream,
            "signalness": 0.5,
        },
    }


def test_an_alert_launches_a_realtime_scan_with_the_configured_defaults(quiet_api: OpsApi) -> None:
    with quiet_api.http("owner") as http:
        resp = http.post("/api/v1/alerts", json=alert(5001, 1))
        assert resp.status_code == 201, resp.text
        body = resp.json()
        status = http.get(f"/api/v1/scans/{body['scan_id']}").json()
    assert body["duplicate"] is False
    assert (status["priority"], status["reco"], status["nsides"], status["workers"]) == (
        100,
        "pandel-mpe",
        "8:0,64:12",
        3,
    )
    assert status["alert"]["stream"] == "gold" and status["alert"]["signalness"] == 0.5
    assert status["classifiers"] == {"alert_stream": "gold", "alert_revision": 0}


def test_duplicate_alerts_create_no_second_scan(quiet_api: OpsApi) -> None:
    db = quiet_api.db()
    with quiet_api.http("owner") as http:
        first = http.post("/api/v1/alerts", json=alert(5002, 7)).json()
        again = http.post("/api/v1/alerts", json=alert(5002, 7))
    assert again.status_code == 200
    assert again.json()["duplicate"] is True and again.json()["scan_id"] == first["scan_id"]
    with quiet_api.http("admin") as http:  # another sender, same alert: still the same scan
        assert http.post("/api/v1/alerts", json=alert(5002, 7)).json()["scan_id"] == first["scan_id"]
    assert db.scans.count_documents({"run_id": 5002, "event_id": 7}) == 1
    assert db.alerts.count_documents({"run_id": 5002, "event_id": 7}) == 1


def test_a_burst_of_the_same_alert_makes_one_scan(quiet_api: OpsApi) -> None:
    def post(_: int) -> tuple[int, str]:
        with quiet_api.http("owner") as http:
            resp = http.post("/api/v1/alerts", json=alert(5003, 9))
            return resp.status_code, resp.json()["scan_id"]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(post, range(8)))
    assert len({s for _, s in results}) == 1
    assert [c for c, _ in results].count(201) == 1 and [c for c, _ in results].count(200) == 7
    assert quiet_api.db().scans.count_documents({"run_id": 5003, "event_id": 9}) == 1


def test_a_new_revision_is_a_new_scan(quiet_api: OpsApi) -> None:
    with quiet_api.http("owner") as http:
        r0 = http.post("/api/v1/alerts", json=alert(5004, 1, revision=0)).json()
        r1 = http.post("/api/v1/alerts", json=alert(5004, 1, revision=1))
    assert r1.status_code == 201 and r1.json()["scan_id"] != r0["scan_id"]


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"event": {"schema": "skydriver.event/1"}, "alert": {"run_id": 1, "event_id": 2}}, "event"),
        ({"event": make_event(run_id=1, event_id=2), "alert": {"run_id": 1}}, "alert.event_id"),
        (
            {"event": make_event(run_id=1, event_id=2), "alert": {"run_id": 1, "event_id": 3}},
            "differ from the event",
        ),
        ({"something": "else"}, "expected {event, alert}"),
        ({"value": {"data": {"frames": [["P", "not base64!"]]}}}, "i3live event"),
    ],
)
def test_corrupt_alerts_are_refused_and_change_nothing(quiet_api: OpsApi, body: Any, fragment: str) -> None:
    db = quiet_api.db()
    n_scans, n_alerts = db.scans.count_documents({}), db.alerts.count_documents({})
    with quiet_api.http("owner") as http:
        resp = http.post("/api/v1/alerts", json=body)
    assert resp.status_code == 422 and fragment in resp.json()["detail"], resp.text
    assert (db.scans.count_documents({}), db.alerts.count_documents({})) == (n_scans, n_alerts)


def test_non_json_alert_is_refused(quiet_api: OpsApi) -> None:
    with quiet_api.http("owner") as http:
        resp = http.post("/api/v1/alerts", content=b"{not json", headers={"Content-Type": "application/json"})
    assert resp.status_code == 422


@pytest.mark.skipif(I3LIVE is None or not I3LIVE.is_file(), reason="shared realtime events absent")
def test_an_i3live_document_is_converted_and_deduplicated(quiet_api: OpsApi) -> None:
    assert I3LIVE is not None
    document = json.loads(Path(I3LIVE).read_text())
    with quiet_api.http("owner") as http:
        first = http.post("/api/v1/alerts", json=document)
        assert first.status_code == 201, first.text
        again = http.post("/api/v1/alerts", json={"i3live": document, "alert": {"revision": 0}})
        status = http.get(f"/api/v1/scans/{first.json()['scan_id']}").json()
        event = http.get(f"/api/v1/scans/{first.json()['scan_id']}/event").json()["event"]
    assert again.status_code == 200 and again.json()["scan_id"] == first.json()["scan_id"]
    assert (status["run_id"], status["event_id"]) == (127907, 16605651)
    assert status["alert"]["stream"] == "heseEvent" and status["alert"]["source"] == "i3live"
    assert event["is_real_event"] is True and len(event["pulses"]) == 635


@pytest.mark.skipif(
    SUPERDST_ONLY is None or not SUPERDST_ONLY.is_file(), reason="shared realtime events absent"
)
def test_an_i3live_document_without_plain_pulses_is_refused_with_the_reason(quiet_api: OpsApi) -> None:
    assert SUPERDST_ONLY is not None
    n = quiet_api.db().scans.count_documents({})
    with quiet_api.http("owner") as http:
        resp = http.post("/api/v1/alerts", json=json.loads(Path(SUPERDST_ONLY).read_text()))
    assert resp.status_code == 422 and "SuperDST" in resp.json()["detail"]
    assert quiet_api.db().scans.count_documents({}) == n


# -- webhook -----------------------------------------------------------------------------------------
class Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers["Content-Length"])
        Receiver.received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def webhook_api(services: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpsApi]:
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    api = start_api(
        tmp_path_factory.mktemp("webhook"),
        alert_reco="dummy",
        alert_nsides="8:0",
        alert_workers="2",
        alert_webhook_url=f"http://127.0.0.1:{server.server_port}/gcn",
    )
    try:
        ops = OpsApi(api)
        make_tokens(ops)
        yield ops
    finally:
        stop_api(api)
        server.shutdown()


def test_a_completed_alert_scan_posts_its_gcn_summary_to_the_webhook(webhook_api: OpsApi) -> None:
    with webhook_api.http("owner") as http:
        scan_id = http.post("/api/v1/alerts", json=alert(6001, 3, stream="bronze")).json()["scan_id"]
    posted = wait_until(lambda: [r for r in Receiver.received if r["scan_id"] == scan_id], 180, "the webhook")
    assert len(posted) == 1
    payload = posted[0]
    assert payload["state"] == "completed" and payload["alert"]["stream"] == "bronze"
    gcn = payload["gcn"]
    # the reconciler records the outcome after the receiver has answered: wait for that write
    doc = wait_until(
        lambda: (d := webhook_api.db().scans.find_one({"_id": scan_id})) and "outcome" in d["webhook"] and d,
        30,
        "the webhook outcome",
    )
    assert doc["webhook"]["outcome"] == "delivered (HTTP 204)" and doc["webhook_pending"] is False
    assert gcn["ra"] == pytest.approx(doc["best_fit"]["ra_deg"]) and gcn["dec"] == pytest.approx(
        doc["best_fit"]["dec_deg"]
    )
