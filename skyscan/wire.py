"""Versioned JSON wire formats between scan server and workers (never pickle).

A pixel task goes out on ``<scan>.pixels``; a pixel result comes back on ``<scan>.results``.
Task ids are deterministic (``scan_id:nside:pixel:variation``) so a republished task and a
redelivered result can be recognised and ignored.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from skyscan.physics.event import format_validation_error

TASK_SCHEMA = "skydriver.task/1"
RESULT_SCHEMA = "skydriver.result/1"
MAX_MESSAGE_BYTES = 1_000_000

Nside = Annotated[int, Field(ge=1, le=1 << 29)]
Angle = Annotated[float, Field(allow_inf_nan=False)]


def task_id(scan_id: str, nside: int, pixel: int, variation: int) -> str:
    return f"{scan_id}:{nside}:{pixel}:{variation}"


def queue_names(scan_id: str) -> dict[str, str]:
    """Per-scan queues.

    ``pixels`` (tasks) dead-letters to ``dead`` once a task exceeds the delivery limit; the server
    consumes ``dead`` and records those pixels as failed. ``results`` dead-letters what the server
    rejects (malformed or foreign messages) to ``rejected``, kept for inspection until the scan's
    queues are deleted.
    """
    return {
        "pixels": f"skydriver.{scan_id}.pixels",
        "results": f"skydriver.{scan_id}.results",
        "dead": f"skydriver.{scan_id}.dead",
        "rejected": f"skydriver.{scan_id}.rejected",
    }


class Direction(BaseModel):
    """A pixel's direction: equatorial (where it points on the sky) and detector frame at the event time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ra: Angle
    dec: Angle
    zenith: Angle
    azimuth: Angle


class Vertex(BaseModel):
    """A vertex seed or fitted vertex: position (m, detector frame) and time (ns)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    x: Angle
    y: Angle
    z: Angle
    t: Angle


class PixelTask(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_: Literal["skydriver.task/1"] = Field(TASK_SCHEMA, alias="schema")
    task_id: str
    scan_id: str = Field(min_length=1, max_length=64)
    reco: str
    nside: Nside
    pixel: int = Field(ge=0)
    variation: int = Field(ge=0)
    direction: Direction
    seed: Vertex | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("task_id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if value.count(":") != 3:
            raise ValueError("task_id must be scan_id:nside:pixel:variation")
        return value


class PixelResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_: Literal["skydriver.result/1"] = Field(RESULT_SCHEMA, alias="schema")
    task_id: str
    scan_id: str = Field(min_length=1, max_length=64)
    nside: Nside
    pixel: int = Field(ge=0)
    variation: int = Field(ge=0)
    # -lnL; None when the fit failed (JSON has no NaN). A failed fit never becomes the best pixel.
    llh: float | None = Field(None, allow_inf_nan=False)
    status: Literal["ok", "failed"] = "ok"
    fit: dict[str, float | None] = Field(default_factory=dict, description="X, Y, Z, T, E_tot, ...")
    error: str | None = Field(None, max_length=4000)
    runtime_s: float = Field(0.0, ge=0)
    worker: str = Field("", max_length=200)

    @property
    def llh_value(self) -> float:
        return math.nan if self.llh is None else self.llh

    def check_task_id(self) -> None:
        if self.task_id != task_id(self.scan_id, self.nside, self.pixel, self.variation):
            raise ValueError("task_id does not match scan_id/nside/pixel/variation")


class MessageError(ValueError):
    """A message off the queue is malformed or foreign; it is dead-lettered, never crashes anything."""


def encode(model: BaseModel) -> bytes:
    return model.model_dump_json(by_alias=True).encode()


def _decode(body: bytes, model: type[BaseModel], schema: str) -> Any:
    if len(body) > MAX_MESSAGE_BYTES:
        raise MessageError(f"message of {len(body)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise MessageError(f"not JSON: {err}") from None
    if not isinstance(data, dict) or data.get("schema") != schema:
        got = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise MessageError(f"expected schema {schema!r}, got {got!r}")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise MessageError(format_validation_error(err)) from None


def decode_task(body: bytes) -> PixelTask:
    return _decode(body, PixelTask, TASK_SCHEMA)


def decode_result(body: bytes) -> PixelResult:
    result: PixelResult = _decode(body, PixelResult, RESULT_SCHEMA)
    try:
        result.check_task_id()
    except ValueError as err:
        raise MessageError(str(err)) from None
    return result
