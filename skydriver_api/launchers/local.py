"""``local`` launcher: the scan server and workers as processes on this machine.

Each process gets its own session (so abort can signal the whole group), logs under
``runtime_dir/<scan>/``, and its secrets in 0600 files there: the per-scan token
(``SKYDRIVER_SCAN_TOKEN_FILE``), the AMQP URL of its own broker identity (server or worker,
``SKYDRIVER_BROKER_URL_FILE``) and the scan's signing key (``SKYDRIVER_SCAN_KEY_FILE``). Nothing
secret goes on a command line; the API's own secrets, the shared broker URL and (for workers) the
database URL are removed from the environment a child inherits.

Warm pool (``SKYDRIVER_WARM_SERVERS``, ``SKYDRIVER_WARM_WORKERS``): processes started ahead of
any scan with ``--warm``. Launching takes an idle one and writes it a claim (``skyinfra.warm``)
naming its scan, log file and secret files; it serves that scan, reports the end on its status pipe
and is idle again, bound to one scan at a time. A pooled process that dies is replaced; when none is
idle, a process is started cold as without a pool. Status and abort of a scan look only at what a
pooled process does for that scan: it may be serving another one by then.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from skydriver_api.launchers.base import Launcher, LaunchError, LaunchSpec, WorkerCluster, WorkforceStatus
from skydriver_api.settings import ApiSettings
from skyinfra.warm import Claim, parse_status

# Variables a child must not inherit from the API (secrets of the API itself, the shared broker
# account); workers do not get the database either.
_PRIVATE_ENV = (
    "SKYDRIVER_ADMIN_TOKEN",
    "SKYDRIVER_SCAN_TOKEN",
    "SKYDRIVER_CURSOR_SECRET",
    "SKYDRIVER_SCAN_SECRET",
    "SKYDRIVER_RABBITMQ_URL",
)
_SERVER_ONLY_ENV = ("SKYDRIVER_MONGODB_URI",)
TOKEN_FILE = "scan-token"
KEY_FILE = "scan-key"
SECRET_FILES = (TOKEN_FILE, KEY_FILE, "server-broker-url", "worker-broker-url")
_SAFE_SCAN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # a path component, never '..'


@dataclass
class _Warm:
    """A pooled process: its claim pipe (stdin), its status pipe, and the scan it serves now."""

    proc: subprocess.Popen
    status_fd: int
    scan_id: str | None = None  # None: idle
    ready: bool = False  # warmed up (a claim before that waits for the warm-up to end)


class LocalLauncher(Launcher):
    name = "local"

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.runtime_dir = settings.runtime_dir.resolve()
        self._procs: dict[int, subprocess.Popen] = {}
        self._pool_size = {"server": settings.warm_servers, "worker": settings.warm_workers}
        self._warm: dict[str, list[_Warm]] = {"server": [], "worker": []}
        self._warm_by_pid: dict[int, _Warm] = {}
        self._ended: dict[tuple[int, str], int] = {}  # (pooled pid, scan) -> exit code of that scan
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

    def _secret_file(self, scan_id: str, name: str, value: str) -> str:
        """Write a secret file whole, then move it into place: every process of a scan reads the
        same token and key files, and a process started earlier may be reading one while the
        next launch writes it again (truncating in place, that reader saw an empty token)."""
        path = self._scan_dir(scan_id) / name
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{name}.")  # 0600, on the same disk
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(value)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return str(path)

    @staticmethod
    def _inherited_env(module: str) -> dict[str, str]:
        private = _PRIVATE_ENV if module == "server" else _PRIVATE_ENV + _SERVER_ONLY_ENV
        env = {k: v for k, v in os.environ.items() if k not in private}
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def _claim(self, spec: LaunchSpec, module: str, log_path: Path) -> Claim:
        """The files this process of the scan reads its secrets from (written now, 0600)."""
        creds = spec.credentials
        url = creds.server_broker_url if module == "server" else creds.worker_broker_url
        sid = spec.scan_id
        return Claim(
            scan_id=sid,
            log_path=str(log_path),
            token_file=self._secret_file(sid, TOKEN_FILE, spec.scan_token),
            broker_url_file=self._secret_file(sid, f"{module}-broker-url", url),
            scan_key_file=self._secret_file(sid, KEY_FILE, creds.scan_key),
            api_url=spec.api_url or self.settings.resolved_api_url,
        )

    def _spawn(self, spec: LaunchSpec, module: str, log_name: str) -> int:
        log_path = self._scan_dir(spec.scan_id) / f"{log_name}.log"
        claim = self._claim(spec, module, log_path)
        warm = self._claim_warm(module, claim)
        if warm is not None:
            return warm.pid
        try:
            with open(log_path, "ab") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", module, "--scan-id", spec.scan_id],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**self._inherited_env(module), **claim.environment()},
                    start_new_session=True,
                )
        except OSError as err:
            raise LaunchError(f"could not start {module}: {err}") from err
        self._procs[proc.pid] = proc
        return proc.pid

    # -- warm pool -----------------------------------------------------------------------------
    def _refill(self) -> None:
        """Start warm processes until each pool has its size (dead ones are replaced)."""
        self._poll_warm()
        warm_dir = self.runtime_dir / "warm"
        for module, pool in self._warm.items():
            while len(pool) < self._pool_size[module]:
                warm_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
                self._warm_started += 1
                read_fd, write_fd = os.pipe()
                os.set_blocking(read_fd, False)
                try:
                    with open(warm_dir / f"{module}-{self._warm_started}.log", "ab") as log:
                        proc = subprocess.Popen(
                            [sys.executable, "-m", module, "--warm", "--status-fd", str(write_fd)],
                            stdin=subprocess.PIPE,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            env=self._inherited_env(module),
                            start_new_session=True,
                            pass_fds=(write_fd,),
                        )
                except OSError:
                    os.close(read_fd)
                    return  # cold starts still work; the next launch tries again
                finally:
                    os.close(write_fd)
                warm = _Warm(proc, read_fd)
                pool.append(warm)
                self._warm_by_pid[proc.pid] = warm

    def _poll_warm(self) -> None:
        """Read what pooled processes reported: scans they finished (idle again), or their death."""
        for pool in self._warm.values():
            for warm in list(pool):
                try:
                    data = os.read(warm.status_fd, 65536)
                except BlockingIOError:
                    data = b""
                ready, ended = parse_status(data)
                warm.ready = warm.ready or ready
                for scan_id, code in ended:
                    self._ended[(warm.proc.pid, scan_id)] = code
                    if warm.scan_id == scan_id:
                        warm.scan_id = None
                if warm.proc.poll() is not None:
                    if warm.scan_id is not None:
                        self._ended.setdefault((warm.proc.pid, warm.scan_id), warm.proc.returncode)
                    os.close(warm.status_fd)
                    pool.remove(warm)

    def _claim_warm(self, module: str, claim: Claim) -> subprocess.Popen | None:
        """Bind an idle warm process to the scan; None when the pool has none idle."""
        self._refill()
        # one that has warmed up first; one still warming up has a head start over a cold start
        for warm in sorted(self._warm[module], key=lambda w: not w.ready):
            if warm.scan_id is not None or warm.proc.stdin is None:
                continue
            try:
                warm.proc.stdin.write(claim.encode())
                warm.proc.stdin.flush()
            except OSError:
                continue  # it died; the next refill replaces it
            warm.scan_id = claim.scan_id
            return warm.proc
        return None

    def _warm_state(self, warm: _Warm, scan_id: str) -> tuple[str, int | None]:
        self._poll_warm()
        pid = warm.proc.pid
        if (pid, scan_id) in self._ended:
            code = self._ended[(pid, scan_id)]
            return ("succeeded" if code == 0 else "failed"), code
        if warm.scan_id == scan_id and warm.proc.poll() is None:
            return "running", None
        return "succeeded", 0  # it never served this scan's end here: it moved on without one

    def _state(self, pid: int, scan_id: str) -> tuple[str, int | None]:
        """('running' | 'succeeded' | 'failed' | 'unknown', exit code) of the process for this scan."""
        warm = self._warm_by_pid.get(pid)
        if warm is not None:
            return self._warm_state(warm, scan_id)
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
        self._refill()  # replace pooled processes that died, ahead of the next launch
        status = WorkforceStatus()
        pid = handles.get("server_pid")
        if pid is not None:
            state, code = self._state(pid, scan_id)
            status.server = state  # type: ignore[assignment]
            if state == "failed":
                status.server_reason = f"server process {pid} exited with code {code}"
        for wpid in handles.get("worker_pids", []):
            state, code = self._state(wpid, scan_id)
            status.workers[state] = status.workers.get(state, 0) + 1
            if state == "failed":
                status.reasons.append(f"worker {wpid} exited with code {code}")
        return status

    def _own_pids(self, scan_id: str, handles: dict[str, Any]) -> list[int]:
        """The scan's processes; a pooled process that moved on to another scan is not this scan's
        to stop."""
        return [
            p for p in _pids(handles) if p not in self._warm_by_pid or self._state(p, scan_id)[0] == "running"
        ]

    def abort(self, scan_id: str, handles: dict[str, Any], grace_s: float = 5.0) -> None:
        pids = self._own_pids(scan_id, handles)
        for pid in pids:
            _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(self._state(p, scan_id)[0] == "running" for p in pids):
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
        """The scan is over: nothing of its process groups may remain, its secret files go, and
        finished children are reaped so they do not linger as zombies."""
        for pid in self._own_pids(scan_id, handles):
            _signal_group(pid, signal.SIGKILL)  # each group's leader exited: only leftovers are hit
            proc = self._procs.pop(pid, None)
            if proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
        if _SAFE_SCAN_ID.match(scan_id):
            for name in SECRET_FILES:
                with contextlib.suppress(FileNotFoundError):
                    (self.runtime_dir / scan_id / name).unlink()


def _pids(handles: dict[str, Any]) -> list[int]:
    return [p for p in [handles.get("server_pid"), *handles.get("worker_pids", [])] if p]


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
