"""What the operator lets a request ask for: recos, worker profiles and clusters, worker budgets,
priorities and task counts. Checked at submission, before anything is written; the reconciler
enforces the worker budgets again when it starts workers.

A request never chooses code, images or credentials: it may name an enabled reco, a configured
worker profile (resources) and configured clusters, nothing more.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from skydriver_api.auth import Principal
from skydriver_api.services.errors import Forbidden, Invalid
from skydriver_api.settings import REALTIME_PRIORITY, ApiSettings
from skyscan.physics.recos.registry import RECOS
from skyscan.records.spec import TaskLimits

DEFAULT_CLUSTER = "default"


def known_clusters(settings: ApiSettings, launcher_clusters: tuple[str, ...] | None) -> tuple[str, ...]:
    """The worker clusters requests may name: SKYDRIVER_WORKER_CLUSTERS (which must be among the
    launcher's own, when it has any), else the launcher's, else just 'default'."""
    configured = tuple(settings.worker_clusters)
    if configured and launcher_clusters is not None:
        unknown = sorted(set(configured) - set(launcher_clusters))
        if unknown:
            raise ValueError(
                f"SKYDRIVER_WORKER_CLUSTERS names {unknown}, which the {settings.launcher} launcher "
                f"does not reach; it is configured for: {', '.join(launcher_clusters)}"
            )
    return configured or launcher_clusters or (DEFAULT_CLUSTER,)


@dataclass(frozen=True)
class SubmissionPolicy:
    settings: ApiSettings
    clusters: tuple[str, ...]

    @property
    def task_limits(self) -> TaskLimits:
        return TaskLimits(
            per_step=self.settings.max_tasks_per_step, per_scan=self.settings.max_tasks_per_scan
        )

    def check_reco(self, reco: str) -> None:
        enabled = self.settings.recos()
        if reco not in enabled:
            what = "is not enabled on this service" if reco in RECOS else "is an unknown reco"
            raise Invalid(
                f"reco: {reco!r} {what} (SKYDRIVER_ENABLED_RECOS, SKYDRIVER_TEST_RECOS); "
                f"enabled: {', '.join(sorted(enabled))}"
            )

    def resources(self, profile: str) -> dict[str, Any]:
        """The worker resources of a configured profile, as stored on the scan."""
        profiles = self.settings.worker_profiles
        if profile not in profiles:
            raise Invalid(
                f"profile: no worker profile {profile!r} is configured; known: {', '.join(sorted(profiles))}"
            )
        return profiles[profile].model_dump()

    def check_clusters(self, names: Iterable[str]) -> None:
        unknown = sorted(set(names) - set(self.clusters))
        if unknown:
            raise Invalid(
                f"clusters: {', '.join(repr(n) for n in unknown)} not configured; known: "
                f"{', '.join(self.clusters)}"
            )

    def check_workers(self, total: int, already: int = 0) -> None:
        """A scan's workers (``already`` requested plus ``total`` more) within the per-scan limit."""
        limit = self.settings.workers_per_scan
        if already + total > limit:
            asked = f"{total} more on top of {already}" if already else f"{total}"
            raise Invalid(
                f"workers: {asked} asked for; a scan may have at most {limit} workers in all "
                "(SKYDRIVER_MAX_WORKERS_PER_SCAN, SKYDRIVER_MAX_TOTAL_WORKERS)"
            )

    def check_priority(self, priority: int, principal: Principal, *, realtime: bool = False) -> None:
        """Realtime priority is for alerts (``realtime``) and admins."""
        if priority >= REALTIME_PRIORITY and not realtime and principal.role != "admin":
            raise Forbidden(
                f"priority: {REALTIME_PRIORITY} (realtime) is reserved for realtime alerts and admins; "
                f"ask for at most {REALTIME_PRIORITY - 1}"
            )
