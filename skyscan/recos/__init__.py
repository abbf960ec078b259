"""Reco registry: stable names -> reco classes. Options come from the scan request."""

from __future__ import annotations

from typing import Any

from skyscan.recos.base import FitResult, Reco, RecoUnsuitable
from skyscan.recos.dummy import DummyReco

RECOS: dict[str, type] = {DummyReco.name: DummyReco}


def register(cls: type) -> type:
    RECOS[cls.name] = cls
    return cls


def _load_optional() -> None:
    # Physics recos live in their own modules; import them here so the registry is complete.
    import importlib

    for module in ("skyscan.recos.pandel", "skyscan.recos.crash_dummy"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise


_load_optional()


class UnknownReco(ValueError):
    pass


def get_reco(name: str, options: dict[str, Any] | None = None) -> Reco:
    """Instantiate a reco by name; options that the reco does not take raise ValueError."""
    try:
        cls = RECOS[name]
    except KeyError:
        raise UnknownReco(f"unknown reco {name!r}; known: {', '.join(sorted(RECOS))}") from None
    try:
        return cls(**(options or {}))
    except TypeError as err:
        raise ValueError(f"bad options for reco {name!r}: {err}") from None


__all__ = ["RECOS", "FitResult", "Reco", "RecoUnsuitable", "UnknownReco", "get_reco", "register"]
