"""The registry of refinement strategies: a name in a scan request -> a strategy class.

A new strategy is one module with a class that has ``name`` and ``from_spec(nsides, max_nside,
**options)``, plus one line here. Imports are eager, so a misspelt entry fails at import. A class
with ``follows_level_set = True`` takes a ``level`` option, which defaults to the level of the
region the scan's result must resolve (90%, from the scan's level set).
"""

from __future__ import annotations

from collections.abc import Mapping

from skyscan.entry_points import load_entry
from skyscan.refinement.state import Strategy
from skyscan.skymap.contours import flagged_containment, resolve_levels

# one line per strategy: "module:Class", imported when this module is
_ENTRIES: tuple[str, ...] = (
    "skyscan.refinement.progression:ProgressionStrategy",
    "skyscan.refinement.contour:ContourStrategy",
)


STRATEGIES: dict[str, type] = {cls.name: cls for cls in map(load_entry, _ENTRIES)}


def make_strategy(
    name: str,
    nsides: str,
    max_nside: int = 1 << 29,
    level_set: str | Mapping[float, float] | None = None,
    **options: object,
) -> Strategy:
    """Build a refinement strategy by name; ValueError naming the known ones for a bad name."""
    try:
        cls = STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown refinement strategy {name!r}; known: {', '.join(STRATEGIES)}") from None
    if level_set is not None and getattr(cls, "follows_level_set", False) and "level" not in options:
        _, levels = resolve_levels(level_set)
        options["level"] = levels[flagged_containment(levels)]
    return cls.from_spec(nsides, max_nside, **options)  # type: ignore[attr-defined,no-any-return]
