"""skyreader JSON and NPZ: loaded by ``icecube-skyreader`` itself, best fit and contour areas compared."""

from __future__ import annotations

import copy
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("skyreader")
import meander  # noqa: E402
from skyreader import SkyScanResult  # noqa: E402
from skyreader.utils.areas import get_contour_areas  # noqa: E402
from skyreader.utils.handle_map_data import extract_map, get_contour_levels  # noqa: E402

from skyscan.refinement.fits import PixelBest  # noqa: E402
from skyscan.refinement.strategies import make_strategy
from skyscan.skymap.exports import write_product  # noqa: E402
from skyscan.skymap.exports.skyreader import COLUMNS, NAN_SENTINEL, to_dict  # noqa: E402
from tests.support.skymaps import drive, gaussian_llh, make_doc, make_event  # noqa: E402

logging.getLogger("skyreader").setLevel(logging.ERROR)


@pytest.fixture(scope="module")
def scan() -> dict[str, Any]:
    f = gaussian_llh(math.radians(250.0), math.radians(35.0), 0.9, 0.6, angle_deg=20.0)
    strategy = make_strategy("contour", "8,16,32,64,128,256,512")
    ref = drive(strategy, f)
    complete = dict(ref.complete)
    # one failed pixel far away: left out of the skyreader files
    complete[(16, 0)] = PixelBest(16, 0, math.nan, 0, {}, True, "timeout")
    event = make_event()
    return {"doc": make_doc(complete, event, strategy.nsides), "event": event}


def skyreader_areas(result: SkyScanResult) -> list[float]:
    """skyreader's own contour areas (the create_plot_zoomed pipeline, without drawing)."""
    grid_value, grid_ra, grid_dec, equatorial_map, _ = extract_map(result, True, None)
    levels, _, _ = get_contour_levels(equatorial_map, True, False)
    values = copy.copy(grid_value)
    values[np.isnan(values)] = np.nanmax(equatorial_map)
    points = np.array([np.pi / 2 - grid_dec, grid_ra]).T
    contours = meander.spherical_contours(points, values, levels)
    return [float(a) for a in get_contour_areas(contours, grid_ra[0])]


@pytest.mark.parametrize("fmt", ["skyreader-json", "npz"])
def test_skyreader_loads_our_file_and_agrees(scan: dict[str, Any], fmt: str, tmp_path: Path) -> None:
    doc, event = scan["doc"], scan["event"]
    path = write_product(doc, event, fmt, tmp_path)
    result = SkyScanResult.read_json(path) if fmt == "skyreader-json" else SkyScanResult.read_npz(path)
    assert result.nsides == [8, 16, 32, 64, 128, 256, 512]
    meta = result.get_event_metadata()
    assert (meta.run_id, meta.event_id, meta.event_type, meta.mjd, meta.is_real_event, meta.version) == (
        123456,
        42,
        "neutrino",
        60000.5,
        False,
        1,
    )
    for nside in result.nsides:
        arr = result.get_results_per_nside(nside)
        assert arr.dtype.names == COLUMNS
        assert arr.dtype.metadata["nside"] == nside and bool(arr.dtype.metadata["complete"]) is True
        assert np.all(np.isfinite(arr["llh"]))
    n_ok = sum(1 for p in doc["pixels"] if p["status"] == "ok")
    assert sum(len(result.get_results_per_nside(n)) for n in result.nsides) == n_ok == doc["n_pixels"] - 1
    # best fit: the same pixel and direction
    best = doc["best_fit"]
    assert (
        result.best_fit["index"] == best["pixel"] and result.best_fit.dtype.metadata["nside"] == best["nside"]
    )
    ra, dec = result.best_dir
    assert math.degrees(ra) == pytest.approx(best["ra_deg"], abs=1e-9)
    assert math.degrees(dec) == pytest.approx(best["dec_deg"], abs=1e-9)
    assert result.best_fit["llh"] == best["llh"]
    # skyreader's 50% and 90% contour areas against ours
    theirs = skyreader_areas(result)
    ours = [doc["regions"]["levels"][k]["area_deg2"] for k in ("50", "90")]
    for t, o in zip(theirs[:2], ours, strict=True):
        assert t == pytest.approx(o, rel=0.05)


def test_json_and_npz_hold_the_same_pixels(scan: dict[str, Any], tmp_path: Path) -> None:
    a = SkyScanResult.read_json(write_product(scan["doc"], scan["event"], "skyreader-json", tmp_path))
    b = SkyScanResult.read_npz(write_product(scan["doc"], scan["event"], "npz", tmp_path))
    assert a.nsides == b.nsides
    for n in a.nsides:
        x, y = a.get_results_per_nside(n), b.get_results_per_nside(n)
        assert len(x) == len(y)
    assert a.is_close(b)


def test_json_shape_and_nan_sentinel(scan: dict[str, Any]) -> None:
    data = to_dict(scan["doc"], scan["event"])
    text = json.dumps(data, allow_nan=False)  # strict JSON
    entry = data["nside-8"]
    assert set(entry) == {"columns", "metadata", "data"}
    assert entry["columns"] == ["index", "llh", "E_in", "E_tot", "X", "Y", "Z", "T"]
    assert set(entry["metadata"]) == {
        "run_id",
        "event_id",
        "mjd",
        "event_type",
        "nside",
        "version",
        "is_real_event",
        "complete",
    }
    assert entry["data"][0][2] == NAN_SENTINEL  # E_in is NaN in the synthetic fits
    assert [row[0] for row in entry["data"]] == list(range(768))
    assert NAN_SENTINEL in text


def test_metadata_from_the_document_alone(scan: dict[str, Any]) -> None:
    with_event = to_dict(scan["doc"], scan["event"])
    without = to_dict(scan["doc"], None)
    assert with_event == without


def test_real_event_loads_with_a_real_run_id(tmp_path: Path) -> None:
    from tests.support.skymaps import full_map

    complete = full_map(4, gaussian_llh(1.0, 0.2, 10.0))
    event = make_event(truth=None, is_real=True, run_id=138632)
    doc = make_doc(complete, event, [4])
    result = SkyScanResult.read_npz(write_product(doc, event, "npz", tmp_path))
    assert result.get_event_metadata().is_real_event
    assert result.get_event_metadata().run_id == 138632
