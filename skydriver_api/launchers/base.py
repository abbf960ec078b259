"""The launcher interface: how the reconciler starts, watches and stops a scan's processes.

One implementation per infrastructure (``local`` processes, ``kubernetes`` Jobs, ``htcondor``
clusters), chosen by ``SKYDRIVER_LAUNCHER``. Every launcher receives the per-scan system token as a
secret to hand over out of band (a file, a Kubernetes Secret), never on a command line or as a
literal environment value stored anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

ProcessState = Literal["pending", "running", "succeeded", "failed", "unknown"]


@dataclass(frozen=True)
class Resources:
    cpus: float = 1.0
    memory_mb: int = 2048
    disk_mb: int = 4096
    max_worker_runtime_s: int = 4 * 3600
    image: str = ""


@dataclass(frozen=True)
class WorkerCluster:
    """A group of workers on one infrastructure target (a k8s namespace, a condor pool)."""

    name: str
    workers: int


@dataclass(frozen=True)
class LaunchSpec:
    scan_id: str
    scan_token: str = field(repr=False)  # secret: hand over out of band only
    clusters: tuple[WorkerCluster, ...]
    resources: Resources = Resources()
    priority: int = 0
    api_url: str = ""


@dataclass
class WorkforceStatus:
    """What the launcher can see of a scan's processes. ``handles`` are what it stored at launch."""

    server: ProcessState = "unknown"
    server_reason: str | None = None
    workers: dict[str, int] = field(default_factory=dict)  # state -> count (pending, running, ...)
    reasons: list[str] = field(default_factory=list)  # e.g. ImagePullBackOff, HTCondor hold reasons

    def to_dict(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "server_reason": self.server_reason,
            "workers": dict(self.workers),
            "reasons": list(self.reasons),
        }


class LaunchError(RuntimeError):
    """Launching failed; the reconciler backs off and retries this scan, others go on."""


class Launcher(Protocol):
    name: str

    def launch_server(self, spec: LaunchSpec) -> dict[str, Any]:
        """Start the scan server; returns handles to store on the scan (pid, Job name, ...)."""
        ...

    def launch_workers(self, spec: LaunchSpec, cluster: WorkerCluster) -> dict[str, Any]:
        """Start ``cluster.workers`` workers for the scan; returns handles to store."""
        ...

    def status(self, scan_id: str, handles: dict[str, Any]) -> WorkforceStatus: ...

    def abort(self, scan_id: str, handles: dict[str, Any]) -> None:
        """Stop the server and every worker of the scan (idempotent)."""
        ...
