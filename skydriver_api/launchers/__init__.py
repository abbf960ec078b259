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
from skydriver_api.launchers.registry import LAUNCHERS, UnknownLauncherError, make_launcher

__all__ = [
    "LAUNCHERS",
    "LaunchError",
    "LaunchSpec",
    "Launcher",
    "Resources",
    "UnknownLauncherError",
    "WorkerCluster",
    "WorkforceStatus",
    "make_launcher",
]
