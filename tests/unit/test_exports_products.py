"""The export contract and the GeoJSON, GCN and PNG products."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from skyscan.refinement.fits import PixelBest
from skyscan.refinement.strategies import make_strategy
from skyscan.sky.coordinates import angular_distance, detector_to_equatorial
from skyscan.skymap.exports import FORMATS, UnknownFormat, render, write_product
from tests.support.skymaps import drive, full_map, gaussian_llh, make_doc, make_event

MEDIA = {
    "json": "application/json",
    "skyreader-json": "application/json",
    "npz": "application/octet-stream",
    "fits": "application/fits",
    "geojson": "application/geo+json",
    "png": "image/png",
    "pdf": "application/pdf",
    "gcn": "application/json",
    "probability-fits": "application/gzip",
}


@pytest.fixture(scope="module")
def scan() -> dict[str, Any]:
    event = make_event(truth=(1.2, 4.0))
    t_ra, t_dec = detector_to_equatorial(1.2, 4.0, event.mjd)
    # the likelihood peaks 0.8 deg from the truth, as a real reco would
    ra0, dec0 = float(t_ra) + math.radians(0.8) / math.cos(float(t_dec)), float(t_dec)
    f = gaussian_llh(ra0, dec0, 0.7, 0.5, angle_deg=-35.0)
    strategy = make_strategy("contour", "8,16,32,64,128,256")
    ref = drive(strategy, f)
    doc = make_doc(ref.complete, event, strategy.nsides)
    return {"doc": doc, "event": event, "truth": (float(t_ra), float(t_dec)), "centre": (ra0, dec0)}


def test_formats_contract(scan: dict[str, Any], tmp_path: Path) -> None:
    assert set(FORMATS) == set(MEDIA)
    for fmt in FORMATS:
        rendered = render(scan["doc"], scan["event"], fmt)
        assert rendered.media_type == MEDIA[fmt]
        assert rendered.filename.startswith("run00123456.evt000000000042.scan0001")
        assert len(rendered.content) > 100
        path = write_product(scan["doc"], None, fmt, tmp_path / "out")
        assert path.name == rendered.filename and path.stat().st_size > 100
    assert json.loads(render(scan["doc"], None, "json").content) == scan["doc"]
    with pytest.raises(UnknownFormat, match="known: json"):
        render(scan["doc"], None, "bmp")


def test_products_need_a_finite_fit() -> None:
    complete = {(1, p): PixelBest(1, p, math.nan, 0, {}, True, "x") for p in range(12)}
    doc = make_doc(complete, make_event(), [1])
    for fmt in ("fits", "png", "gcn", "probability-fits"):
        with pytest.raises(ValueError, match="no finite fit"):
            render(doc, None, fmt)
    assert json.loads(render(doc, None, "geojson").content)["features"] == []
    assert json.loads(render(doc, None, "skyreader-json").content) == {}


def test_geojson_regions(scan: dict[str, Any]) -> None:
    data = json.loads(render(scan["doc"], scan["event"], "geojson").content)
    assert data["type"] == "FeatureCollection"
    levels = [f["properties"]["credible_level"] for f in data["features"]]
    assert levels == [50, 90]
    ra0, dec0 = scan["centre"]
    for feature, key in zip(data["features"], ("50", "90"), strict=True):
        assert feature["geometry"]["type"] == "Polygon"
        props = feature["properties"]
        assert props["area_deg2"] == scan["doc"]["regions"]["levels"][key]["area_deg2"]
        assert props["contour_area_deg2"] == pytest.approx(props["area_deg2"], rel=0.05)
        rings = feature["geometry"]["coordinates"]
        assert len(rings) == 1  # an ellipse: an exterior, no holes
        pts = np.radians(np.array(rings[0]))
        assert np.all(np.abs(pts[:, 0]) <= math.pi) and np.all(np.abs(pts[:, 1]) <= math.pi / 2)
        dist = np.degrees(angular_distance(ra0, dec0, *pts.T))
        # the ellipse's semi-axes are 0.7 and 0.5 deg times sqrt(level)
        level = feature["properties"]["level_2dllh"]
        assert 0.5 * math.sqrt(level) - 0.05 < dist.min() and dist.max() < 0.7 * math.sqrt(level) + 0.05


def test_gcn_summary(scan: dict[str, Any]) -> None:
    data = json.loads(render(scan["doc"], scan["event"], "gcn").content)
    best = scan["doc"]["best_fit"]
    r90 = scan["doc"]["regions"]["levels"]["90"]
    ours = data["additional_info"]
    assert data["ra"] == pytest.approx(best["ra_deg"], abs=1e-4) and data["dec"] == pytest.approx(
        best["dec_deg"], abs=1e-4
    )
    assert data["containment_probability"] == 0.9 and data["systematic_included"] is False
    assert ours["area_90_deg2"] == pytest.approx(r90["area_deg2"], abs=1e-4)
    assert ours["area_50_deg2"] == pytest.approx(
        scan["doc"]["regions"]["levels"]["50"]["area_deg2"], abs=1e-4
    )
    assert ours["ra_error_90"] == {
        "plus": pytest.approx(r90["ra_err_plus_deg"], abs=1e-4),
        "minus": pytest.approx(r90["ra_err_minus_deg"], abs=1e-4),
    }
    assert ours["dec_error_90"]["plus"] == pytest.approx(r90["dec_err_plus_deg"], abs=1e-4)
    # the circle holds the whole 90% region: at least the semi-major axis, at most a bit more
    assert 0.7 * math.sqrt(4.61) - 0.05 < data["ra_dec_error"] < 0.7 * math.sqrt(4.61) + 0.4
    assert (ours["run_id"], ours["event_id"], data["id"]) == (123456, 42, ["123456_42"])
    assert data["trigger_time"] == "2023-02-25T12:00:00.000Z"
    assert data["alert_tense"] == "test" and data["messenger"] == "Neutrino"


def test_png_has_size_and_content(scan: dict[str, Any], tmp_path: Path) -> None:
    import matplotlib.image as mpimg

    path = write_product(scan["doc"], scan["event"], "png", tmp_path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(path)
    assert img.shape[0] >= 500 and img.shape[1] >= 1200 and img.shape[2] in (3, 4)
    rgb = (img[..., :3] * 255).astype(np.uint8).reshape(-1, 3)
    colours = np.unique(rgb, axis=0)
    assert len(colours) > 200  # colour maps, contours, text: not a blank canvas
    assert float(img[..., :3].std()) > 0.1
    red = np.sum((rgb[:, 0] > 200) & (rgb[:, 1] < 60) & (rgb[:, 2] < 60))
    assert red > 200  # the 90% contour is drawn in red
    cyan = np.sum((rgb[:, 0] < 60) & (rgb[:, 1] > 200) & (rgb[:, 2] > 200))
    assert cyan > 20  # the truth marker (simulated event)


def test_png_without_truth_and_for_a_partial_result(tmp_path: Path) -> None:
    import matplotlib.image as mpimg

    complete = full_map(16, gaussian_llh(3.0, -1.2, 4.0))
    event = make_event(truth=None)
    doc = make_doc(complete, event, [16, 128])
    doc["complete"] = False
    img = mpimg.imread(io.BytesIO(render(doc, event, "png").content))
    rgb = (img[..., :3] * 255).astype(np.uint8).reshape(-1, 3)
    assert np.sum((rgb[:, 0] < 60) & (rgb[:, 1] > 200) & (rgb[:, 2] > 200)) == 0  # no truth marker
    assert len(np.unique(rgb, axis=0)) > 200
