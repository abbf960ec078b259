"""Settings of a worker process (``SKYDRIVER_`` environment variables). Workers never reach MongoDB."""

from __future__ import annotations

from pydantic import Field

from skyinfra.settings import ENV, BrokerSettings, RecoSettings, ScanKeySettings, ScanTokenSettings


class WorkerSettings(BrokerSettings, ScanTokenSettings, ScanKeySettings, RecoSettings):
    model_config = ENV

    api_url: str = Field("http://127.0.0.1:8000", description="Where the worker fetches its scan's event.")
    worker_prefetch: int = Field(2, ge=1, description="Unacked tasks per worker (one fitting, one buffered).")
    worker_idle_timeout_s: float = Field(60.0, gt=0, description="Exit after this long without a task.")
    worker_pixel_timeout_s: float = Field(600.0, gt=0, description="Kill a fit after this long.")
    worker_max_consecutive_failures: int = Field(5, ge=1, description="Quarantine after N failed fits.")
