"""Contours of the error regions as GeoJSON (the ``ligo-skymap-contour`` shape).

A FeatureCollection with one feature per level: ``properties.credible_level`` (percent),
``level_2dllh``, ``level_set``, ``area_deg2`` (tiles of the multi-order map) and
``contour_area_deg2`` (enclosed by the interpolated lines); geometry a MultiLineString of [RA, Dec] in
degrees, RA in [0, 360). Lines are split where they cross RA = 0.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from skyscan.physics.event import Event
from skyscan.skymap.exports.common import analysis, event_info


def split_at_wrap(ra_deg: np.ndarray, dec_deg: np.ndarray) -> list[list[list[float]]]:
    """Split a polyline wherever consecutive RAs jump by more than 180 degrees.

    For a closed line the piece after the last jump continues into the piece before the first
    one, so they are joined (a loop across RA = 0 gives two pieces, not three).
    """
    if ra_deg.size == 0:
        return []
    jumps = np.flatnonzero(np.abs(np.diff(ra_deg)) > 180.0) + 1
    pieces = np.split(np.arange(ra_deg.size), jumps)
    closed = ra_deg.size > 2 and ra_deg[0] == ra_deg[-1] and dec_deg[0] == dec_deg[-1]
    if closed and len(pieces) > 2:
        pieces = [np.concatenate([pieces[-1][:-1], pieces[0]]), *pieces[1:-1]]
    return [
        [[round(float(ra_deg[i]), 6), round(float(dec_deg[i]), 6)] for i in seg]
        for seg in pieces
        if seg.size >= 2
    ]


def to_geojson(doc: Mapping[str, Any], event: Event | None) -> dict[str, Any]:
    an = analysis(doc)
    info = event_info(doc, event)
    features = []
    cset = an.contour_set()
    for region, lines, traced in zip(an.regions, cset.lines, cset.areas_deg2, strict=True):
        coords: list[list[list[float]]] = []
        for line in lines:
            coords.extend(split_at_wrap(np.degrees(line[:, 0]), np.degrees(line[:, 1])))
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "credible_level": round(region.containment * 100, 6),
                    "level_2dllh": region.level,
                    "level_set": an.level_set,
                    "area_deg2": region.area_deg2,
                    "contour_area_deg2": traced,
                },
                "geometry": {"type": "MultiLineString", "coordinates": coords},
            }
        )
    out: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    out["properties"] = {
        "object": info.label,
        "scan_id": doc.get("scan_id"),
        "coordinates": "RA, Dec (deg, ICRS)",
    }
    if an.best is not None:
        ra, dec = an.best.radec
        out["properties"]["best_fit"] = [float(np.degrees(ra)), float(np.degrees(dec))]
    return out


def render_geojson(doc: Mapping[str, Any], event: Event | None) -> bytes:
    return json.dumps(to_geojson(doc, event)).encode()
