"""The reco interface: prepare once per event, then fit one pixel variation at a time."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from skyscan.physics.event import Event
from skyscan.wire import Direction, Vertex


@dataclass(frozen=True)
class FitResult:
    """Outcome of one fit. ``llh`` is -lnL (NaN when the fit failed)."""

    llh: float
    params: dict[str, float] = field(default_factory=dict)  # X, Y, Z, T, E_tot, E_in ...
    status: str = "ok"  # "ok" or "failed"
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.status != "ok" or not math.isfinite(self.llh)


class RecoUnsuitable(ValueError):
    """The event cannot be reconstructed with this reco (e.g. dummy without a stated direction)."""


class Reco(Protocol):
    name: ClassVar[str]
    description: ClassVar[str]
    # True for stand-ins (dummy, crash-dummy) that a production service must not run
    test_only: ClassVar[bool]

    def n_variations(self) -> int:
        """Number of vertex-seed variations fitted per pixel (tasks per pixel)."""
        ...

    def check_event(self, event: Event) -> None:
        """Raise RecoUnsuitable if this reco cannot use the event (validated at the REST edge)."""
        ...

    def prepare(self, event: Event) -> Any:
        """Per-event precomputation, done once per worker; the result is passed to ``fit``."""
        ...

    def fit(self, prepared: Any, direction: Direction, variation: int, seed: Vertex | None) -> FitResult:
        """Fit with the direction held fixed. Never raises for a bad fit: returns status failed."""
        ...
