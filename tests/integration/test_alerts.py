"""Realtime alerts: one scan per (run, event, revision), realtime priority, configured defaults,
i3live documents converted (plain pulse maps and SuperDST), corrupt ones refused, and a webhook
with the GCN notice."""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from skyscan.physics.geometry import find_default_geometry
from skyscan.readers.realtime import decode_frames, load_realtime_document
from tests.conftest import make_event, wait_until
from tests.integration.conftest import OpsApi, ops_api
from tests.support.gcn_schema import SKIP_REASON, schema_dir, validation_errors
from tests.support.i3frames import with_object

GEOMETRY = find_default_geometry()
EVENTS = GEOMETRY.parent.parent / "realtime_events" if GEOMETRY else None
I3LIVE = EVENTS / "hese_event_00.json" if EVENTS else None
SUPERDST_JSON = EVENTS / "138632_31747601.json" if EVENTS else None
GOLD = EVENTS / "run00136766-evt000007637140-GOLD.pkl" if EVENTS else None
needs_superdst = pytest.mark.skipif(
    SUPERDST_JSON is None or not SUPERDST_JSON.is_file(), reason="shared realtime events absent"
)


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


@needs_superdst
def test_a_superdst_alert_is_decoded(quiet_api: OpsApi) -> None:
    assert SUPERDST_JSON is not None
    with quiet_api.http("owner") as http:
        resp = http.post("/api/v1/alerts", json=json.loads(Path(SUPERDST_JSON).read_text()))
        assert resp.status_code == 201, resp.text
        scan_id = resp.json()["scan_id"]
        event = http.get(f"/api/v1/scans/{scan_id}/event").json()["event"]
    assert len(event["pulses"]) == 948 and event["metadata"]["pulse_series"] == "SplitInIcePulses"
    assert {"l2_online_SplineMPE", "SPEFit2"} <= set(event["reference_fits"])
    assert resp.json()["alert"]["event_name"] == "IceCube-231202A"


def _corrupt_superdst_documents() -> list[tuple[str, dict[str, Any], str]]:
    assert SUPERDST_JSON is not None
    document = json.loads(Path(SUPERDST_JSON).read_text())
    superdst = next(o for _, objs in decode_frames(document) for k, o in objs.items() if k == "I3SuperDST")
    flipped = json.loads(json.dumps(document))
    frames = flipped["value"]["data"]["frames"]
    q = next(f for f in frames if f[0] == "Q")
    middle = len(q[1]) // 2
    q[1] = q[1][:middle] + ("A" if q[1][middle] != "A" else "B") + q[1][middle + 1 :]
    # flip the low bit of the charge-stamp count (a two-byte size after its 0xfd tag at byte 34):
    # every later stream is misaligned
    recount = bytearray(superdst.buffer)
    assert recount[34] == 0xFD
    recount[35] ^= 0x01
    return [
        (
            "truncated",
            with_object(document, "I3SuperDST", superdst.buffer[:-40]),
            r"I3SuperDST: .*at byte \d+",
        ),
        (
            "flipped count bit",
            with_object(document, "I3SuperDST", bytes(recount)),
            r"I3SuperDST: .*at byte \d+",
        ),
        ("flipped payload", flipped, r"not base64\(zlib"),
    ]


@needs_superdst
def test_corrupt_superdst_alerts_are_refused_and_write_nothing(quiet_api: OpsApi) -> None:
    db = quiet_api.db()
    before = (db.scans.count_documents({}), db.alerts.count_documents({}), db.events.count_documents({}))
    with quiet_api.http("owner") as http:
        for label, document, pattern in _corrupt_superdst_documents():
            resp = http.post("/api/v1/alerts", json=document)
            assert resp.status_code == 422, (label, resp.text)
            detail = resp.json()["detail"]
            assert detail.startswith("i3live event: ") and re.search(pattern, detail), (label, detail)
    after = (db.scans.count_documents({}), db.alerts.count_documents({}), db.events.count_documents({}))
    assert after == before


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


@contextlib.contextmanager
def api_with_webhook(tmp: Path, **settings: str) -> Iterator[OpsApi]:
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with ops_api(tmp, alert_webhook_url=f"http://127.0.0.1:{server.server_port}/gcn", **settings) as ops:
            yield ops
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def webhook_api(services: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpsApi]:
    with api_with_webhook(
        tmp_path_factory.mktemp("webhook"), alert_reco="dummy", alert_nsides="8:0", alert_workers="2"
    ) as api:
        yield api


