"""Settings of the operations features (alerts, catalogs, webhooks, idempotency).

Kept apart from :class:`skyinfra.settings.Settings` (shared by every process) because only the API and
its reconciler read them. Same ``SKYDRIVER_`` prefix: ``SKYDRIVER_ALERT_RECO``,
``SKYDRIVER_ALERT_WEBHOOK_URL``, ``SKYDRIVER_GEOMETRY_FILE``, ...
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REALTIME_PRIORITY = 100
CATALOG_PRIORITY = -10


class OpsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SKYDRIVER_", env_file=None, extra="ignore")

    # --- realtime alerts ------------------------------------------------------------------
    alert_reco: str = Field("pandel-mpe", description="Reco of scans launched by POST /api/v1/alerts.")
    alert_nsides: str = Field("8:0,64:12,512:24", description="nside progression of alert scans.")
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

    # --- catalogs -------------------------------------------------------------------------
    catalog_max_events: int = Field(10000, ge=1, description="Largest catalog accepted in one request.")

    # --- launches -------------------------------------------------------------------------
    max_launch_attempts: int = Field(5, ge=1, description="Failed launches of one scan before it fails.")

    # --- server-sent events ---------------------------------------------------------------
    idempotency_key_ttl_s: float = Field(
        86400.0, gt=0, description="How long an Idempotency-Key keeps returning the same scan."
    )
    sse_poll_s: float = Field(0.5, gt=0, le=10, description="How often an event stream re-reads the scan.")


@lru_cache(maxsize=1)
def get_ops_settings() -> OpsSettings:
    return OpsSettings()
