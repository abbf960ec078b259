"""``local`` launcher: the scan server and workers as processes on this machine.

Each process gets its own session (so abort can signal the whole group), logs under
``runtime_dir/<scan>/``, and the per-scan token in a 0600 file named by
``SKYDRIVER_SCAN_TOKEN_FILE``; nothing secret goes on a command line.

Warm pool (``SKYDRIVER_WARM_SERVERS``, ``SKYDRIVER_WARM_WORKERS``): processes started ahead of
any scan with ``--warm``. Launching takes one and writes it a claim (``skyinfra.warm``) naming its
scan, log file and token file; it serves that one scan and exits, and a fresh one is started in
its place. Only when the pool is empty is a process started cold.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Self

from skydriver_api.launchers.base import Launcher, LaunchError, LaunchSpec, WorkerCluster, WorkforceStatus
from skydriver_api.settings import ApiSettings
from skyinfra.warm import Claim

# Variables a child must not inherit from the API (secrets of the API itself).
_PRIVATE_ENV = ("SKYDRIVER_ADMIN_TOKEN", "SKYDRIVER_SCAN_TOKEN")


class LocalLauncher(Launcher):
    name = "local"

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.runtime_dir = settings.runtime_dir.resolve()
        self._procs: dict[int, subprocess.Popen] = {}
        self._pool_size = {"server": settings.warm_servers, "worker": settings.warm_workers}
        self._warm: dict[str, list[subprocess.Popen]] = {"server": [], "worker": []}
        self._warm_started = 0
        self._refill()

    @classmethod
    def from_settings(cls, settings: ApiSettings) -> Self:
        return cls(settings)

    # -- helpers -------------------------------------------------------------------------------
    def _scan_dir(self, scan_id: str) -> Path:
        path = self.runtime_dir / scan_id
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    def _token_file(self, spec: LaunchSpec) -> Path:
        path = self._scan_dir(spec.scan_id) / "scan-token"
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
        proc = self._claim_warm(module, spec, token_file, log_path)
        if proc is None:
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

    # -- warm pool -----------------------------------------------------------------------------
    def _refill(self) -> None:
        """Start warm processes until each pool has its size (dead idle ones are replaced)."""
        base = {k: v for k, v in os.environ.items() if k not in _PRIVATE_ENV}
        base.setdefault("PYTHONUNBUFFERED", "1")
        warm_dir = self.runtime_dir / "warm"
        for module, pool in self._warm.items():
            pool[:] = [p for p in pool if p.poll() is None]
            while len(pool) < self._pool_size[module]:
                warm_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
                self._warm_started += 1
                try:
                    with open(warm_dir / f"{module}-{self._warm_started}.log", "ab") as log:
                        proc = subprocess.Popen(
                            [sys.executable, "-m", module, "--warm"],
                            stdin=subprocess.PIPE,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            env=base,
                            start_new_session=True,
                        )
                except OSError:
                    return  # cold starts still work; the next launch tries again
                pool.append(proc)

    def _claim_warm(
        self, module: str, spec: LaunchSpec, token_file: Path, log_path: Path
    ) -> subprocess.Popen | None:
        """Bind an idle warm process to the scan; None when the pool has none alive."""
        pool = self._warm[module]
        claim = Claim(
            spec.scan_id, str(log_path), str(token_file), spec.api_url or self.settings.resolved_api_url
        )
        while pool:
            proc = pool.pop(0)
            if proc.poll() is not None or proc.stdin is None:
                continue
            try:
                proc.stdin.write(claim.encode())
                proc.stdin.close()  # one claim per process
            except OSError:
                continue
            self._refill()
            return proc
        self._refill()
        return None

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
        pids = [p for p in [handles.get("server_pid"), *handles.get("worker_pids", [])] if p]
        for pid in pids:
            _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(self._state(p)[0] == "running" for p in pids):
            time.sleep(0.05)
        for pid in pids:
            if self._state(pid)[0] == "running":
                _signal_group(pid, signal.SIGKILL)
        for pid in pids:
            proc = self._procs.pop(pid, None)
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)

    def forget(self, handles: dict[str, Any]) -> None:
        """Reap finished children so they do not linger as zombies."""
        for pid in [handles.get("server_pid"), *handles.get("worker_pids", [])]:
            proc = self._procs.get(pid) if pid else None
            if proc is not None and proc.poll() is not None:
                del self._procs[pid]


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
