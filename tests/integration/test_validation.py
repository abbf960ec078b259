"""Bad input gets a clear 4xx naming what is wrong, and changes nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import LiveApi, make_event


def post(api: LiveApi, body: Any, token: str | None = "admin", **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {api.admin_token if token == 'admin' else token}"} if token else {}
    return httpx.post(f"{api.url}/api/v1/scans", json=body, headers=headers, timeout=30, **kw)


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"nsides": "8:0,60:12"}, 422, "power of two"),
        ({"nsides": "8:0,4096:12"}, 422, "exceeds the maximum"),
        ({"nsides": "8:0,64:0"}, 422, "positive extension"),
        ({"nsides": "64:0,8:12"}, 422, "increase"),
        ({"nsides": "8:5"}, 422, "first step"),
        ({"reco": "millipede"}, 422, "unknown reco"),
        ({"reco": "dummy", "resources": {"image": "evil/skydriver:latest"}}, 422, "resources"),
        ({"profile": "huge"}, 422, "no worker profile 'huge' is configured; known: default"),
        ({"clusters": [{"name": "osg", "workers": 1}]}, 422, "'osg' not configured; known: default"),
        ({"reco": "dummy", "reco_options": {"wobble": 1}}, 422, "bad options"),
        ({"workers": 0}, 422, "workers"),
        ({"strategy": "random"}, 422, "strategy"),
        ({"priority": 1000}, 422, "priority"),
        ({"unknown_field": 1}, 422, "unknown_field"),
    ],
)
def test_bad_scan_requests(shared_api: LiveApi, change: dict, status: int, message: str) -> None:
    before = shared_api.db().scans.count_documents({})
    body = {"event": make_event(), "reco": "dummy", "nsides": "8:0", **change}
    resp = post(shared_api, body)
    assert resp.status_code == status, resp.text
    assert message in resp.json()["detail"]
    assert shared_api.db().scans.count_documents({}) == before
    assert shared_api.db().events.count_documents({}) == shared_api.db().scans.count_documents({})


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda e: e["pulses"][2].update(time="late"), "event.pulses.2.time"),
        (lambda e: e.update(schema="skydriver.event/0"), "event.schema"),
        (lambda e: e.pop("mjd"), "event.mjd"),
        (lambda e: e.update(pulses=[]), "event.pulses"),
    ],
)
def test_malformed_events_name_the_field(shared_api: LiveApi, mutate, field: str) -> None:  # type: ignore[no-untyped-def]
    event = make_event()
    mutate(event)
    resp = post(shared_api, {"event": event, "reco": "dummy", "nsides": "8:0"})
    assert resp.status_code == 422
    assert field in resp.json()["detail"]


def test_dummy_without_truth_is_refused(shared_api: LiveApi) -> None:
    event = make_event()
    del event["truth"]
    resp = post(shared_api, {"event": event, "reco": "dummy", "nsides": "8:0"})
    assert resp.status_code == 422 and "truth" in resp.json()["detail"]


def test_oversized_body_is_refused_before_reading(shared_api: LiveApi) -> None:
    limit = 16 * 1024 * 1024
    resp = httpx.post(
        f"{shared_api.url}/api/v1/scans",
        content=b"x" * (limit + 1),
        headers={"Authorization": f"Bearer {shared_api.admin_token}", "Content-Type": "application/json"},
        timeout=60,
    )
    assert resp.status_code == 413 and "exceeds" in resp.json()["detail"]


def test_not_json_and_unknown_scan(shared_api: LiveApi) -> None:
    auth = {"Authorization": f"Bearer {shared_api.admin_token}"}
    resp = httpx.post(
        f"{shared_api.url}/api/v1/scans",
        content=b"{nope",
        timeout=30,
        headers={**auth, "Content-Type": "application/json"},
    )
    assert resp.status_code == 422 and "JSON" in resp.json()["detail"]
    resp = httpx.get(f"{shared_api.url}/api/v1/scans/doesnotexist", headers=auth, timeout=30)
    assert resp.status_code == 404 and "doesnotexist" in resp.json()["detail"]
    resp = httpx.get(
        f"{shared_api.url}/api/v1/scans/doesnotexist/result?format=tiff", headers=auth, timeout=30
    )
    assert resp.status_code == 422 and "format" in resp.json()["detail"]


def test_missing_and_wrong_tokens(shared_api: LiveApi) -> None:
    resp = post(shared_api, {"event": make_event(), "reco": "dummy"}, token=None)
    assert resp.status_code == 401 and "bearer token" in resp.json()["detail"]
    assert resp.headers["www-authenticate"] == "Bearer"
    resp = post(shared_api, {"event": make_event(), "reco": "dummy"}, token="sd_not-a-token")
    assert resp.status_code == 401 and "unknown token" in resp.json()["detail"]


def test_level_set_is_validated_and_used(shared_api: LiveApi) -> None:
    resp = post(shared_api, {"event": make_event(), "reco": "dummy", "nsides": "8:0", "level_set": "68:x"})
    assert resp.status_code == 422 and "level_set" in resp.json()["detail"]
    with shared_api.client() as client:
        scan_id = client.submit(
            {
                "event": make_event(),
                "reco": "dummy",
                "nsides": "8:0",
                "workers": 1,
                "level_set": "icecube-sim",
            }
        )["scan_id"]
        assert client.wait(scan_id, timeout_s=180)["state"] == "completed"
        doc = client.result(scan_id).json()
    assert doc["regions"]["level_set"] == "icecube-sim"
    assert sorted(v["level"] for v in doc["regions"]["levels"].values()) == [22.2, 64.2]
