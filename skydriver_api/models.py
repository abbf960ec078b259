"""REST request and response bodies."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from skydriver_api.settings import NAME_PATTERN
from skyscan.physics.event import Event
from skyscan.records.scan import ScanState
from skyscan.refinement.progression import DEFAULT_PROGRESSION
from skyscan.skymap.exports import FORMATS

INT64 = 2**63 - 1
# The product formats, as an enum in the OpenAPI document (the exporters' registry is the source).
ResultFormat = Literal[FORMATS]  # type: ignore[valid-type]
Scalar = str | int | float | bool
# Stored values: bounded so that MongoDB can hold them (64-bit integers, no '$' or '.' in keys).
StoredScalar = (
    Annotated[str, StringConstraints(max_length=256)]
    | bool
    | Annotated[int, Field(ge=-INT64, le=INT64)]
    | float
)
ClassifierKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Classifiers = dict[ClassifierKey, StoredScalar]


ProfileName = Annotated[
    str,
    Field(
        max_length=63,
        pattern=NAME_PATTERN,
        description="A worker profile the operator configured (SKYDRIVER_WORKER_PROFILES): the workers' "
        "cpus, memory, disk and runtime. Images and credentials are never a request's choice.",
    ),
]
ClusterName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=63,
        pattern=NAME_PATTERN,
        description="A worker cluster the operator configured",
    ),
]


class ClusterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: ClusterName = "default"
    workers: int = Field(ge=1, le=10000)


class ScanRequest(BaseModel):
    """What to scan and how. Everything but ``event`` has a default."""

    model_config = ConfigDict(extra="forbid")

    event: Event
    reco: str = Field("pandel-mpe", description="Reco name (see GET /api/v1/recos)")
    reco_options: dict[str, Any] = Field(default_factory=dict)
    nsides: str = Field(DEFAULT_PROGRESSION, description="nside:extension progression, e.g. 8:0,64:12,512:24")
    strategy: Literal["progression", "contour"] = "progression"
    strategy_options: dict[str, Any] = Field(default_factory=dict)
    level_set: str | None = Field(
        None,
        max_length=200,
        description="2*dLLH levels of the error regions: wilks (1.39, 4.61), icecube-sim (22.2, 64.2) "
        "or 'percent:level,...'; default: the reco's simulation-calibrated levels (Wilks if it has none)",
    )
    workers: int = Field(2, ge=1, le=10000, description="Workers when no clusters are given")
    clusters: list[ClusterRequest] = Field(default_factory=list, max_length=16)
    profile: ProfileName = "default"
    priority: int = Field(
        0, ge=-100, le=100, description="Higher runs first; 100 (realtime) is for alerts and admins"
    )
    classifiers: Classifiers = Field(default_factory=dict, max_length=64)


class ScanCreated(BaseModel):
    scan_id: str
    state: ScanState
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
    state: ScanState
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
    rescan_of: str | None = None
    catalog_id: str | None = None
    alert: dict[str, Any] | None = None
    workers: int | None = None
    worker_requests: list[dict[str, Any]] = Field(default_factory=list)
    launch: dict[str, Any] | None = None


class ScanPage(BaseModel):
    scans: list[ScanStatus]
    next_cursor: str | None


class ErrorBody(BaseModel):
    detail: str


class RescanRequest(BaseModel):
    """Overrides for a rescan; anything left out is copied from the original scan."""

    model_config = ConfigDict(extra="forbid")

    reco: str | None = None
    reco_options: dict[str, Any] | None = None
    nsides: str | None = None
    strategy: Literal["progression", "contour"] | None = None
    strategy_options: dict[str, Any] | None = None
    workers: int | None = Field(None, ge=1, le=10000)
    profile: ProfileName | None = None
    priority: int | None = Field(None, ge=-100, le=100)
    classifiers: Classifiers | None = Field(None, max_length=64)
    abort_original: bool = Field(False, description="Abort the original scan first (when it is still active)")


class AddWorkersRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workers: int = Field(ge=1, le=10000)
    cluster: ClusterName = "default"


class WorkerRequestAccepted(BaseModel):
    scan_id: str
    request_id: str
    workers: int
    cluster: str
    state: str


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["reader", "submitter", "admin"]
    owner: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
    expires_days: float | None = Field(None, gt=0, le=3650)
    note: str = Field("", max_length=200)


class TokenCreated(BaseModel):
    token: str = Field(description="The bearer token; shown once, only its hash is kept")
    token_id: str
    role: str
    owner: str
    expires_at: dt.datetime | None


class AlertMeta(BaseModel):
    """Realtime alert metadata: (run_id, event_id, revision) identifies one alert revision."""

    model_config = ConfigDict(extra="allow")

    run_id: int = Field(ge=0, le=INT64)
    event_id: int = Field(ge=0, le=INT64)
    revision: int = Field(0, ge=0, le=INT64)
    stream: str = Field("", max_length=100)

    @model_validator(mode="after")
    def _extras_are_storable(self) -> AlertMeta:
        extra = self.model_extra or {}
        if len(extra) > 32:
            raise ValueError("at most 32 extra alert fields")
        for key, value in extra.items():
            if not (key.replace("_", "").replace("-", "").isalnum() and len(key) <= 64 and key.isascii()):
                raise ValueError(f"alert field name {key!r}: letters, digits, '_' and '-' only")
            ok = (
                value is None
                or isinstance(value, bool | float | str)
                or (isinstance(value, int) and -INT64 <= value <= INT64)
            )
            if not ok or (isinstance(value, str) and len(value) > 256):
                raise ValueError(
                    f"alert field {key!r}: a number, boolean, null or string of at most 256 characters"
                )
        return self


class AlertRequest(BaseModel):
    """An open-format event with its alert metadata."""

    model_config = ConfigDict(extra="forbid")

    event: Event
    alert: AlertMeta


class AlertAccepted(BaseModel):
    scan_id: str
    duplicate: bool
    alert: dict[str, Any]
    links: dict[str, str]


class CatalogRequest(BaseModel):
    """Many events scanned with one configuration; each event becomes a child scan at low priority."""

    model_config = ConfigDict(extra="forbid")

    events: list[Event] = Field(min_length=1)
    name: str = Field("", max_length=200)
    reco: str = "pandel-mpe"
    reco_options: dict[str, Any] = Field(default_factory=dict)
    nsides: str = DEFAULT_PROGRESSION
    strategy: Literal["progression", "contour"] = "progression"
    strategy_options: dict[str, Any] = Field(default_factory=dict)
    workers: int = Field(2, ge=1, le=10000)
    profile: ProfileName = "default"
    priority: int = Field(-10, ge=-100, le=100)
    classifiers: Classifiers = Field(default_factory=dict, max_length=64)


class CatalogStatus(BaseModel):
    catalog_id: str
    name: str
    owner: str
    created_at: dt.datetime
    n_events: int
    states: dict[str, int]
    tasks_sent: int
    tasks_done: int
    complete: bool
    scans: list[dict[str, Any]]
    links: dict[str, str]


class BacklogEntry(BaseModel):
    position: int
    scan_id: str
    priority: int
    owner: str
    workers: int
    created_at: dt.datetime
    attempts: int
    next_attempt_at: dt.datetime | None
    last_error: str | None
    waiting_for: str


class Backlog(BaseModel):
    entries: list[BacklogEntry]
    active_scans: int
    workers_in_use: int
    max_concurrent_scans: int
    max_total_workers: int
