"""Settings of a scan server process (``SKYDRIVER_`` environment variables)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from skyinfra.settings import ENV, BrokerSettings, DatabaseSettings, ScanKeySettings, ScanTokenSettings


class ServerSettings(BrokerSettings, DatabaseSettings, ScanTokenSettings, ScanKeySettings):
    model_config = ENV

    publish_window: int = Field(256, ge=1, description="Unconfirmed publishes in flight per server.")
    result_batch: int = Field(1000, ge=1, description="Results written to MongoDB per bulk write.")
    batch_target_s: float = Field(
        0.25, gt=0, description="Fit time one task message should carry (the batch size follows it)."
    )
    batch_max_pixels: int = Field(256, ge=1, le=1024, description="Most pixels in one task message.")
    batch_messages_per_worker: int = Field(
        4, ge=1, description="Task messages outstanding per worker (its prefetch plus some waiting)."
    )
    max_outstanding_tasks: int = Field(
        20_000, ge=1, description="Most pixel tasks published and unanswered at once (bounds memory)."
    )
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
