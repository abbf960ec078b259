"""Versioned JSON wire formats between scan server and workers (never pickle).

A task message on ``<scan>.pixels`` carries several pixel tasks of one scan (``skydriver.task/2``);
a result message on ``<scan>.results`` carries several pixel results (``skydriver.result/2``). The
batch is only the envelope: every pixel keeps its own deterministic task id
(``scan_id:nside:pixel:variation``), so a republished task and a redelivered result are recognised
and ignored pixel by pixel, whatever batch they travel in. Version 1 messages (one pixel each) are
refused with a reason that names the version.

Every message is encoded, signed, verified and decoded here and nowhere else. Messages travel
through the scan's own exchange (``exchange_name``), routed by queue kind, and carry an HMAC-SHA256
of their body under the scan's key in the ``skydriver-signature`` header: the broker is not
trusted, so a message that does not prove it came from a holder of the scan's key (its server or
its workers) is rejected and counted, whoever could publish it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from skyscan.physics.event import format_validation_error

TASK_SCHEMA = "skydriver.task/2"
RESULT_SCHEMA = "skydriver.result/2"
# Versions this code no longer speaks, and why a message in one of them is refused.
RETIRED_SCHEMAS = {
    "skydriver.task/1": "single-pixel tasks were replaced by batches (skydriver.task/2)",
    "skydriver.result/1": "single-pixel results were replaced by batches (skydriver.result/2)",
}
MAX_MESSAGE_BYTES = 1_000_000
MAX_PIXELS_PER_MESSAGE = 1024

Nside = Annotated[int, Field(ge=1, le=1 << 29)]
Angle = Annotated[float, Field(allow_inf_nan=False)]


def task_id(scan_id: str, nside: int, pixel: int, variation: int) -> str:
    return f"{scan_id}:{nside}:{pixel}:{variation}"


def queue_names(scan_id: str) -> dict[str, str]:
    """Per-scan queues.

    ``pixels`` (tasks) dead-letters to ``dead`` once a task message exceeds the delivery limit; the
    server consumes ``dead``, splits a dead batch into single-pixel messages (so a poison pixel is
    isolated) and records a dead single pixel as failed. ``results`` dead-letters what the server
    rejects (malformed or foreign messages) to ``rejected``, kept for inspection until the scan's
    queues are deleted.
    """
    return {
        "pixels": f"skydriver.{scan_id}.pixels",
        "results": f"skydriver.{scan_id}.results",
        "dead": f"skydriver.{scan_id}.dead",
        "rejected": f"skydriver.{scan_id}.rejected",
    }


def exchange_name(scan_id: str) -> str:
    """The scan's direct exchange: every message of the scan is published here with its queue kind
    (``pixels``, ``results``, ``dead``, ``rejected``) as the routing key. Publishing needs write
    permission on the exchange only, so a scan's identities can publish into no other scan's
    queues (the default exchange would reach every queue)."""
    return f"skydriver.{scan_id}"


SIGNATURE_HEADER = "skydriver-signature"


def sign(key: bytes, body: bytes) -> str:
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def signed_headers(key: bytes, body: bytes) -> dict[str, str]:
    """AMQP headers of a message with this body under the scan's key."""
    return {SIGNATURE_HEADER: sign(key, body)}


