"""The local launcher's warm pool: processes started ahead of any scan take scans one at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import LiveApi, make_event, start_api, stop_api, wait_until


@pytest.fixture
def warm_api(services: None, tmp_path: Path) -> LiveApi:  # type: ignore[misc]
    api = start_api(tmp_path, warm_servers="1", warm_workers="1")
    yield api
    stop_api(api)


def handles(api: LiveApi, scan_id: str) -> dict:  # type: ignore[type-arg]
    return api.db().scans.find_one({"_id": scan_id})["launch"]["handles"]


def logs_with_worker_summary(api: LiveApi, scan_id: str) -> dict[str, str] | None:
    logs = api.scan_logs(scan_id)
    return logs if "worker done:" in logs.get("worker-0.log", "") else None


def test_warm_processes_serve_one_scan_after_another(warm_api: LiveApi) -> None:
    api = warm_api
    first_dispatch = []
    scans = []
    with api.client() as client:
        for event_id in (51, 52):
            scan_id = client.submit(
                {"event": make_event(event_id=event_id), "reco": "dummy", "nsides": "4:0", "workers": 1}
            )["scan_id"]
            status = client.wait(scan_id, timeout_s=180)
            assert status["state"] == "completed", (status, api.scan_logs(scan_id))
            scans.append(scan_id)
            doc = api.db().scans.find_one({"_id": scan_id})
            first_dispatch.append(doc["first_dispatch_at"])
        first, second = (handles(api, s) for s in scans)
        # the same pooled server and worker took the second scan once the first was over
        assert first["server_pid"] == second["server_pid"]
        assert first["worker_pids"] == second["worker_pids"]
        # each scan's logs are its own, and the first scan is seen as done although its
        # processes live on, serving the second. A worker writes its summary once it sees the
        # scan's queue go, which can be just after the scan reads as completed.
        for scan_id in scans:
            logs = wait_until(
                lambda scan_id=scan_id: logs_with_worker_summary(api, scan_id),
                60,
                f"scan {scan_id}'s worker to log its summary",
            )
            assert logs["worker-0.log"].count(f"worker done: {12 * 16} fits") == 1
            assert logs["server-0.log"].count("scan completed: 192 pixels") == 1
        workforce = wait_until(
            lambda: (
                (client.scan(scans[0]).get("workforce") or {}).get("server") == "succeeded"
                and client.scan(scans[0])["workforce"]
            ),
            30,
            "the first scan's workforce to read as finished",
        )
        assert workforce["workers"] == {"succeeded": 1}
    assert first_dispatch[0] < first_dispatch[1]
