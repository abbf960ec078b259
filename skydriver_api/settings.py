"""Settings of the API process and its reconciler (``SKYDRIVER_`` environment variables).

The scan servers and workers read their own (``server.settings``, ``worker.settings``); cluster
launchers add theirs (``SKYDRIVER_K8S_*``, ``SKYDRIVER_CONDOR_*``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr

from skyinfra.settings import ENV, BrokerSettings, DatabaseSettings

REALTIME_PRIORITY = 100
CATALOG_PRIORITY = -10


class ApiSettings(BrokerSettings, DatabaseSettings):
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
    max_total_workers: int = Field(16, ge=1)
    max_workers_per_scan: int = Field(1000, ge=1)
    max_event_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="Largest accepted event body.")
    max_nside: int = Field(1024, ge=1)
    server_restarts: int = Field(3, ge=0, description="Replacement servers started before a scan fails.")
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
    alert_nsides: str = Field("8:0,64:12,512:24", description="nside progression of alert scans.")
    alert_workers: int = Field(4, ge=1, le=10000, description="Workers of an alert scan.")
    alert_webhook_url: str = Field(
        "",
        description="POST the GCN-style summary of each completed alert scan here (empty: off).",
    )
    alert_webhook_attempts: int = Field(5, ge=1, description="Webhook deliveries tried before giving up.")
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

    @property
    def resolved_api_url(self) -> str:
        return self.api_url or f"http://{self.api_host}:{self.api_port}"


@lru_cache(maxsize=1)
def get_settings() -> ApiSettings:
    return ApiSettings()
