"""A dummy scan through the REST API, the reconciler, a server and workers over RabbitMQ and MongoDB."""

from __future__ import annotations

import math

import healpy as hp
import numpy as np

from skyscan.sky.coordinates import angular_distance, detector_to_equatorial
from tests.conftest import LiveApi, make_event
from tests.support.stored_results import stored_results


def test_dummy_scan_at_nside_8_completes_with_one_result_per_pixel(shared_api: LiveApi) -> None:
    event = make_event(zenith=2.0, azimuth=1.2)
    with shared_api.client() as client:
        created = client.submit({"event": event, "reco": "dummy", "nsides": "8:0", "workers": 2})
        scan_id = created["scan_id"]
        assert created["state"] == "queued"
        status = client.wait(scan_id, timeout_s=180)
        assert status["state"] == "completed", (status, shared_api.scan_logs(scan_id))
        result = client.result(scan_id).json()

    db = shared_api.db()
    stored = stored_results(db, scan_id)
    assert len(stored) == 768
    assert sorted(r["pixel"] for r in stored) == list(range(768))
    assert {r["nside"] for r in stored} == {8}

    assert result["complete"] is True
    assert result["n_pixels"] == 768
    assert [(p["nside"], p["pixel"]) for p in result["pixels"]] == [(8, i) for i in range(768)]
    assert status["progress"]["nsides"]["8"] == {
        "tasks_sent": 768,
        "tasks_done": 768,
        "pixels_done": 768,
        "pixels_failed": 0,
    }

    # the dummy's minimum is the event's stated direction: the best pixel lies within one pixel of it
    true_ra, true_dec = detector_to_equatorial(
        event["truth"]["zenith"], event["truth"]["azimuth"], event["mjd"]
    )
    best = result["best_fit"]
    offset = float(
        angular_distance(math.radians(best["ra_deg"]), math.radians(best["dec_deg"]), true_ra, true_dec)
    )
    assert math.degrees(offset) < hp.max_pixrad(8, degrees=True)
    assert best["nside"] == 8
    assert best["pixel"] == int(np.argmin([p["llh"] for p in result["pixels"]]))
    assert result["truth"]["offset_deg"] == pytest_approx(math.degrees(offset))

    # the scan's queues are gone once it completed
    import pika

    from skyscan.wire import queue_names

    conn = pika.BlockingConnection(
        pika.URLParameters(
            shared_api.env.get("SKYDRIVER_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
        )
    )
    try:
        for name in queue_names(scan_id).values():
            ch = conn.channel()
            try:
                ch.queue_declare(name, passive=True)
                raise AssertionError(f"queue {name} still exists")
            except pika.exceptions.ChannelClosedByBroker as err:
                assert err.reply_code == 404
    finally:
        conn.close()


def test_progressive_scan_refines_around_the_minimum(shared_api: LiveApi) -> None:
    event = make_event(zenith=0.7, azimuth=4.0, run_id=5, event_id=9)
    with shared_api.client() as client:
        scan_id = client.submit({"event": event, "reco": "dummy", "nsides": "8:0,64:12", "workers": 2})[
            "scan_id"
        ]
        status = client.wait(scan_id, timeout_s=240)
        assert status["state"] == "completed", shared_api.scan_logs(scan_id)
        result = client.result(scan_id).json()
    by_nside = {n: sum(1 for p in result["pixels"] if p["nside"] == n) for n in (8, 64)}
    assert by_nside[8] == 768
    assert 576 <= by_nside[64] <= 1200  # 9..18 coarse pixels x 64 children
    assert result["best_fit"]["nside"] == 64
    assert result["truth"]["offset_deg"] < hp.max_pixrad(64, degrees=True)
    assert status["best_fit"]["pixel"] == result["best_fit"]["pixel"]
    # finished: the progress says so (no ETA left, every task sent is done)
    assert status["progress"]["eta_s"] == 0
    assert status["progress"]["tasks_done"] == status["progress"]["tasks_sent"] == result["n_pixels"]


def pytest_approx(value: float):  # type: ignore[no-untyped-def]
    import pytest

    return pytest.approx(value, rel=1e-9, abs=1e-9)


def test_client_follows_a_scan_through_its_event_stream(shared_api: LiveApi) -> None:
    with shared_api.client() as client:
        scan_id = client.submit(
            {"event": make_event(event_id=31), "reco": "dummy", "nsides": "1:0", "workers": 1}
        )["scan_id"]
        events = list(client.events(scan_id, timeout_s=120))
    states = [data["state"] for kind, data in events if kind == "state"]
    assert states == ["queued", "launching", "running", "completed"]
    assert events[-1] == ("end", {"scan_id": scan_id, "state": "completed", "reason": None})
    done = [data["tasks_done"] for kind, data in events if kind == "progress"]
    assert done == sorted(done) and done[-1] == 12


def test_contour_scan_through_the_service_completes_with_its_options(shared_api: LiveApi) -> None:
    """The stored scan specification is one the server reads back (options, nsides and level set)."""
    event = make_event(zenith=1.4, azimuth=0.7)
    body = {
        "event": event,
        "reco": "dummy",
        "nsides": "4,16",
        "strategy": "contour",
        "strategy_options": {"max_pixels_per_step": 30},
        "level_set": "icecube-sim",
        "workers": 1,
    }
    with shared_api.client() as client:
        scan_id = client.submit(body)["scan_id"]
        status = client.wait(scan_id, timeout_s=180)
        assert status["state"] == "completed", (status, shared_api.scan_logs(scan_id))
        assert status["nsides"] == "4,16"
        result = client.result(scan_id).json()
    assert result["regions"]["level_set"] == "icecube-sim"
    assert "max_pixels_per_step=30" in result["strategy"]
    assert 0 < len([p for p in result["pixels"] if p["nside"] == 16]) <= 30
