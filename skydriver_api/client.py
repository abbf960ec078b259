"""A small REST client for the SkyDriver API (used by the CLI, the demo and the benchmarks)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from httpx_sse import SSEError, connect_sse

TERMINAL = ("completed", "failed", "aborted")


class ApiError(RuntimeError):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


class SkyDriverClient:
    def __init__(self, api_url: str | None = None, token: str | None = None, timeout: float = 30.0) -> None:
        self.api_url = (api_url or os.environ.get("SKYDRIVER_API_URL") or "http://127.0.0.1:8000").rstrip("/")
        token = token or os.environ.get("SKYDRIVER_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.api_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> SkyDriverClient:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            resp = self.http.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise ApiError(
                0, f"cannot reach the API at {self.api_url}; is 'skydriver api' running?"
            ) from None
        except httpx.HTTPError as err:
            raise ApiError(0, f"request to {self.api_url}{path} failed: {err}") from None
        if resp.status_code >= 400:
            raise ApiError(resp.status_code, _detail(resp))
        return resp

    # -- scans -----------------------------------------------------------------------------------
    def submit(self, body: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.request("POST", "/api/v1/scans", json=body, headers=headers).json()

    def scan(self, scan_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/scans/{scan_id}").json()

    def result(self, scan_id: str, fmt: str = "json") -> httpx.Response:
        return self.request("GET", f"/api/v1/scans/{scan_id}/result", params={"format": fmt})

    def abort(self, scan_id: str) -> dict[str, Any]:
        return self.request("DELETE", f"/api/v1/scans/{scan_id}").json()

    def watch(
        self, scan_id: str, poll_s: float = 0.5, timeout_s: float | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield the scan's status until it reaches a terminal state."""
        start = time.monotonic()
        while True:
            status = self.scan(scan_id)
            yield status
            if status["state"] in TERMINAL:
                return
            if timeout_s is not None and time.monotonic() - start > timeout_s:
                raise TimeoutError(f"scan {scan_id} still {status['state']} after {timeout_s:.0f} s")
            time.sleep(poll_s)

    def events(
        self, scan_id: str, timeout_s: float | None = None, max_reconnects: int = 5
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Follow the scan's Server-Sent Events: yields (event, data) until ``end``.

        A dropped stream is resumed with ``Last-Event-ID`` after the server's ``retry`` delay, so
        no state change is missed or repeated; it gives up after ``max_reconnects`` drops in a row.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        path = f"/api/v1/scans/{scan_id}/events"
        last_event_id = ""
        retry_s = 2.0
        drops = 0
        while True:
            headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
            try:
                with connect_sse(
                    self.http, "GET", path, headers=headers, timeout=httpx.Timeout(30, read=60)
                ) as source:
                    resp = source.response
                    if resp.status_code >= 400:
                        resp.read()
                        if resp.status_code < 500:
                            raise ApiError(resp.status_code, _detail(resp))
                        raise httpx.HTTPStatusError(_detail(resp), request=resp.request, response=resp)
                    for sse in source.iter_sse():
                        if sse.retry is not None:
                            retry_s = sse.retry / 1000
                        last_event_id = sse.id or last_event_id
                        if sse.data:
                            drops = 0
                            yield sse.event, sse.json()
                            if sse.event == "end":
                                return
                        if deadline is not None and time.monotonic() > deadline:
                            raise TimeoutError(f"scan {scan_id} did not end within {timeout_s:.0f} s")
                err: Exception = ConnectionError("the server closed the stream before its end")
            except (httpx.HTTPError, SSEError) as caught:
                err = caught
            drops += 1
            if drops > max_reconnects or (deadline is not None and time.monotonic() + retry_s > deadline):
                raise ApiError(0, f"event stream of {scan_id} failed: {err}")
            time.sleep(retry_s)  # the reconnection delay the server asked for

    def wait(
        self, scan_id: str, timeout_s: float = 600, on_status: Callable[[dict], None] | None = None
    ) -> dict:
        status: dict[str, Any] = {}
        for status in self.watch(scan_id, timeout_s=timeout_s):
            if on_status:
                on_status(status)
        return status


def _detail(resp: httpx.Response) -> str:
    """The ``detail`` of an error body, else the body itself."""
    try:
        return str(resp.json().get("detail", resp.text))
    except (ValueError, AttributeError):
        return resp.text


def progress_fraction(status: dict[str, Any]) -> tuple[int, int]:
    """(done, total) tasks for a progress bar; total grows as refinement reveals more work."""
    prog = status.get("progress") or {}
    done = int(prog.get("tasks_done") or 0)
    sent = int(prog.get("tasks_sent") or 0)
    eta, rate = prog.get("eta_s"), prog.get("rate_per_s")
    total = sent
    if eta and rate:
        total = max(sent, done + int(eta * rate))
    return done, max(total, done, 1)
