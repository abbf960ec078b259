"""Registries of recos, refinement strategies and export formats: complete, and a bad name is an error."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import skyscan.physics.recos as recos_pkg
import skyscan.refinement as refinement_pkg
from skyscan.entry_points import load_entry
from skyscan.physics.recos.registry import _ENTRIES, RECOS, UnknownReco, get_reco
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
    for name, cls in RECOS.items():  # each entry names its class's own name and test_only flag
        assert (cls.name, cls.test_only) == (name, _ENTRIES[name].test_only)
    assert len({e.target for e in _ENTRIES.values()}) == len(_ENTRIES)  # no class under two names


def test_the_registry_imports_no_reco_until_one_is_asked_for() -> None:
    """Every process reads the registry at start (settings check the enabled recos); a reco's module
    (the table recos pull in scipy's interpolation and the photon tables) waits until it is asked for."""
    modules = sorted({e.target.partition(":")[0] for e in _ENTRIES.values()})
    code = (
        "import sys, json; import skyinfra.settings, worker.__main__; "
        "from skyscan.physics.recos import registry; "
        f"mods = {modules!r} + ['scipy.interpolate', 'astropy']; "
        "print(json.dumps([m for m in mods if m in sys.modules])); "
        "registry.get_reco('table-spe'); print(json.dumps([m for m in mods if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    at_start, after = (json.loads(line) for line in out.splitlines())
    assert at_start == []
    assert {"skyscan.physics.recos.table_spe", "scipy.interpolate"} <= set(after)


@pytest.mark.parametrize(
    "target, message",
    [
        ("skyscan.wire", "is not 'module:attribute'"),
        ("skyscan.wire:", "is not 'module:attribute'"),
        (":Direction", "is not 'module:attribute'"),
        ("skyscan.wire:Directoin", "skyscan.wire has no 'Directoin'"),
    ],
)
def test_a_malformed_registry_entry_names_itself(target: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        load_entry(target)
    assert repr(target) in str(caught.value)


def test_a_registry_entry_loads_the_attribute_it_names() -> None:
    from skyscan.wire import Direction

    assert load_entry("skyscan.wire:Direction") is Direction
    with pytest.raises(ModuleNotFoundError, match="skyscan.wirre"):
        load_entry("skyscan.wirre:Direction")


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
