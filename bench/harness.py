"""What the service benchmarks share: a private API (own port, own database), machine facts, timings.

Imported by the scripts next to it (``sys.path`` holds ``bench/``); not part of the service.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.broker_cleanup import delete_scan_queues  # noqa: E402

MONGO_URI = os.environ.get("SKYDRIVER_MONGODB_URI", "mongodb://127.0.0.1:27017")
AMQP_URL = os.environ.get("SKYDRIVER_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_line() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{cpu_model()}, {os.cpu_count()} cores, load average {load} at the start"


@dataclass
class BenchApi:
    url: str
    token: str
    database: str
    tmp: Path
    proc: subprocess.Popen

    def client(self):  # type: ignore[no-untyped-def]
        from skydriver_api.client import SkyDriverClient

        return SkyDriverClient(self.url, self.token)

    def db(self):  # type: ignore[no-untyped-def]
        from pymongo import MongoClient

        return MongoClient(MONGO_URI, tz_aware=True)[self.database]

    def scan_pids(self, scan_id: str) -> tuple[int | None, list[int]]:
        handles = (self.db().scans.find_one({"_id": scan_id}) or {}).get("launch", {}).get("handles", {})
        return handles.get("server_pid"), list(handles.get("worker_pids", []))


@contextlib.contextmanager
def private_api(tmp: Path, **settings: str) -> Iterator[BenchApi]:
    """Start ``skydriver api`` on a free port with its own database; stop it and drop the database."""
    port = free_port()
    token = "sd_" + secrets.token_urlsafe(24)
    database = f"skydriver_bench_{uuid.uuid4().hex[:8]}"
    env = dict(
        os.environ,
        SKYDRIVER_API_PORT=str(port),
        SKYDRIVER_API_HOST="127.0.0.1",
        SKYDRIVER_ADMIN_TOKEN=token,
        SKYDRIVER_MONGODB_DATABASE=database,
        SKYDRIVER_RUNTIME_DIR=str(tmp / "run"),
        SKYDRIVER_LOG_FORMAT="text",
        SKYDRIVER_RECONCILE_INTERVAL_S="0.2",
        SKYDRIVER_WORKER_IDLE_TIMEOUT_S="60",
        SKYDRIVER_TEST_RECOS="true",  # a load test: the dummy reco measures the service, not physics
        PYTHONPATH=str(ROOT),
    )
    env.update({f"SKYDRIVER_{k.upper()}": str(v) for k, v in settings.items()})
    tmp.mkdir(parents=True, exist_ok=True)
    with open(tmp / "api.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "skydriver_api.cli", "api"],
            env=env,
            cwd=tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    api = BenchApi(f"http://127.0.0.1:{port}", token, database, tmp, proc)
    try:
        import httpx

        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"API exited early; see {tmp / 'api.log'}")
            try:
                if httpx.get(f"{api.url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"API not ready; see {tmp / 'api.log'}")
            time.sleep(0.1)
        yield api
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        db = api.db()
        launched = []
        for scan in db.scans.find({}, {"launch.handles": 1}):
            handles = scan.get("launch", {}).get("handles", {})
            launched.append(scan["_id"])
            for pid in [handles.get("server_pid"), *handles.get("worker_pids", [])]:
                if pid:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(pid, signal.SIGKILL)
        db.client.drop_database(database)
        delete_scan_queues(AMQP_URL, launched)  # what the stopped API's reconciler would have reaped


def wait_for_warm_pool(runtime_dir: Path, processes: int, timeout_s: float = 300.0) -> float:
    """Wait until ``processes`` pooled processes under ``runtime_dir`` said they are warm (in their
    own logs); seconds waited."""
    from skyinfra.warm import READY_LOG_LINE

    t0 = time.monotonic()
    while True:
        logs = list((runtime_dir / "warm").glob("*.log"))
        ready = sum(READY_LOG_LINE in p.read_text(errors="replace") for p in logs)
        if ready >= processes:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout_s:
            raise RuntimeError(f"only {ready} of {processes} warm processes ready after {timeout_s:.0f} s")
        time.sleep(0.2)


def history_times(status: dict[str, Any]) -> dict[str, dt.datetime]:
    """First time the scan entered each state (from its stored history)."""
    out: dict[str, dt.datetime] = {}
    for entry in status["history"]:
        out.setdefault(entry["state"], dt.datetime.fromisoformat(str(entry["at"])))
    return out


def running_to_completed_s(status: dict[str, Any]) -> float:
    times = history_times(status)
    return (times["completed"] - times["running"]).total_seconds()
