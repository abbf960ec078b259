"""The launcher interface: how the reconciler starts, watches and stops a scan's processes.

One implementation per infrastructure (``local`` processes, ``kubernetes`` Jobs, ``htcondor``
clusters), chosen by ``SKYDRIVER_LAUNCHER`` through :mod:`skydriver_api.launchers.registry`. The
abstract class names every call the reconciler makes, so a launcher that lacks one cannot be built.
Every launcher receives the per-scan system token and the scan's credentials (its broker identities
and signing key) as secrets to hand over out of band (files, a Kubernetes Secret), never on a command
line or as a literal environment value stored anywhere. The shared broker administrator URL and the
database URL never reach a worker; only the scan server gets the database.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self

from skydriver_api.settings import ApiSettings

ProcessState = Literal["pending", "running", "succeeded", "failed", "unknown"]
MAX_REASONS = 20  # distinct reasons a status reports; a scan with thousands of workers stays readable


@dataclass(frozen=True)
class Resources:
    """One worker's resources, from the operator's worker profile the scan named. What runs (the
    image) and with which identity is the launcher's own configuration, never the scan's."""

    cpus: float = 1.0
    memory_mb: int = 2048
    disk_mb: int = 4096
    max_worker_runtime_s: int = 4 * 3600

    @classmethod
    def from_doc(cls, doc: dict[str, Any] | None) -> Resources:
        """From a scan's stored resources; anything else stored there (an old 'image') is ignored."""
        return cls(**{k: v for k, v in (doc or {}).items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class WorkerCluster:
    """A group of workers on one infrastructure target (a k8s namespace, a condor pool)."""

    name: str
    workers: int


@dataclass(frozen=True)
class ScanCredentials:
    """What a scan's processes hold besides the scan token, each handed over as a file like the
    token: the AMQP URL of the scan's server identity, that of its worker identity (each reaches
    only this scan's queues, see ``skydriver_api.broker_identities``), and the key (hex) that
    signs and verifies every message of the scan. Workers never receive the server's URL."""

    server_broker_url: str = field(repr=False)
    worker_broker_url: str = field(repr=False)
    scan_key: str = field(repr=False)


@dataclass(frozen=True)
class LaunchSpec:
    scan_id: str
    scan_token: str = field(repr=False)  # secret: hand over out of band only
    clusters: tuple[WorkerCluster, ...]
    credentials: ScanCredentials = field(repr=False)
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


def reason_lines(reasons: dict[str, int]) -> list[str]:
    """Distinct reasons in the order first seen, at most :data:`MAX_REASONS`, repeats counted."""
    return [f"{k} (x{n})" if n > 1 else k for k, n in list(reasons.items())[:MAX_REASONS]]


class LaunchError(RuntimeError):
    """Launching failed; the reconciler backs off and retries this scan, others go on."""


class Launcher(ABC):
    name: ClassVar[str]  # its SKYDRIVER_LAUNCHER name, also stored in the handles of some launchers

    @classmethod
    def from_settings(cls, settings: ApiSettings) -> Self:
        """Build it as the registry does for ``SKYDRIVER_LAUNCHER``.

        The default suits launchers that read their own settings from the environment
        (``SKYDRIVER_K8S_*``, ``SKYDRIVER_CONDOR_*``); one that needs the shared settings overrides it.
        """
        return cls()

    @abstractmethod
    def launch_server(self, spec: LaunchSpec) -> dict[str, Any]:
        """Start the scan server; returns handles to store on the scan (pid, Job name, ...)."""

    @abstractmethod
    def launch_workers(self, spec: LaunchSpec, cluster: WorkerCluster) -> dict[str, Any]:
        """Start ``cluster.workers`` workers for the scan; returns handles to store."""

    @abstractmethod
    def status(self, scan_id: str, handles: dict[str, Any]) -> WorkforceStatus:
        """What it sees of the scan's processes; a ``LaunchError`` when it cannot tell (the reconciler
        would take "unknown" for a vanished server)."""

    @abstractmethod
    def abort(self, scan_id: str, handles: dict[str, Any]) -> None:
        """Stop the server and every worker of the scan (idempotent)."""

    def forget(self, scan_id: str, handles: dict[str, Any]) -> None:
        """Release what the launcher still holds for a reaped scan (child processes, credential files).

        Nothing by default: what a cluster keeps (finished Jobs) it cleans up by itself.
        """
        return None  # a deliberate no-op default, not a forgotten abstract method

    def cluster_names(self) -> tuple[str, ...] | None:
        """The worker clusters this launcher is configured to reach, or None when every cluster name
        reaches the same place (then the API's SKYDRIVER_WORKER_CLUSTERS, default 'default', decides)."""
        return None
