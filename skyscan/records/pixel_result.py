"""The pixel-result record: one fitted (or failed) task, stored once under its task id."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from skyscan.refinement.fits import VariationResult
from skyscan.wire import PixelResult


class PixelResultRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    task_id: str
    scan_id: str
    nside: int
    pixel: int
    variation: int
    llh: float | None
    status: Literal["ok", "failed"]
    fit: dict[str, float | None] = Field(default_factory=dict)
    error: str | None = None
    runtime_s: float | None = None
    worker: str | None = None
    stored_at: dt.datetime | None = None

    @classmethod
    def from_wire(
        cls, result: PixelResult, scan_id: str, worker: str, stored_at: dt.datetime
    ) -> PixelResultRecord:
        """A result off a result message (whose envelope names the scan and the worker); the
        message was validated when it was decoded, so its fields are not validated again."""
        return cls.model_construct(
            **{name: getattr(result, name) for name in _WIRE_FIELDS},
            scan_id=scan_id,
            worker=worker,
            stored_at=stored_at,
        )

    def to_doc(self) -> dict[str, Any]:
        return self.model_dump()

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> PixelResultRecord:
        return cls.model_validate({k: v for k, v in doc.items() if k != "_id"})

    def to_variation_result(self) -> VariationResult:
        """What the refinement needs: a failed fit (or one with no llh) never wins."""
        failed = self.status == "failed" or self.llh is None
        llh = math.nan if self.llh is None else float(self.llh)
        return VariationResult(
            self.nside, self.pixel, self.variation, llh, self.fit or {}, failed, self.error
        )


_WIRE_FIELDS = ("task_id", "nside", "pixel", "variation", "llh", "status", "fit", "error", "runtime_s")
