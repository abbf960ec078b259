"""The open event format, version 1 (``skydriver.event/1``).

An event is what one scan reconstructs: ids, time, and the detector pulses. Validation errors
name the offending field (``pulses.3.time: ...``) so a REST client knows what to fix.
"""

from __future__ import annotations

import json
import math
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

EVENT_SCHEMA = "skydriver.event/1"
MAX_PULSES = 200_000
INT64_MAX = 2**63 - 1  # ids are stored as BSON int64

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class Pulse(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    x: FiniteFloat = Field(description="DOM x in metres, detector frame")
    y: FiniteFloat = Field(description="DOM y in metres, detector frame")
    z: FiniteFloat = Field(description="DOM z in metres, detector frame")
    time: FiniteFloat = Field(description="Pulse time in ns")
    charge: FiniteFloat = Field(gt=0, description="Pulse charge in PE")
    string: int | None = Field(None, ge=0, le=INT64_MAX)
    om: int | None = Field(None, ge=0, le=INT64_MAX)
    hlc: bool | None = None


class Truth(BaseModel):
    """The true direction of a simulated event: where the particle came from (IceCube convention)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    zenith: FiniteFloat = Field(ge=0.0, le=math.pi, description="radians")
    azimuth: FiniteFloat = Field(ge=0.0, le=2 * math.pi, description="radians")
    energy: FiniteFloat | None = Field(None, gt=0, description="GeV")


class ReferenceFit(BaseModel):
    """A direction another reconstruction found for this event (e.g. IceCube's HESE_SPEFit2)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    zenith: FiniteFloat = Field(ge=0.0, le=math.pi)
    azimuth: FiniteFloat = Field(ge=-2 * math.pi, le=4 * math.pi)


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_: Literal["skydriver.event/1"] = Field(alias="schema", description="Format and version tag")
    run_id: int = Field(ge=0, le=INT64_MAX)
    event_id: int = Field(ge=0, le=INT64_MAX)
    mjd: FiniteFloat = Field(ge=0.0, le=100000.0, description="Modified Julian Date of the event")
    event_type: str = Field(min_length=1, max_length=64)
    is_real_event: bool
    pulses: list[Pulse] = Field(min_length=1, max_length=MAX_PULSES)
    truth: Truth | None = None
    reference_fits: dict[str, ReferenceFit] = Field(default_factory=dict)
    metadata: dict[str, str | int | float | bool | None] = Field(default_factory=dict)

    @field_validator("reference_fits")
    @classmethod
    def _names_short(cls, value: dict[str, ReferenceFit]) -> dict[str, ReferenceFit]:
        for name in value:
            if not 0 < len(name) <= 128:
                raise ValueError("reference fit names must be 1 to 128 characters")
        return value

    @cached_property
    def pulse_arrays(self) -> dict[str, np.ndarray]:
        """Columns of the pulse table as numpy arrays (x, y, z, time, charge, string, om)."""
        cols: dict[str, np.ndarray] = {
            key: np.fromiter((getattr(p, key) for p in self.pulses), float, len(self.pulses))
            for key in ("x", "y", "z", "time", "charge")
        }
        for key in ("string", "om"):
            cols[key] = np.fromiter(
                (-1 if getattr(p, key) is None else getattr(p, key) for p in self.pulses),
                int,
                len(self.pulses),
            )
        return cols

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    @property
    def label(self) -> str:
        return f"run{self.run_id:08d}.evt{self.event_id:012d}"


class EventFormatError(ValueError):
    """An event failed validation; the message names each offending field."""


def format_validation_error(err: ValidationError, limit: int = 10) -> str:
    parts = []
    for item in err.errors()[:limit]:
        loc = ".".join(str(p) for p in item["loc"]) or "(root)"
        parts.append(f"{loc}: {item['msg']}")
    more = len(err.errors()) - limit
    if more > 0:
        parts.append(f"... and {more} more")
    return "; ".join(parts)


def parse_event(data: Any) -> Event:
    """Validate a decoded JSON value as an open-format event, raising EventFormatError."""
    if not isinstance(data, dict):
        raise EventFormatError("event must be a JSON object")
    if data.get("schema") != EVENT_SCHEMA:
        raise EventFormatError(f"schema: expected {EVENT_SCHEMA!r}, got {data.get('schema')!r}")
    try:
        return Event.model_validate(data)
    except ValidationError as err:
        raise EventFormatError(format_validation_error(err)) from None


def load_event(path: str | Path) -> Event:
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise EventFormatError(f"{path}: not valid JSON ({err})") from None
    return parse_event(data)


def save_event(event: Event, path: str | Path) -> None:
    Path(path).write_text(json.dumps(event.to_json_dict(), indent=1) + "\n")


def event_json_schema() -> dict[str, Any]:
    schema = Event.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://skydriver.example/schemas/event-1.json"
    schema["title"] = "SkyDriver open event format, version 1"
    return schema
