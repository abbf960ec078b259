"""GeoJSON regions per RFC 7946, checked with the ``geojson`` and ``shapely`` packages.

Polygons with counter-clockwise exteriors and clockwise holes, longitudes in [-180, 180], cut at
the antimeridian, closed along the pole; the polygons' area on the sphere against the region's.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from skyscan.refinement.strategies import make_strategy
from skyscan.skymap.exports import render
from tests.support.skymaps import LlhFunc, drive, gaussian_llh, make_doc, make_event, unit

geojson = pytest.importorskip("geojson", reason="the geojson package (test dependency) is not installed")
shapely = pytest.importorskip("shapely", reason="shapely (test dependency) is not installed")
from shapely.geometry import Point, shape  # noqa: E402

NSIDES = "8,16,32,64,128,256"


def annulus_llh(ra0: float, dec0: float, radius_deg: float, width_deg: float) -> LlhFunc:
    """-lnL smallest on a circle of ``radius_deg`` about (ra0, dec0): the regions are rings."""
    c0 = unit(np.array(ra0), np.array(dec0))

    def f(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        psi = np.degrees(np.arccos(np.clip(unit(np.asarray(ra), np.asarray(dec)) @ c0, -1, 1)))
        return 100.0 + 0.5 * ((psi - radius_deg) / width_deg) ** 2

    return f


@functools.cache
def scan_geojson(case: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The result document and its GeoJSON for a case (scanned once per test session)."""
    s = make_strategy("contour", NSIDES)
    doc = make_doc(drive(s, CASES[case]()).complete, make_event(), s.nsides)
    return doc, json.loads(render(doc, None, "geojson").content)


def sphere_area_deg2(geom: Any) -> float:
    """Area on the sphere: the polygons mapped to the equal-area (lon, sin lat) plane."""
    mapped = shapely.transform(
        geom, lambda xy: np.column_stack([np.radians(xy[:, 0]), np.sin(np.radians(xy[:, 1]))])
    )
    return float(mapped.area) * (180 / math.pi) ** 2


def polygons_of(geom: Any) -> list[Any]:
    return list(geom.geoms) if geom.geom_type == "MultiPolygon" else [geom]


def check_rfc7946(data: dict[str, Any], doc: dict[str, Any]) -> list[Any]:
    """Every rule this export promises; returns the shapely geometry of each feature."""
    obj = geojson.loads(json.dumps(data))
    assert obj.is_valid, obj.errors()
    assert data["type"] == "FeatureCollection"
    geoms = []
    for feature in data["features"]:
        g = feature["geometry"]
        assert g["type"] in ("Polygon", "MultiPolygon")
        polys = g["coordinates"] if g["type"] == "MultiPolygon" else [g["coordinates"]]
        for rings in polys:
            for ring in rings:
                arr = np.array(ring)
                assert arr.shape[0] >= 4 and arr[0].tolist() == arr[-1].tolist()
                assert np.all((arr[:, 0] >= -180) & (arr[:, 0] <= 180))
                assert np.all((arr[:, 1] >= -90) & (arr[:, 1] <= 90))
        geom = shape(g)
        assert geom.is_valid, shapely.is_valid_reason(geom)
        for poly in polygons_of(geom):
            assert poly.exterior.is_ccw
            assert all(not hole.is_ccw for hole in poly.interiors)
        # the polygons hold the region's area (tile sums on the multi-order map)
        key = f"{feature['properties']['credible_level']:g}"
        assert sphere_area_deg2(geom) == pytest.approx(doc["regions"]["levels"][key]["area_deg2"], rel=0.03)
        geoms.append(geom)
    return geoms


CASES: dict[str, Callable[[], LlhFunc]] = {
    "near RA 0": lambda: gaussian_llh(math.radians(0.2), math.radians(20.0), 1.0, 0.6, angle_deg=30),
    "across the antimeridian": lambda: gaussian_llh(math.radians(180.3), math.radians(-30.0), 1.0),
    "over the south pole": lambda: gaussian_llh(math.radians(40.0), math.radians(-89.0), 1.0),
    "over the north pole": lambda: gaussian_llh(math.radians(120.0), math.radians(89.7), 1.0),
    "a ring": lambda: annulus_llh(math.radians(75.0), math.radians(10.0), 2.0, 0.5),
}


@pytest.mark.parametrize("case", list(CASES))
def test_regions_are_rfc7946_polygons(case: str) -> None:
    doc, data = scan_geojson(case)
    geoms = check_rfc7946(data, doc)
    assert [f["properties"]["credible_level"] for f in data["features"]] == [50, 90]
    lon, lat = data["properties"]["best_fit"]
    best = doc["best_fit"]
    assert lon == pytest.approx(math.remainder(best["ra_deg"], 360), abs=1e-6)
    assert lat == pytest.approx(best["dec_deg"], abs=1e-6)
    assert all(g.buffer(1e-6).contains(Point(lon, lat)) for g in geoms)  # the best fit is inside


def test_near_ra_zero_one_polygon_spans_longitude_zero() -> None:
    _, data = scan_geojson("near RA 0")
    for feature in data["features"]:
        assert feature["geometry"]["type"] == "Polygon"
        lons = np.array(feature["geometry"]["coordinates"][0])[:, 0]
        assert lons.min() < 0 < lons.max() and lons.max() - lons.min() < 10  # RA 359.x is -0.x


def test_a_region_across_the_antimeridian_is_cut_there() -> None:
    doc, data = scan_geojson("across the antimeridian")
    for feature in data["features"]:
        geom = feature["geometry"]
        assert geom["type"] == "MultiPolygon" and len(geom["coordinates"]) == 2
        east, west = sorted(geom["coordinates"], key=lambda p: np.array(p[0])[:, 0].mean())
        assert np.array(east[0])[:, 0].min() == -180.0 and np.array(west[0])[:, 0].max() == 180.0
        # the two sides meet along the cut: same latitudes at -180 and +180
        e_cut = np.array(east[0])[np.array(east[0])[:, 0] == -180.0][:, 1]
        w_cut = np.array(west[0])[np.array(west[0])[:, 0] == 180.0][:, 1]
        assert e_cut.min() == pytest.approx(w_cut.min(), abs=0.05)
        assert e_cut.max() == pytest.approx(w_cut.max(), abs=0.05)


@pytest.mark.parametrize(("case", "pole"), [("over the south pole", -90.0), ("over the north pole", 90.0)])
def test_a_region_over_a_pole_is_closed_along_it(case: str, pole: float) -> None:
    _, data = scan_geojson(case)
    for feature in data["features"]:
        ring = np.array(feature["geometry"]["coordinates"][0])
        on_pole = ring[ring[:, 1] == pole]
        assert on_pole[:, 0].min() == -180.0 and on_pole[:, 0].max() == 180.0


def test_a_ring_shaped_region_has_a_hole() -> None:
    _, data = scan_geojson("a ring")
    for feature in data["features"]:
        geom = shape(feature["geometry"])
        assert geom.geom_type == "Polygon" and len(geom.interiors) == 1
        assert geom.interiors[0].convex_hull.contains(Point(75.0, 10.0))  # the centre is in the hole
        assert not geom.contains(Point(75.0, 10.0))


def test_no_fit_gives_no_features() -> None:
    from skyscan.refinement.fits import PixelBest

    complete = {(1, p): PixelBest(1, p, math.nan, 0, {}, True, "x") for p in range(12)}
    data = json.loads(render(make_doc(complete, make_event(), [1]), None, "geojson").content)
    assert data["features"] == [] and geojson.loads(json.dumps(data)).is_valid
