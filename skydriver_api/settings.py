"""Settings of the API process and its reconciler (``SKYDRIVER_`` environment variables).

The scan servers and workers read their own (``server.settings``, ``worker.settings``); cluster
launchers add theirs (``SKYDRIVER_K8S_*``, ``SKYDRIVER_CONDOR_*``). The Kafka settings
(``SKYDRIVER_KAFKA_*``, ``skyinfra.settings.KafkaSettings``) serve the alert listener and the
reconciler's notice publishing.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from skyinfra.settings import ENV, BrokerSettings, DatabaseSettings, KafkaSettings, RecoSettings
from skyscan.records.spec import ScanSpec, ScanSpecError, TaskLimits

REALTIME_PRIORITY = 100  # realtime alerts; only alerts and admins may ask for it
CATALOG_PRIORITY = -10
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"  # profile and cluster names (DNS labels)


class WorkerProfile(BaseModel):
    """Resources of one worker, as the operator allows them; a scan request names a profile."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cpus: float = Field(1.0, gt=0, le=64)
    memory_mb: int = Field(2048, ge=128, le=512 * 1024)
    disk_mb: int = Field(4096, ge=128, le=4 * 1024 * 1024)
    max_worker_runtime_s: int = Field(4 * 3600, ge=60, le=14 * 24 * 3600)


