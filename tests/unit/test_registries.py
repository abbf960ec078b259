"""Registries of recos, refinement strategies and export formats: complete, and a bad name is an error."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import skyscan.physics.recos as recos_pkg
import skyscan.refinement as refinement_pkg
from skyscan.physics.recos.registry import RECOS, UnknownReco, _by_name, get_reco
from skyscan.refinement.strategies import STRATEGIES, make_strategy
from skyscan.skymap import exports


def _classes_defined_in(package, has: str) -> list[type]:  # type: ignore[no-untyped-def]
    found = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if (
                cls.__module__ == module.__name__
                and hasattr(cls, has)
                and isinstance(getattr(cls, "name", None), str)
            ):
                found.append(cls)
    return found


def test_every_reco_class_is_registered() -> None:
    recos = [c for c in _classes_defined_in(recos_pkg, "fit") if hasattr(c, "prepare")]
    concrete = {c.name for c in recos if c.name in RECOS or not inspect.isabstract(c)}
    # pandel's base class ('pandel') is the shared implementation of the two registered variants
    assert concrete - {"pandel"} <= set(RECOS)
    assert {"dummy", "crash-dummy", "pandel-spe", "pandel-mpe"} <= set(RECOS)
    for name, cls in RECOS.items():
        assert cls.name == name


def test_two_recos_with_one_name_are_refused() -> None:
    with pytest.raises(RuntimeError, match="two recos are named 'dummy'"):
        _by_name((RECOS["dummy"], RECOS["dummy"]))


def test_an_unknown_reco_names_the_known_ones() -> None:
    with pytest.raises(UnknownReco, match="unknown reco 'pandel-mpee'; known: .*pandel-mpe"):
        get_reco("pandel-mpee")


def test_every_strategy_class_is_registered() -> None:
    strategies = {c.name for c in _classes_defined_in(refinement_pkg, "plan")}
    assert strategies == set(STRATEGIES) == {"progression", "contour"}
    with pytest.raises(
        ValueError, match="unknown refinement strategy 'contours'; known: progression, contour"
    ):
        make_strategy("contours", "8:0")


def test_every_export_module_is_in_the_format_table() -> None:
    folder = Path(exports.__file__).parent
    table = ast.unparse(ast.parse((folder / "__init__.py").read_text()))
    modules = {p.stem for p in folder.glob("*.py")} - {"__init__", "common"}
    assert modules, "no export modules found"
    for module in modules:
        assert f"'{module}'" in table or f'"{module}"' in table, f"exports/{module}.py is not in the table"
    with pytest.raises(exports.UnknownFormat, match="unknown format 'fitz'"):
        exports.render({}, None, "fitz")
