"""The reco registry: stable names in scan requests -> reco classes.

A new reco is one module with a class that follows :class:`skyscan.physics.recos.base.Reco`, plus
one line in ``_ENTRIES``. Imports are eager, so a misspelt entry fails at import, and a test checks
that every reco class under this package is registered (none can be dropped silently).
"""

from __future__ import annotations

import importlib
from typing import Any

from skyscan.physics.recos.base import Reco

# one line per reco: "module:Class", imported when this module is (a misspelt entry fails at import)
_ENTRIES: tuple[str, ...] = (
    "skyscan.physics.recos.dummy:DummyReco",
    "skyscan.physics.recos.crash_dummy:CrashDummyReco",
    "skyscan.physics.recos.pandel:PandelSPE",
    "skyscan.physics.recos.pandel:PandelMPE",
    "skyscan.physics.recos.pandel_layered:PandelLayeredSPE",
    "skyscan.physics.recos.table_mpe:TableMPE",
    "skyscan.physics.recos.table_spe:TableSPE",
)


def _load(entry: str) -> type:
    module, _, name = entry.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def _by_name(classes: tuple[type, ...]) -> dict[str, type]:
    table: dict[str, type] = {}
    for cls in classes:
        name = cls.name  # type: ignore[attr-defined]
        if name in table:
            raise RuntimeError(f"two recos are named {name!r}: {table[name].__name__} and {cls.__name__}")
        table[name] = cls
    return table


RECOS: dict[str, type] = _by_name(tuple(_load(entry) for entry in _ENTRIES))


class UnknownReco(ValueError):
    pass


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
