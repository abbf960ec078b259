"""Launchers: how scans get their server and workers (local processes, Kubernetes, HTCondor)."""

from __future__ import annotations

from skydriver_api.launchers.base import (
    Launcher,
    LaunchError,
    LaunchSpec,
    Resources,
    WorkerCluster,
    WorkforceStatus,
)
from skydriver_api.settings import ApiSettings


def make_launcher(settings: ApiSettings) -> Launcher:
    if settings.launcher == "local":
        from skydriver_api.launchers.local import LocalLauncher

        return LocalLauncher(settings)
    if settings.launcher == "kubernetes":
        from skydriver_api.launchers.kubernetes import KubernetesLauncher

        return KubernetesLauncher()
    if settings.launcher == "htcondor":
        from skydriver_api.launchers.htcondor import HTCondorLauncher

        return HTCondorLauncher()
    raise ValueError(f"unknown launcher {settings.launcher!r}")


__all__ = [
    "LaunchError",
    "LaunchSpec",
    "Launcher",
    "Resources",
    "WorkerCluster",
    "WorkforceStatus",
    "make_launcher",
]
