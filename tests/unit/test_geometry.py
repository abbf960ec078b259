"""Detector geometry: the DOM table reader and the IceCube-like array built in code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skyscan.physics.geometry import (
    GeometryError,
    find_default_geometry,
    hexagon_grid,
    icecube_like_geometry,
    load_geometry_csv,
)

IC86 = find_default_geometry()
needs_ic86 = pytest.mark.skipif(
    IC86 is None, reason="shared data (../shared/data/icecube/ic86_geometry.csv) absent"
)


def test_hexagon_grid_counts_and_spacing() -> None:
    for rings in (1, 2, 5):
        grid = hexagon_grid(125.0, rings)
        assert len(grid) == 1 + 3 * rings * (rings + 1)
    grid = hexagon_grid(125.0, 3)
    d = np.hypot(*(grid[:, None, :] - grid[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(d, np.inf)
    assert np.allclose(d.min(axis=1), 125.0)


def test_icecube_like_geometry_layout() -> None:
    geo = icecube_like_geometry()
    assert len(geo) == 80 * 60
    assert len(np.unique(geo.string)) == 80
    assert geo.om.min() == 1 and geo.om.max() == 60
    one_string = geo.z[geo.string == 1]
    assert np.allclose(-np.diff(one_string), 17.0)
    xy = np.unique(np.stack([geo.x, geo.y], axis=1), axis=0)
    d = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(d, np.inf)
    assert np.allclose(d.min(axis=1), 125.0)
    assert geo.noise_rate_hz.min() >= 500.0 and geo.noise_rate_hz.max() <= 800.0
    assert geo.live.all()
    # Centred: the array's centre of gravity is near the origin.
    assert np.linalg.norm(geo.positions.mean(axis=0)) < 60.0


def test_icecube_like_geometry_is_deterministic_and_sized() -> None:
    a, b = icecube_like_geometry(seed=3), icecube_like_geometry(seed=3)
    assert np.array_equal(a.noise_rate_hz, b.noise_rate_hz)
    assert len(np.unique(icecube_like_geometry(n_strings=86).string)) == 86
    with pytest.raises(ValueError):
        icecube_like_geometry(n_strings=0)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 80), st.integers(1, 60))
def test_lookup_by_string_and_om(string: int, om: int) -> None:
    geo = _GEO
    i = geo.index_of(string, om)
    assert geo.string[i] == string and geo.om[i] == om
    assert geo.position(string, om) == (geo.x[i], geo.y[i], geo.z[i])


_GEO = icecube_like_geometry()


def test_lookup_many_and_unknown() -> None:
    rows = _GEO.lookup(np.array([1, 2, 99]), np.array([1, 60, 1]))
    assert rows[0] == _GEO.index_of(1, 1) and rows[1] == _GEO.index_of(2, 60) and rows[2] == -1
    with pytest.raises(KeyError):
        _GEO.index_of(99, 1)


@needs_ic86
def test_ic86_table() -> None:
    assert IC86 is not None
    geo = load_geometry_csv(IC86)
    assert len(geo) == 86 * 60
    assert int((geo.efficiency == 0).sum()) == 77
    assert geo.position(1, 1) == pytest.approx((-256.14, -521.08, 496.03))
    assert 400.0 < float(np.median(geo.noise_rate_hz[geo.live])) < 800.0
    # 78 IceCube strings on a 125 m grid: nearest-neighbour string spacing near 125 m.
    top = (geo.om == 1) & (geo.string <= 78)
    xy = np.stack([geo.x[top], geo.y[top]], axis=1)
    d = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    np.fill_diagonal(d, np.inf)
    assert 100.0 < float(np.median(d.min(axis=1))) < 135.0


def test_bad_tables_name_the_problem(tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    missing.write_text("string,om,x_m\n1,1,0\n")
    with pytest.raises(GeometryError, match="missing columns"):
        load_geometry_csv(missing)
    bad = tmp_path / "bad.csv"
    bad.write_text("string,om,x_m,y_m,z_m,noise_rate_hz,relative_efficiency\n1,1,0,0,zero,500,1\n")
    with pytest.raises(GeometryError, match=":2:"):
        load_geometry_csv(bad)
    dup = tmp_path / "dup.csv"
    dup.write_text(
        "string,om,x_m,y_m,z_m,noise_rate_hz,relative_efficiency\n1,1,0,0,0,500,1\n1,1,0,0,1,500,1\n"
    )
    with pytest.raises(GeometryError, match="duplicate"):
        load_geometry_csv(dup)
