"""Configuration shared by the API, the scan server and the workers.

Every field can be set from the environment with the ``SKYDRIVER_`` prefix, e.g.
``SKYDRIVER_RABBITMQ_URL``. Secrets are ``SecretStr`` so they never end up in reprs or logs.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SKYDRIVER_", env_file=None, extra="ignore")

    # --- services -------------------------------------------------------------------------
    rabbitmq_url: SecretStr = Field(
        SecretStr("amqp://guest:guest@127.0.0.1:5672/%2F"),
        description="AMQP URL of the broker the scan servers and workers share.",
    )
    rabbitmq_heartbeat_s: int = Field(30, ge=0, description="AMQP heartbeat interval.")
    mongodb_uri: SecretStr = Field(SecretStr("mongodb://127.0.0.1:27017"), description="MongoDB URI.")
    mongodb_database: str = Field("skydriver", description="Database that holds every collection.")

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
        "local",
        description="Where scan servers and workers run: a name in skydriver_api.launchers.registry.",
    )
    reconcile_interval_s: float = Field(0.5, gt=0, description="How often the reconciler wakes up.")
    max_concurrent_scans: int = Field(4, ge=1)
    max_total_workers: int = Field(16, ge=1)
    max_workers_per_scan: int = Field(1000, ge=1)
    max_event_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="Largest accepted event body.")
    max_nside: int = Field(1024, ge=1)
    server_restarts: int = Field(3, ge=0, description="Replacement servers started before a scan fails.")
    runtime_dir: Path = Field(Path(".services/run"), description="Local launcher: logs and token files.")

    # --- server ---------------------------------------------------------------------------
    publish_window: int = Field(256, ge=1, description="Unconfirmed publishes in flight per server.")
    result_batch: int = Field(200, ge=1, description="Results written to MongoDB per bulk write.")
    result_batch_wait_s: float = Field(0.05, ge=0)
    redeliver_after_s: float = Field(
        600.0,
        gt=0,
        description="Republish a task (same id) when no result came back for this long.",
    )
    delivery_limit: int = Field(4, ge=1, description="Deliveries of one task before it is dead-lettered.")
    failed_pixel_policy: Literal["complete", "fail"] = Field(
        "complete",
        description="complete: finish with failed pixels marked; fail: fail the scan.",
    )

    # --- worker ---------------------------------------------------------------------------
    worker_prefetch: int = Field(2, ge=1, description="Unacked tasks per worker (one fitting, one buffered).")
    worker_idle_timeout_s: float = Field(60.0, gt=0, description="Exit after this long without a task.")
    worker_pixel_timeout_s: float = Field(600.0, gt=0, description="Kill a fit after this long.")
    worker_max_consecutive_failures: int = Field(5, ge=1, description="Quarantine after N failed fits.")
    scan_token: SecretStr | None = Field(None, description="Per-scan system token (server and workers).")
    scan_token_file: Path | None = Field(None, description="File holding the per-scan system token.")

    @property
    def resolved_api_url(self) -> str:
        return self.api_url or f"http://{self.api_host}:{self.api_port}"

    def read_scan_token(self) -> str | None:
        if self.scan_token is not None:
            return self.scan_token.get_secret_value()
        if self.scan_token_file is not None:
            return self.scan_token_file.read_text().strip()
        return None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
