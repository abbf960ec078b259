"""The launchers by name: what ``SKYDRIVER_LAUNCHER`` (and ``SKYDRIVER_CONDOR_SERVER_LAUNCHER``) choose.

A new launcher is one module with a :class:`Launcher` subclass plus one line in :data:`LAUNCHERS`.
Entries are import paths, so a launcher's client library (``kubernetes``, ``htcondor2``) is imported
only when that launcher is chosen; tests/unit/test_launcher_registry.py imports every entry, so a
misspelt one fails there rather than at a deployment's start.
"""

from __future__ import annotations

from skydriver_api.launchers.base import Launcher
from skydriver_api.settings import ApiSettings
from skyscan.entry_points import load_entry

#: name -> "module:class"
LAUNCHERS: dict[str, str] = {
    "local": "skydriver_api.launchers.local:LocalLauncher",
    "kubernetes": "skydriver_api.launchers.kubernetes:KubernetesLauncher",
    "htcondor": "skydriver_api.launchers.htcondor:HTCondorLauncher",
}


class UnknownLauncherError(ValueError):
    """A launcher name that is not in the registry."""


def launcher_class(name: str) -> type[Launcher]:
    """The class registered under ``name`` (imported now)."""
    if name not in LAUNCHERS:
        known = ", ".join(sorted(LAUNCHERS))
        raise UnknownLauncherError(
            f"unknown launcher {name!r} (SKYDRIVER_LAUNCHER); known launchers: {known}"
        )
    cls = load_entry(LAUNCHERS[name])
    if not (isinstance(cls, type) and issubclass(cls, Launcher)):
        raise TypeError(f"launcher {name!r}: {LAUNCHERS[name]} is not a Launcher subclass")
    return cls


def make_launcher(settings: ApiSettings, name: str | None = None) -> Launcher:
    """The launcher named ``name`` (default ``settings.launcher``), built from the settings."""
    return launcher_class(name or settings.launcher).from_settings(settings)
