"""The registry of refinement strategies: a name in a scan request -> a strategy class.

A new strategy is one module with a class that has ``name`` and ``from_spec(nsides, max_nside,
**options)``, plus one line here. Imports are eager, so a misspelt entry fails at import.
"""

from __future__ import annotations

from skyscan.refinement.contour import ContourStrategy
from skyscan.refinement.progression import ProgressionStrategy
from skyscan.refinement.state import Strategy

STRATEGIES: dict[str, type] = {cls.name: cls for cls in (ProgressionStrategy, ContourStrategy)}


def make_strategy(name: str, nsides: str, max_nside: int = 1 << 29, **options: object) -> Strategy:
    """Build a refinement strategy by name; ValueError naming the known ones for a bad name."""
    try:
        cls = STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown refinement strategy {name!r}; known: {', '.join(STRATEGIES)}") from None
    return cls.from_spec(nsides, max_nside, **options)  # type: ignore[attr-defined,no-any-return]
