"""The error regions as GeoJSON (RFC 7946) polygons on the sky.

A FeatureCollection with one Feature per level. ``properties``: ``credible_level`` (percent),
``level_2dllh``, ``level_set``, ``area_deg2`` (tiles of the multi-order map) and
``contour_area_deg2`` (enclosed by the interpolated contour lines). ``geometry``: a Polygon, or a
MultiPolygon when the region has several parts, as RFC 7946 asks: positions are [longitude,
latitude] in degrees with longitude = RA in [-180, 180] (RA 350 is -10) and latitude = Dec;
exterior rings run counter-clockwise and holes clockwise; a region across the antimeridian (RA
180) is cut into one polygon each side; a region holding a pole is closed along latitude +-90.
The collection's ``properties`` name the object, the scan and the best fit ([lon, lat]).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from skyscan.physics.event import Event
from skyscan.skymap.contours import Ring
from skyscan.skymap.exports.common import analysis, event_info

DECIMALS = 6  # 0.004 arcsec


def _positions(ring: Ring) -> list[list[float]]:
    """Rounded positions without repeats (rounding can merge neighbours); [] if too few remain."""
    out: list[list[float]] = []
    for lon, lat in np.round(ring, DECIMALS):
        point = [float(lon) + 0.0, float(lat) + 0.0]  # + 0.0: no -0.0 in the file
        if not out or point != out[-1]:
            out.append(point)
    if out and out[0] != out[-1]:
        out.append(out[0])
    return out if len(out) >= 4 else []


def geometry(polygons: list[list[Ring]]) -> dict[str, Any] | None:
    parts = []
    for polygon in polygons:
        rings = [_positions(r) for r in polygon]
        if rings and rings[0]:
            parts.append([r for r in rings if r])
    if not parts:
        return None
    if len(parts) == 1:
        return {"type": "Polygon", "coordinates": parts[0]}
    return {"type": "MultiPolygon", "coordinates": parts}


def longitude(ra_rad: float) -> float:
    """RA (radians) as a GeoJSON longitude in degrees, within [-180, 180]."""
    return math.degrees(math.remainder(ra_rad, 2 * math.pi))


def to_geojson(doc: Mapping[str, Any], event: Event | None) -> dict[str, Any]:
    an = analysis(doc)
    info = event_info(doc, event)
    out: dict[str, Any] = {"type": "FeatureCollection", "features": []}
    out["properties"] = {
        "object": info.label,
        "scan_id": doc.get("scan_id"),
        "coordinates": "[longitude, latitude] = [RA in -180..180, Dec] (deg, ICRS)",
    }
    if an.best is None or not an.regions:
        return out
    ra, dec = an.best.radec
    out["properties"]["best_fit"] = [round(longitude(ra), DECIMALS), round(math.degrees(dec), DECIMALS)]
    for region, traced in zip(an.regions, an.contour_set.areas_deg2, strict=True):
        polygons = an.region_polygons(region)
        properties = {
            "credible_level": round(region.containment * 100, 6),
            "level_2dllh": region.level,
            "level_set": an.level_set,
            "area_deg2": region.area_deg2,
            "contour_area_deg2": traced,
        }
        out["features"].append({"type": "Feature", "properties": properties, "geometry": geometry(polygons)})
    return out


def render_geojson(doc: Mapping[str, Any], event: Event | None) -> bytes:
    return json.dumps(to_geojson(doc, event)).encode()
