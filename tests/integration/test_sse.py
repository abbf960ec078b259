"""Server-Sent Events: a client following a scan sees every state change, in order, then the end."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx

from skydriver_api.client import SkyDriverClient
from tests.conftest import make_event, wait_until
from tests.integration.conftest import OpsApi
from tests.support.cutting_proxy import CuttingProxy


def read_events(
    client: httpx.Client,
    path: str,
    headers: dict[str, str] | None = None,
    on_event: Any = None,
    timeout_s: float = 180,
) -> list[tuple[str, str | None, dict[str, Any]]]:
    """(event, id, data) for every event until the server ends the stream."""
    events: list[tuple[str, str | None, dict[str, Any]]] = []
    kind, event_id, data = "message", None, ""
    with client.stream("GET", path, headers=headers, timeout=httpx.Timeout(10, read=timeout_s)) as resp:
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif line == "" and data:
                events.append((kind, event_id, json.loads(data)))
                if on_event:
                    on_event(events[-1])
                kind, event_id, data = "message", None, ""
    return events


def test_a_client_sees_every_state_change_in_order(running_api: OpsApi) -> None:
    with running_api.http("owner") as http:
        created = http.post(
            "/api/v1/scans", json={"event": make_event(), "reco": "dummy", "nsides": "8:0", "workers": 1}
        )
        scan_id = created.json()["scan_id"]
        events = read_events(http, f"/api/v1/scans/{scan_id}/events")
    states = [(eid, data["state"]) for kind, eid, data in events if kind == "state"]
    assert states == [("0", "queued"), ("1", "launching"), ("2", "running"), ("3", "completed")]
    stored = running_api.db().scans.find_one({"_id": scan_id})
    assert [h["state"] for h in stored["history"]] == [s for _, s in states]
    progress = [data for kind, _, data in events if kind == "progress"]
    done = [p["tasks_done"] for p in progress]
    assert done == sorted(done) and done[-1] == 768 and progress[-1]["state"] == "completed"
    assert progress[-1]["best_fit"]["nside"] == 8
    assert events[-1][0] == "end" and events[-1][2]["state"] == "completed"
    assert [k for k, _, _ in events].index("end") == len(events) - 1

    # reconnecting with Last-Event-ID resumes after the last state seen
    with running_api.http("reader") as http:
        resumed = read_events(http, f"/api/v1/scans/{scan_id}/events", headers={"Last-Event-ID": "1"})
    assert [(eid, d["state"]) for k, eid, d in resumed if k == "state"] == [
        ("2", "running"),
        ("3", "completed"),
    ]


def test_an_abort_ends_the_stream(quiet_api: OpsApi) -> None:
    scan_id = quiet_api.insert_scan("alice")
    seen_first = threading.Event()
    with quiet_api.http("reader") as http:

        def abort_when_following() -> None:
            seen_first.wait(30)
            with quiet_api.http("owner") as owner:
                assert owner.delete(f"/api/v1/scans/{scan_id}").status_code == 202

        aborter = threading.Thread(target=abort_when_following)
        aborter.start()
        events = read_events(
            http,
            f"/api/v1/scans/{scan_id}/events",
            on_event=lambda e: e[0] == "state" and seen_first.set(),
            timeout_s=60,
        )
        aborter.join()
    assert [d["state"] for k, _, d in events if k == "state"] == ["queued", "aborted"]
    assert events[-1][0] == "end" and events[-1][2]["reason"] == "aborted by alice"


def test_events_of_an_unknown_scan_are_404(quiet_api: OpsApi) -> None:
    with quiet_api.http("reader") as http:
        assert http.get("/api/v1/scans/nope/events").status_code == 404


def test_the_client_resumes_a_dropped_stream_with_last_event_id(quiet_api: OpsApi) -> None:
    scan_id = quiet_api.insert_scan("alice")
    proxy = CuttingProxy(quiet_api.url)
    seen: list[tuple[str, dict[str, Any]]] = []
    try:
        with SkyDriverClient(proxy.url, quiet_api.tokens["reader"]) as client:
            follower = threading.Thread(target=lambda: seen.extend(client.events(scan_id, timeout_s=60)))
            follower.start()
            # the first stream was cut after 'queued'; the client is back on a second one
            wait_until(lambda: len(proxy.requests) >= 2, 30, "the client to reconnect")
            with quiet_api.http("owner") as owner:
                assert owner.delete(f"/api/v1/scans/{scan_id}").status_code == 202
            follower.join(60)
    finally:
        proxy.close()
    assert not follower.is_alive()
    assert proxy.cuts == 1
    first, second = (dict(_headers(head)) for head in proxy.requests[:2])
    assert "last-event-id" not in first and second["last-event-id"] == "0"
    assert [d["state"] for kind, d in seen if kind == "state"] == ["queued", "aborted"]
    assert seen[-1][0] == "end" and seen[-1][1]["state"] == "aborted"


def _headers(head: bytes) -> list[tuple[str, str]]:
    lines = head.decode().split("\r\n")[1:]
    return [(k.strip().lower(), v.strip()) for k, _, v in (line.partition(":") for line in lines)]
