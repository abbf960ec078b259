"""Settings of a scan server process (``SKYDRIVER_`` environment variables)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from skyinfra.settings import ENV, BrokerSettings, DatabaseSettings, ScanTokenSettings


class ServerSettings(BrokerSettings, DatabaseSettings, ScanTokenSettings):
    model_config = ENV

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
