"""The scan specification: what a scan asks for, parsed and checked in one place.

A frozen model of the reco and its options, the refinement strategy and its options, the nside
progression and the level set of the error regions. It builds the reco and the strategy, so the
API's validation, the scan server, the partial result and the local scan read a scan's
configuration the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from skyscan.physics.event import Event
from skyscan.physics.recos.base import Reco, RecoUnsuitable
from skyscan.physics.recos.calibration import scan_level_set
from skyscan.physics.recos.registry import get_reco
from skyscan.refinement.progression import DEFAULT_PROGRESSION
from skyscan.refinement.state import Strategy
from skyscan.refinement.strategies import make_strategy
from skyscan.skymap.contours import LevelSet, resolve_levels

DEFAULT_RECO = "pandel-mpe"
DEFAULT_STRATEGY = "progression"
UNBOUNDED_NSIDE = 1 << 29


class ScanSpecError(ValueError):
    """A scan specification that cannot run; ``field`` names what to fix (reco, nsides/strategy, ...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class TaskLimits:
    """The most tasks (pixels x reco variations) one refinement step and one whole scan may plan."""

    per_step: int
    per_scan: int


class ScanSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    reco: str = DEFAULT_RECO
    reco_options: dict[str, Any] = Field(default_factory=dict)
    strategy: str = DEFAULT_STRATEGY
    strategy_options: dict[str, Any] = Field(default_factory=dict)
    nsides: str = DEFAULT_PROGRESSION
    level_set: str | None = None  # None: the reco's calibrated levels (Wilks when it has none)

    # -- building ------------------------------------------------------------------------------------
    def build_reco(self) -> Reco:
        return get_reco(self.reco, dict(self.reco_options))

    def build_strategy(self, max_nside: int = UNBOUNDED_NSIDE, event: Event | None = None) -> Strategy:
        """The strategy; with the event, a contour strategy follows the levels the result will use."""
        levels = self.level_set_for(event) if event is not None else self.level_set
        options = self.strategy_options
        return make_strategy(self.strategy, self.nsides, max_nside, level_set=levels, **options)

    def level_set_for(self, event: Event) -> str | LevelSet:
        """The levels of this scan's error regions: the requested set, else the reco's default."""
        return scan_level_set(self.level_set, self.reco, dict(self.reco_options), event)

    def n_variations(self) -> int:
        return self.build_reco().n_variations()

    # -- checking ------------------------------------------------------------------------------------
    def checked(
        self,
        event: Event | None = None,
        max_nside: int = UNBOUNDED_NSIDE,
        limits: TaskLimits | None = None,
    ) -> ScanSpec:
        """Check every part up front (a bad request changes nothing) and return the spec in canonical
        form (the nsides as the strategy reads them back). Raises ScanSpecError."""
        try:
            reco = self.build_reco()
            if event is not None:
                reco.check_event(event)
        except (ValueError, OverflowError, RecoUnsuitable) as err:  # OverflowError: ints beyond 64 bits
            raise ScanSpecError("reco", str(err)) from None
        try:
            if self.level_set is not None:
                resolve_levels(self.level_set)
        except ValueError as err:
            raise ScanSpecError("level_set", str(err)) from None
        try:
            strategy = self.build_strategy(max_nside, event)
        except (ValueError, TypeError) as err:
            raise ScanSpecError("nsides/strategy", str(err)) from None
        if limits is not None:
            check_task_counts(strategy, reco.n_variations(), limits)
        return self.model_copy(update={"nsides": strategy.nsides_spec()})

    # -- stored form ---------------------------------------------------------------------------------
    def to_doc(self) -> dict[str, Any]:
        """The fields as they are stored on the scan document (with the reco's variation count)."""
        return {**self.model_dump(), "n_variations": self.n_variations()}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> ScanSpec:
        return cls(
            reco=doc["reco"],
            reco_options=doc.get("reco_options") or {},
            strategy=doc.get("strategy", DEFAULT_STRATEGY),
            strategy_options=doc.get("strategy_options") or {},
            nsides=doc["nsides"],
            level_set=doc.get("level_set"),
        )


def check_task_counts(strategy: Strategy, n_variations: int, limits: TaskLimits) -> None:
    """Refuse a scan whose strategy expects more tasks than the limits allow (ScanSpecError)."""
    total = 0
    for nside, pixels in strategy.estimated_pixels():
        tasks = pixels * n_variations
        total += tasks
        if tasks > limits.per_step:
            raise ScanSpecError(
                "nsides",
                f"the step at nside {nside} would fit about {tasks:,} tasks ({pixels:,} pixels x "
                f"{n_variations} variations), more than the limit of {limits.per_step:,} tasks per step",
            )
    if total > limits.per_scan:
        raise ScanSpecError(
            "nsides",
            f"the scan would fit about {total:,} tasks, more than the limit of {limits.per_scan:,} "
            "tasks per scan",
        )


def parse_options(items: Iterable[str], what: str = "reco option") -> dict[str, Any]:
    """``k=v`` strings (CLI options) to a dict: ints, floats, booleans and strings as written."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} {item!r} is not key=value")
        value: Any = raw
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        else:
            for cast in (int, float):
                try:
                    value = cast(raw)
                    break
                except ValueError:
                    continue
        options[key.strip().replace("-", "_")] = value
    return options