def verify(key: bytes, body: bytes, headers: Mapping[str, Any] | None) -> None:
    """Raise :class:`MessageError` unless the body carries a valid signature under ``key``."""
    signature = (headers or {}).get(SIGNATURE_HEADER)
    if isinstance(signature, bytes):
        signature = signature.decode("ascii", "replace")
    if not isinstance(signature, str):
        raise MessageError("unsigned message: it carries no skydriver-signature header")
    if not hmac.compare_digest(signature, sign(key, body)):
        raise MessageError("bad signature: not signed with this scan's key")


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
    """One pixel variation to fit, inside a :class:`TaskBatch`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task_id: str
    nside: Nside
    pixel: int = Field(ge=0)
    variation: int = Field(ge=0)
    direction: Direction
    seed: Vertex | None = None


class TaskBatch(BaseModel):
    """A task message: pixel tasks of one scan, fitted with one reco and its options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_: Literal["skydriver.task/2"] = Field(TASK_SCHEMA, alias="schema")
    scan_id: str = Field(min_length=1, max_length=64)
    reco: str
    options: dict[str, Any] = Field(default_factory=dict)
    tasks: list[PixelTask] = Field(min_length=1, max_length=MAX_PIXELS_PER_MESSAGE)

    @model_validator(mode="after")
    def _ids_match(self) -> TaskBatch:
        for t in self.tasks:
            if t.task_id != task_id(self.scan_id, t.nside, t.pixel, t.variation):
                raise ValueError(f"task_id {t.task_id!r} does not match scan_id/nside/pixel/variation")
        return self

    def with_tasks(self, tasks: list[PixelTask]) -> TaskBatch:
        """The same scan, reco and options for other tasks (a split or a hand-back)."""
        return TaskBatch(scan_id=self.scan_id, reco=self.reco, options=self.options, tasks=tasks)

    @property
    def message_id(self) -> str:
        first = self.tasks[0].task_id
        return first if len(self.tasks) == 1 else f"{first}+{len(self.tasks) - 1}"


class PixelResult(BaseModel):
    """One pixel variation's outcome, inside a :class:`ResultBatch`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task_id: str
    nside: Nside
    pixel: int = Field(ge=0)
    variation: int = Field(ge=0)
    # -lnL; None when the fit failed (JSON has no NaN). A failed fit never becomes the best pixel.
    llh: float | None = Field(None, allow_inf_nan=False)
    status: Literal["ok", "failed"] = "ok"
    fit: dict[str, float | None] = Field(default_factory=dict, description="X, Y, Z, T, E_tot, ...")
    error: str | None = Field(None, max_length=4000)
    runtime_s: float = Field(0.0, ge=0)

    @property
    def llh_value(self) -> float:
        return math.nan if self.llh is None else self.llh

    @field_validator("task_id")
    @classmethod
    def _id_shape(cls, value: str) -> str:
        if value.count(":") != 3:
            raise ValueError("task_id must be scan_id:nside:pixel:variation")
        return value


class ResultBatch(BaseModel):
    """A result message: results of one scan from one worker (possibly of several task messages)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_: Literal["skydriver.result/2"] = Field(RESULT_SCHEMA, alias="schema")
    scan_id: str = Field(min_length=1, max_length=64)
    worker: str = Field("", max_length=200)
    results: list[PixelResult] = Field(min_length=1, max_length=MAX_PIXELS_PER_MESSAGE)

    @model_validator(mode="after")
    def _ids_match(self) -> ResultBatch:
        for r in self.results:
            if r.task_id != task_id(self.scan_id, r.nside, r.pixel, r.variation):
                raise ValueError("task_id does not match scan_id/nside/pixel/variation")
        return self


class MessageError(ValueError):
    """A message off the queue is malformed or foreign; it is dead-lettered, never crashes anything."""


def encode(message: TaskBatch | ResultBatch) -> bytes:
    return message.model_dump_json(by_alias=True).encode()


def _decode(body: bytes, model: type[BaseModel], schema: str) -> Any:
    if len(body) > MAX_MESSAGE_BYTES:
        raise MessageError(f"message of {len(body)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:  # the common case, parsed and validated in one pass
        return model.model_validate_json(body)
    except ValidationError as err:
        invalid = err
    try:  # say why: not JSON, a retired or unknown schema, or which field is wrong
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise MessageError(f"not JSON: {err}") from None
    got = data.get("schema") if isinstance(data, dict) else type(data).__name__
    if got in RETIRED_SCHEMAS:
        raise MessageError(f"schema {got!r} is no longer accepted: {RETIRED_SCHEMAS[got]}")
    if got != schema:
        raise MessageError(f"expected schema {schema!r}, got {got!r}")
    raise MessageError(format_validation_error(invalid))


def decode_tasks(body: bytes) -> TaskBatch:
    return _decode(body, TaskBatch, TASK_SCHEMA)


def decode_results(body: bytes) -> ResultBatch:
    return _decode(body, ResultBatch, RESULT_SCHEMA)
