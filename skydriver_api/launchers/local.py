"""``local`` launcher: the scan server and workers as processes on this machine.

Each process gets its own session (so abort can signal the whole group), logs under
``runtime_dir/<scan>/``, and the per-scan token in a 0600 file named by
``SKYDRIVER_SCAN_TOKEN_FILE``; nothing secret goes on a command line.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Self

from skydriver_api.launchers.base import Launcher, LaunchError, LaunchSpec, WorkerCluster, WorkforceStatus
from skydriver_api.settings import ApiSettings

# Variables a child must not inherit from the API (secrets of the API itself).
_PRIVATE_ENV = ("SKYDRIVER_ADMIN_TOKEN", "SKYDRIVER_SCAN_TOKEN", "SKYDRIVER_CURSOR_SECRET")
TOKEN_FILE = "scan-token"
_SAFE_SCAN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # a path component, never '..'


class LocalLauncher(Launcher):
    name = "local"

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.runtime_dir = settings.runtime_dir.resolve()
        self._procs: dict[int, subprocess.Popen] = {}

    @classmethod
    def from_settings(cls, settings: ApiSettings) -> Self:
        return cls(settings)

    # -- helpers -------------------------------------------------------------------------------
    def _scan_dir(self, scan_id: str) -> Path:
        path = self.runtime_dir / scan_id
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    def _token_file(self, spec: LaunchSpec) -> Path:
        path = self._scan_dir(spec.scan_id) / TOKEN_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(spec.scan_token)
        return path

    def _env(self, spec: LaunchSpec, token_file: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _PRIVATE_ENV}
        env["SKYDRIVER_SCAN_TOKEN_FILE"] = str(token_file)
        env["SKYDRIVER_API_URL"] = spec.api_url or self.settings.resolved_api_url
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def _spawn(self, spec: LaunchSpec, module: str, log_name: str) -> int:
        token_file = self._token_file(spec)
        log_path = self._scan_dir(spec.scan_id) / f"{log_name}.log"
        try:
            with open(log_path, "ab") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", module, "--scan-id", spec.scan_id],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self._env(spec, token_file),
                    start_new_session=True,
                )
        except OSError as err:
            raise LaunchError(f"could not start {module}: {err}") from err
        self._procs[proc.pid] = proc
        return proc.pid

    def _state(self, pid: int) -> tuple[str, int | None]:
        """('running' | 'succeeded' | 'failed' | 'unknown', exit code)."""
        proc = self._procs.get(pid)
        if proc is not None:
            code = proc.poll()
            if code is None:
                return "running", None
            return ("succeeded" if code == 0 else "failed"), code
        try:  # not our child (API restarted): we can only tell whether it is alive
            os.kill(pid, 0)
            return "running", None
        except ProcessLookupError:
            return "unknown", None
        except PermissionError:
            return "running", None

    # -- Launcher ------------------------------------------------------------------------------
    def launch_server(self, spec: LaunchSpec) -> dict[str, Any]:
        n = len(list(self._scan_dir(spec.scan_id).glob("server*.log")))
        return {"server_pid": self._spawn(spec, "server", f"server-{n}")}

    def launch_workers(self, spec: LaunchSpec, cluster: WorkerCluster) -> dict[str, Any]:
        first = len(list(self._scan_dir(spec.scan_id).glob("worker-*.log")))
        pids = [self._spawn(spec, "worker", f"worker-{first + i}") for i in range(cluster.workers)]
        return {"worker_pids": pids}

    def status(self, scan_id: str, handles: dict[str, Any]) -> WorkforceStatus:
        status = WorkforceStatus()
        pid = handles.get("server_pid")
        if pid is not None:
            state, code = self._state(pid)
            status.server = state  # type: ignore[assignment]
            if state == "failed":
                status.server_reason = f"server process {pid} exited with code {code}"
        for wpid in handles.get("worker_pids", []):
            state, code = self._state(wpid)
            status.workers[state] = status.workers.get(state, 0) + 1
            if state == "failed":
                status.reasons.append(f"worker {wpid} exited with code {code}")
        return status

    def abort(self, scan_id: str, handles: dict[str, Any], grace_s: float = 5.0) -> None:
        pids = _pids(handles)
        for pid in pids:
            _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(self._state(p)[0] == "running" for p in pids):
            time.sleep(0.05)
        for pid in pids:
            # the whole group, even when its leader is gone: a fit process must not outlive the scan
            _signal_group(pid, signal.SIGKILL)
        for pid in pids:
            proc = self._procs.pop(pid, None)
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)

    def forget(self, scan_id: str, handles: dict[str, Any]) -> None:
        """The scan is over: nothing of its process groups may remain, its token file goes, and
        finished children are reaped so they do not linger as zombies."""
        for pid in _pids(handles):
            _signal_group(pid, signal.SIGKILL)  # each group's leader exited: only leftovers are hit
            proc = self._procs.pop(pid, None)
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
        if _SAFE_SCAN_ID.match(scan_id):
            with contextlib.suppress(FileNotFoundError):
                (self.runtime_dir / scan_id / TOKEN_FILE).unlink()


def _pids(handles: dict[str, Any]) -> list[int]:
    return [p for p in [handles.get("server_pid"), *handles.get("worker_pids", [])] if p]


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