class ApiSettings(BrokerSettings, DatabaseSettings, RecoSettings, KafkaSettings):
    model_config = ENV

    # --- API ------------------------------------------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    api_url: str = Field("", description="URL workers use to reach the API; default http://api_host:api_port")
    admin_token: SecretStr | None = Field(
        None,
        description="Bootstrap admin bearer token (hashed at start-up, never stored in clear).",
    )
    auth_disabled: bool = Field(
        False,
        description="Accept every request as an anonymous admin (local demos and tests only).",
    )

    # --- scans ----------------------------------------------------------------------------
    launcher: str = Field(
        "local", description="local, kubernetes or htcondor (skydriver_api/launchers/registry.py)"
    )
    reconcile_interval_s: float = Field(0.5, gt=0, description="How often the reconciler wakes up.")
    max_concurrent_scans: int = Field(4, ge=1)
    max_total_workers: int = Field(16, ge=1, description="Workers of all launched scans together.")
    max_workers_per_scan: int = Field(
        1000, ge=1, description="Workers of one scan, summed over its clusters and added workers."
    )
    max_event_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Largest accepted request body (bytes actually read)."
    )
    max_nside: int = Field(1024, ge=1)
    max_tasks_per_step: int = Field(
        100_000, ge=1, description="Tasks one refinement step of a scan may plan (the strategy's estimate)."
    )
    max_tasks_per_scan: int = Field(
        250_000, ge=1, description="Tasks a whole scan may plan (the strategy's estimate)."
    )
    worker_profiles: dict[str, WorkerProfile] = Field(
        default_factory=lambda: {"default": WorkerProfile()},
        description="Named worker resources (JSON) a scan request may choose with 'profile'.",
    )
    worker_clusters: list[str] = Field(
        default_factory=list,
        description="Worker clusters scan requests may name (JSON list); empty: the launcher's own "
        "(the HTCondor cluster map), else just 'default'.",
    )
    server_restarts: int = Field(3, ge=0, description="Replacement servers started before a scan fails.")
    worker_relaunches: int = Field(
        8,
        ge=1,
        description="Relaunches of a scan's workers in a row with no progress in between before the scan "
        "fails; above SKYDRIVER_DELIVERY_LIMIT, so a task that kills every worker is dead-lettered first.",
    )
    max_launch_attempts: int = Field(5, ge=1, description="Failed launches of one scan before it fails.")
    runtime_dir: Path = Field(Path(".services/run"), description="Local launcher: logs and token files.")
    warm_servers: int = Field(
        0, ge=0, le=64, description="Local launcher: scan servers kept started, each takes one scan."
    )
    warm_workers: int = Field(
        0, ge=0, le=1024, description="Local launcher: workers kept started, each takes one scan."
    )

    # --- realtime alerts ------------------------------------------------------------------
    alert_reco: str = Field("pandel-mpe", description="Reco of scans launched by POST /api/v1/alerts.")
    alert_nsides: str = Field(
        "8:0,64:12,512:24",
        description="nside progression of alert scans (with the contour strategy, its nsides: 8,64,512).",
    )
    alert_strategy: Literal["progression", "contour"] = Field(
        "progression",
        description="Refinement strategy of alert scans; contour refines until the 90% region is resolved.",
    )
    alert_workers: int = Field(4, ge=1, le=10000, description="Workers of an alert scan.")
    alert_webhook_url: str = Field(
        "",
        description="POST the GCN notice of each completed alert scan here (empty: off).",
    )
    alert_webhook_attempts: int = Field(5, ge=1, description="Webhook deliveries tried before giving up.")
    gcn_healpix_base_url: str = Field(
        "",
        description="Where the probability maps are published: a GCN notice's healpix_url is this plus "
        "the map's file name (empty: no healpix_url).",
    )
    geometry_file: Path | None = Field(
        None,
        description="Detector geometry CSV for i3live alerts (default: the shared IC86 table if present).",
    )

    # --- catalogs, idempotency, event streams ---------------------------------------------
    catalog_max_events: int = Field(10000, ge=1, description="Largest catalog accepted in one request.")
    idempotency_key_ttl_s: float = Field(
        86400.0, gt=0, description="How long an Idempotency-Key keeps returning the same scan."
    )
    sse_poll_s: float = Field(0.5, gt=0, le=10, description="How often an event stream re-reads the scan.")
    cursor_secret: SecretStr | None = Field(
        None,
        description="Key that signs list cursors; unset: a random key per process (cursors end with it).",
    )
    metrics_refresh_s: float = Field(
        15.0, gt=0, description="How often the /metrics snapshot is recomputed (in the background)."
    )

    retry_initial_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description="First wait before a failed launch, webhook or notice is tried again (then doubling, "
        "at most 60 s).",
    )

    # --- per-scan broker identities and signing keys ---------------------------------------
    scan_secret: SecretStr | None = Field(
        None,
        description="Service secret from which each scan's broker passwords and signing key are "
        "derived; unset: a random one kept in runtime_dir/scan-secret (0600). Set it (from a "
        "Secret) wherever the runtime directory does not outlive the API.",
    )
    rabbitmq_management_url: str = Field(
        "",
        description="RabbitMQ management API (http://host:15672) used to create and delete each "
        "scan's broker users, with SKYDRIVER_RABBITMQ_URL's credentials; empty: that host, port 15672.",
    )
    rabbitmq_scan_host: str = Field(
        "",
        description="Broker host:port scan processes connect to, if not SKYDRIVER_RABBITMQ_URL's "
        "(the API may reach the broker by another name than the workers do).",
    )

    @model_validator(mode="after")
    def _alert_scans_are_allowed(self) -> ApiSettings:
        """An alert scan must pass the checks every scan passes: found at start-up, not when the
        first alert arrives."""
        if self.alert_reco not in self.recos():
            raise ValueError(
                f"SKYDRIVER_ALERT_RECO {self.alert_reco!r} is not an enabled reco; enabled: "
                f"{', '.join(sorted(self.recos()))}"
            )
        if self.alert_workers > self.workers_per_scan:
            raise ValueError(
                f"SKYDRIVER_ALERT_WORKERS {self.alert_workers} is over the {self.workers_per_scan} "
                "a scan may have"
            )
        limits = TaskLimits(per_step=self.max_tasks_per_step, per_scan=self.max_tasks_per_scan)
        spec = ScanSpec(reco=self.alert_reco, nsides=self.alert_nsides, strategy=self.alert_strategy)
        try:
            spec.checked(None, self.max_nside, limits)
        except ScanSpecError as err:
            raise ValueError(
                f"SKYDRIVER_ALERT_NSIDES {self.alert_nsides!r} (SKYDRIVER_ALERT_STRATEGY "
                f"{self.alert_strategy}): {err}"
            ) from None
        return self

    @field_validator("worker_profiles")
    @classmethod
    def _profile_names(cls, profiles: dict[str, WorkerProfile]) -> dict[str, WorkerProfile]:
        if not profiles:
            raise ValueError("at least one worker profile is needed")
        return {_name(n, "worker profile"): p for n, p in profiles.items()}

    @field_validator("worker_clusters")
    @classmethod
    def _cluster_names(cls, clusters: list[str]) -> list[str]:
        return [_name(n, "worker cluster") for n in clusters]

    @property
    def workers_per_scan(self) -> int:
        """Workers one scan may have in all: its own limit, and never more than the whole budget."""
        return min(self.max_workers_per_scan, self.max_total_workers)

    @property
    def resolved_api_url(self) -> str:
        return self.api_url or f"http://{self.api_host}:{self.api_port}"


def _name(name: str, what: str) -> str:
    if not (len(name) <= 63 and re.match(NAME_PATTERN, name)):
        raise ValueError(f"{what} name {name!r}: lower-case letters, digits and '-' (at most 63)")
    return name


@lru_cache(maxsize=1)
def get_settings() -> ApiSettings:
    return ApiSettings()
