"""The reco registry: stable names in scan requests -> reco classes.

A new reco is one module with a class that follows :class:`skyscan.physics.recos.base.Reco`, plus
one line in ``_CLASSES``. Imports are eager, so a misspelt entry fails at import, and a test checks
that every reco class under this package is registered (none can be dropped silently).

Registered is not runnable: a service runs only the recos its operator enabled
(:func:`enabled_recos`). Recos marked ``test_only`` (``dummy``, ``crash-dummy``: one of them kills
its worker on purpose) are never enabled unless asked for by name or with ``test_recos``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from skyscan.physics.recos.base import Reco
from skyscan.physics.recos.crash_dummy import CrashDummyReco
from skyscan.physics.recos.dummy import DummyReco
from skyscan.physics.recos.pandel import PandelMPE, PandelSPE

_CLASSES: tuple[type, ...] = (DummyReco, CrashDummyReco, PandelSPE, PandelMPE)


def _by_name(classes: tuple[type, ...]) -> dict[str, type]:
    table: dict[str, type] = {}
    for cls in classes:
        name = cls.name  # type: ignore[attr-defined]
        if name in table:
            raise RuntimeError(f"two recos are named {name!r}: {table[name].__name__} and {cls.__name__}")
        table[name] = cls
    return table


RECOS: dict[str, type] = _by_name(_CLASSES)
TEST_RECOS: frozenset[str] = frozenset(n for n, cls in RECOS.items() if cls.test_only)  # type: ignore[attr-defined]


class UnknownReco(ValueError):
    pass


def enabled_recos(names: Iterable[str] = (), test_recos: bool = False) -> frozenset[str]:
    """The recos a service runs: ``names`` (empty: every reco that is not test-only), plus the
    test-only ones when ``test_recos``. An unknown name raises UnknownReco."""
    chosen = set(names)
    unknown = sorted(chosen - set(RECOS))
    if unknown:
        raise UnknownReco(f"unknown recos {unknown}; known: {', '.join(sorted(RECOS))}")
    if not chosen:
        chosen = set(RECOS) - TEST_RECOS
    return frozenset(chosen | (TEST_RECOS if test_recos else set()))


def get_reco(name: str, options: dict[str, Any] | None = None) -> Reco:
    """Instantiate a reco by name; options that the reco does not take raise ValueError."""
    try:
        cls = RECOS[name]
    except KeyError:
        raise UnknownReco(f"unknown reco {name!r}; known: {', '.join(sorted(RECOS))}") from None
    try:
        return cls(**(options or {}))  # type: ignore[no-any-return]
    except TypeError as err:
        raise ValueError(f"bad options for reco {name!r}: {err}") from None