@pytest.fixture(scope="module")
def real_alert_api(services: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpsApi]:
    """Alert scans of real events: the cheapest real reco (the dummy needs a truth) on nside 8 only."""
    with api_with_webhook(
        tmp_path_factory.mktemp("real-alert"),
        alert_reco="pandel-spe",
        alert_nsides="8:0",
        alert_workers="2",
        gcn_healpix_base_url="https://alerts.example.org/skymaps",
    ) as api:
        yield api


@pytest.fixture(scope="module")
def contour_alert_api(services: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpsApi]:
    with ops_api(
        tmp_path_factory.mktemp("contour-alert"),
        alert_reco="dummy",
        alert_strategy="contour",
        alert_nsides="8,32",
        alert_workers="2",
    ) as ops:
        yield ops


def test_alert_scans_follow_the_configured_strategy(contour_alert_api: OpsApi) -> None:
    """SKYDRIVER_ALERT_STRATEGY=contour: the alert's scan refines until its 90% region is resolved
    at the finest nside, which a fixed progression does not promise."""
    with contour_alert_api.http("owner") as http:
        resp = http.post("/api/v1/alerts", json=alert(7001, 1))
        assert resp.status_code == 201, resp.text
        scan_id = resp.json()["scan_id"]
    with contour_alert_api.api.client() as client:
        status = client.wait(scan_id, timeout_s=180)
        result = client.result(scan_id).json()
    assert status["state"] == "completed", status
    assert (status["strategy"], status["nsides"], status["priority"]) == ("contour", "8,32", 100)
    region = result["regions"]["levels"]["90"]
    assert region["resolved_fraction"] == 1.0 and region["area_deg2"] > 0
    assert result["best_fit"]["nside"] == 32


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


@pytest.mark.skipif(GOLD is None or not GOLD.is_file(), reason="shared realtime events absent")
@pytest.mark.skipif(schema_dir() is None, reason=SKIP_REASON)
def test_the_gold_alert_runs_to_a_valid_gcn_notice_on_the_webhook(real_alert_api: OpsApi) -> None:
    assert GOLD is not None
    document = load_realtime_document(GOLD)
    body = {"i3live": document, "alert": {"revision": 0, "stream": "gold", "signalness": 0.61}}
    with real_alert_api.http("owner") as http:
        resp = http.post("/api/v1/alerts", json=body)
        assert resp.status_code == 201, resp.text
        scan_id = resp.json()["scan_id"]
        posted = wait_until(
            lambda: [r for r in Receiver.received if r["scan_id"] == scan_id], 300, "the GOLD alert's webhook"
        )
        via_api = http.get(f"/api/v1/scans/{scan_id}/result", params={"format": "gcn"}).json()
        result = http.get(f"/api/v1/scans/{scan_id}/result").json()
    payload = posted[0]
    assert payload["state"] == "completed", payload
    gcn = payload["gcn"]
    assert validation_errors(gcn) == [] and validation_errors(via_api) == []
    assert (gcn["pipeline"], gcn["alert_type"], gcn["alert_tense"], gcn["record_number"]) == (
        "Gold Track Alert",
        "initial",
        "current",
        1,
    )
    assert gcn["event_name"] == ["IceCube-220624A"] and gcn["id"] == ["136766_7637140"]
    assert gcn["p_astro"] == 0.61 and gcn["trigger_time"].startswith("2022-06-24T16:13:16")
    assert gcn["healpix_url"].startswith("https://alerts.example.org/skymaps/run00136766.evt000007637140.")
    assert gcn["ra"] == pytest.approx(result["best_fit"]["ra_deg"], abs=1e-4)
    assert set(gcn["additional_info"]["reference_fits"]) == {
        "OnlineL2_SplineMPE",
        "OnlineL2_MPEFit",
        "SPEFit2",
    }
    assert set(result["reference_fits"]) == {"OnlineL2_SplineMPE", "OnlineL2_MPEFit", "SPEFit2"}
    assert via_api["event_name"] == gcn["event_name"] and via_api["ra"] == gcn["ra"]
