"""REST request and response bodies."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from skyscan.event import Event
from skyscan.refinement import DEFAULT_PROGRESSION

Scalar = str | int | float | bool


class ClusterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field("default", min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    workers: int = Field(ge=1, le=10000)


class ResourceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cpus: float = Field(1.0, gt=0, le=64)
    memory_mb: int = Field(2048, ge=128, le=512 * 1024)
    disk_mb: int = Field(4096, ge=128, le=4 * 1024 * 1024)
    max_worker_runtime_s: int = Field(4 * 3600, ge=60, le=14 * 24 * 3600)
    image: str = Field("", max_length=300)


class ScanRequest(BaseModel):
    """What to scan and how. Everything but ``event`` has a default."""

    model_config = ConfigDict(extra="forbid")

    event: Event
    reco: str = Field("pandel-mpe", description="Reco name (see GET /api/v1/recos)")
    reco_options: dict[str, Any] = Field(default_factory=dict)
    nsides: str = Field(DEFAULT_PROGRESSION, description="nside:extension progression, e.g. 8:0,64:12,512:24")
    strategy: Literal["progression", "contour"] = "progression"
    strategy_options: dict[str, Any] = Field(default_factory=dict)
    workers: int = Field(2, ge=1, le=10000, description="Workers when no clusters are given")
    clusters: list[ClusterRequest] = Field(default_factory=list, max_length=16)
    resources: ResourceRequest = Field(default_factory=ResourceRequest)
    priority: int = Field(0, ge=-100, le=100, description="Higher runs first; realtime alerts use 100")
    classifiers: dict[str, Scalar] = Field(default_factory=dict, max_length=64)


class ScanCreated(BaseModel):
    scan_id: str
    state: str
    links: dict[str, str]


class NsideProgressOut(BaseModel):
    tasks_sent: int = 0
    tasks_done: int = 0
    pixels_done: int = 0
    pixels_failed: int = 0


class ProgressOut(BaseModel):
    nsides: dict[str, NsideProgressOut] = Field(default_factory=dict)
    tasks_sent: int = 0
    tasks_done: int = 0
    rate_per_s: float | None = None
    eta_s: float | None = None
    updated_at: dt.datetime | None = None


class ScanStatus(BaseModel):
    scan_id: str
    state: str
    state_reason: str | None = None
    owner: str
    reco: str
    nsides: str
    strategy: str
    priority: int
    run_id: int
    event_id: int
    classifiers: dict[str, Scalar]
    created_at: dt.datetime
    updated_at: dt.datetime
    progress: ProgressOut
    best_fit: dict[str, Any] | None = None
    failed_pixels: int = 0
    server_restarts: int = 0
    workforce: dict[str, Any] | None = None
    counters: dict[str, int] = Field(default_factory=dict)
    history: list[dict[str, Any]] = Field(default_factory=list)


class ScanPage(BaseModel):
    scans: list[ScanStatus]
    next_cursor: str | None


class ErrorBody(BaseModel):
    detail: str
