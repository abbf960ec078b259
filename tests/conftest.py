"""Shared fixtures. Integration tests use the real RabbitMQ and MongoDB-wire server that
``make test`` starts (``scripts/services.py up``); they skip, naming what is missing, only when
run outside that set-up."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
AMQP_URL = os.environ.get("SKYDRIVER_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
MONGO_URI = os.environ.get("SKYDRIVER_MONGODB_URI", "mongodb://127.0.0.1:27017")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
    # make test runs files in parallel (pytest-xdist), which runs one test per id: a repeated id
    # would silently run once
    counts = collections.Counter(i.nodeid for i in items)
    repeated = sorted(nodeid for nodeid, n in counts.items() if n > 1)
    if repeated:
        raise pytest.UsageError(f"test ids must be unique; repeated: {', '.join(repeated[:5])}")


def _setup_checks():  # type: ignore[no-untyped-def]
    """The readiness checks of scripts/services.py (what `make services` waits for)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("skydriver_services", ROOT / "scripts" / "services.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="session")
def services() -> None:
    checks = _setup_checks()
    missing = []
    if not checks.amqp_ok(AMQP_URL):
        missing.append(f"RabbitMQ at {AMQP_URL.split('@')[-1]}")
    if not checks.mongo_ok(MONGO_URI):
        missing.append(f"MongoDB-wire server at {MONGO_URI}")
    if missing:
        pytest.skip(f"{' and '.join(missing)} not reachable: run 'make services' (make test does)")


def make_event(
    zenith: float = 2.0,
    azimuth: float = 1.2,
    mjd: float = 58000.5,
    run_id: int = 1,
    event_id: int = 2,
    n_pulses: int = 20,
) -> dict[str, Any]:
    """A small open-format event with a stated (truth) direction, enough for the dummy reco."""
    return {
        "schema": "skydriver.event/1",
        "run_id": run_id,
        "event_id": event_id,
        "mjd": mjd,
        "event_type": "test",
        "is_real_event": False,
        "pulses": [
            {"x": float(i), "y": 2.0 * i, "z": -100.0 + i, "time": 1000.0 + 10 * i, "charge": 1.0 + i % 3}
            for i in range(n_pulses)
        ],
        "truth": {"zenith": zenith, "azimuth": azimuth},
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveApi:
    url: str
    admin_token: str
    database: str
    runtime_dir: Path
    proc: subprocess.Popen
    env: dict[str, str]

    def client(self, token: str | None = None):  # type: ignore[no-untyped-def]
        from skydriver_api.client import SkyDriverClient

        return SkyDriverClient(self.url, token or self.admin_token)

    def db(self):  # type: ignore[no-untyped-def]
        from pymongo import MongoClient

        return MongoClient(MONGO_URI, tz_aware=True)[self.database]

    def log(self) -> str:
        return (self.runtime_dir.parent / "api.log").read_text(errors="replace")

    def scan_logs(self, scan_id: str) -> dict[str, str]:
        folder = self.runtime_dir / scan_id
        return {p.name: p.read_text(errors="replace") for p in sorted(folder.glob("*.log"))}

    def scan_key(self, scan_id: str) -> bytes:
        """The scan's message key, derived as the API derives it (tests that play a worker hold it)."""
        from skydriver_api.broker_identities import scan_key

        return scan_key((self.runtime_dir / "scan-secret").read_text().strip().encode(), scan_id)


# A scan key for servers a test runs in-process, the test playing its workers.
TEST_SCAN_KEY = bytes(range(32))


def scan_key_file(folder: Path, key: bytes = TEST_SCAN_KEY) -> Path:
    path = folder / "scan-key"
    path.write_text(key.hex())
    return path


def signed(key: bytes, body: bytes):  # type: ignore[no-untyped-def]
    """Properties of a persistent message signed as the scan's own processes sign theirs."""
    import pika

    from skyscan.wire import signed_headers

    return pika.BasicProperties(delivery_mode=2, headers=signed_headers(key, body))


def start_api(tmp: Path, **settings: str) -> LiveApi:
    port = free_port()
    database = f"skydriver_test_{uuid.uuid4().hex[:10]}"
    token = "sd_" + secrets.token_urlsafe(24)
    runtime = tmp / "run"
    env = dict(
        os.environ,
        SKYDRIVER_API_PORT=str(port),
        SKYDRIVER_API_HOST="127.0.0.1",
        SKYDRIVER_ADMIN_TOKEN=token,
        SKYDRIVER_MONGODB_DATABASE=database,
        SKYDRIVER_RUNTIME_DIR=str(runtime),
        SKYDRIVER_LOG_FORMAT="text",
        SKYDRIVER_RECONCILE_INTERVAL_S="0.2",
        SKYDRIVER_WORKER_IDLE_TIMEOUT_S="20",
        # dummy and crash-dummy are off outside tests: these tests ask for them (the API and the
        # workers it starts read the same variable)
        SKYDRIVER_TEST_RECOS="true",
        PYTHONPATH=str(ROOT),
    )
    env.update({f"SKYDRIVER_{k.upper()}": str(v) for k, v in settings.items()})
    log = open(tmp / "api.log", "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "skydriver_api.cli", "api"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=tmp,
    )
    api = LiveApi(f"http://127.0.0.1:{port}", token, database, runtime, proc, env)
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"API exited early:\n{api.log()}")
        try:
            if httpx.get(f"{api.url}/readyz", timeout=2).status_code == 200:
                return api
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"API not ready:\n{api.log()}")


def stop_api(api: LiveApi) -> None:
    from pymongo import MongoClient

    from tests.support.broker_cleanup import delete_scan_queues

    try:
        os.killpg(api.proc.pid, signal.SIGTERM)
        api.proc.wait(20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        api.proc.kill()
    # any scan process still alive belongs to this test: stop it; and its scans' broker users,
    # which the stopped API would have deleted when reaping them
    with MongoClient(MONGO_URI) as client:
        db = client[api.database]
        scans = list(db.scans.find({}, {"launch.handles": 1}))
        for scan in scans:
            handles = scan.get("launch", {}).get("handles", {})
            for pid in [handles.get("server_pid"), *handles.get("worker_pids", [])]:
                if pid:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(pid, signal.SIGKILL)
        client.drop_database(api.database)
    launched = [scan["_id"] for scan in scans if scan.get("launch", {}).get("handles")]
    delete_scan_queues(AMQP_URL, launched)
    if (api.runtime_dir / "scan-secret").exists():
        from skydriver_api.broker_identities import BrokerIdentities
        from skydriver_api.settings import ApiSettings

        identities = BrokerIdentities(ApiSettings(runtime_dir=api.runtime_dir, rabbitmq_url=AMQP_URL))
        for scan in scans:
            if scan.get("launch", {}).get("handles"):  # users exist for launched scans only
                with contextlib.suppress(Exception):  # the broker may be down after a fault test
                    identities.delete(scan["_id"])


@pytest.fixture
def live_api(services: None, tmp_path: Path) -> Iterator[LiveApi]:
    api = start_api(tmp_path)
    yield api
    stop_api(api)


@pytest.fixture(scope="module")
def shared_api(services: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    api = start_api(tmp_path_factory.mktemp("api"))
    yield api
    stop_api(api)


def wait_until(predicate: Callable[[], Any], timeout_s: float, what: str, poll_s: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy (synchronisation, never a bare sleep)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True)
