"""The reco registry: stable names in scan requests -> reco classes.

A new reco is one module with a class that follows :class:`skyscan.physics.recos.base.Reco`, plus
one line in ``_ENTRIES``. A reco's module is imported when the reco is first asked for, not when
this module is: the table recos pull in scipy's interpolation and the photon tables, about a
second of CPU that every API, server and worker process would otherwise pay at start whatever reco
it runs. A test imports every entry and checks its name and ``test_only`` flag against the class
(a misspelt or stale line fails there), and that every reco class under this package is registered
(none can be dropped silently).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any, NamedTuple

from skyscan.entry_points import load_entry

if TYPE_CHECKING:  # the protocol's module imports the event model (numpy): not needed at run time
    from skyscan.physics.recos.base import Reco


class RecoEntry(NamedTuple):
    target: str  # "module:Class"
    test_only: bool  # the class's own flag, repeated so that enabling recos imports none of them


# one line per reco, by the name scan requests use
_ENTRIES: dict[str, RecoEntry] = {
    "dummy": RecoEntry("skyscan.physics.recos.dummy:DummyReco", test_only=True),
    "crash-dummy": RecoEntry("skyscan.physics.recos.crash_dummy:CrashDummyReco", test_only=True),
    "pandel-spe": RecoEntry("skyscan.physics.recos.pandel:PandelSPE", test_only=False),
    "pandel-mpe": RecoEntry("skyscan.physics.recos.pandel:PandelMPE", test_only=False),
    "pandel-layered": RecoEntry("skyscan.physics.recos.pandel_layered:PandelLayeredSPE", test_only=False),
    "table-mpe": RecoEntry("skyscan.physics.recos.table_mpe:TableMPE", test_only=False),
    "table-spe": RecoEntry("skyscan.physics.recos.table_spe:TableSPE", test_only=False),
}


_load = cache(load_entry)


class _Recos(Mapping[str, type]):
    """Name -> reco class; names and membership need no import, a class is imported when read."""

    def __getitem__(self, name: str) -> type:
        return _load(_ENTRIES[name].target)

    def __iter__(self) -> Iterator[str]:
        return iter(_ENTRIES)

    def __len__(self) -> int:
        return len(_ENTRIES)

    def __contains__(self, name: object) -> bool:
        return name in _ENTRIES


RECOS: Mapping[str, type] = _Recos()
TEST_RECOS: frozenset[str] = frozenset(n for n, e in _ENTRIES.items() if e.test_only)


class UnknownReco(ValueError):
    pass


class RecoUnavailable(RuntimeError):
    """A registered reco whose module cannot be imported (a missing dependency, a broken install)."""


def load_recos(names: Iterable[str]) -> None:
    """Import the recos a long-lived process serves (the API), so that one that cannot be imported
    stops it at start with the reason, as a misspelt name does, not a request later."""
    for name in sorted(names):
        try:
            RECOS[name]
        except Exception as err:  # any import-time failure: say which reco and why
            raise RecoUnavailable(f"reco {name!r} cannot be loaded: {type(err).__name__}: {err}") from None


def get_reco(name: str, options: dict[str, Any] | None = None) -> Reco:
    """Instantiate a reco by name; options that the reco does not take raise ValueError."""
    if name not in RECOS:
        raise UnknownReco(f"unknown reco {name!r}; known: {', '.join(sorted(RECOS))}")
    cls = RECOS[name]
    try:
        return cls(**(options or {}))  # type: ignore[no-any-return]
    except TypeError as err:
        raise ValueError(f"bad options for reco {name!r}: {err}") from None
