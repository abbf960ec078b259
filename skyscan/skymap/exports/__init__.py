"""Exports of a result document to files other tools read.

Contract used by the API (``GET /result?format=``) and the CLI (``scan-local --formats``):

* ``FORMATS``: the supported format names.
* ``render(doc, event, fmt) -> Rendered``: bytes, media type and download file name.
* ``filename(doc, event, fmt) -> str``: that file name alone.
* ``write_product(doc, event, fmt, out_dir) -> Path``: render and write into ``out_dir``.

Every format works from the stored result document alone; the optional Event adds metadata and,
for simulated events, the truth. Formats:

| format | what | module |
|---|---|---|
| ``json`` | the result document itself | here |
| ``skyreader-json`` | ``icecube-skyreader`` JSON, pixel version 1 | :mod:`skyscan.skymap.exports.skyreader` |
| ``npz`` | ``icecube-skyreader`` NPZ with a header row per nside | :mod:`skyscan.skymap.exports.skyreader` |
| ``fits`` | multi-order HEALPix FITS, ligo.skymap convention | :mod:`skyscan.skymap.exports.fits` |
| ``geojson`` | region polygons (RFC 7946) | :mod:`skyscan.skymap.exports.geojson` |
| ``png`` | full-sky Mollweide and gnomonic zoom plot | :mod:`skyscan.skymap.exports.plot` |
| ``pdf`` | the same plot as PDF | :mod:`skyscan.skymap.exports.plot` |
| ``gcn`` | GCN notice, IceCube single-neutrino-alert schema | :mod:`skyscan.skymap.exports.gcn` |
| ``probability-fits`` | IceCube's flat probability map | :mod:`skyscan.skymap.exports.probability` |
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skyscan.entry_points import load_entry
from skyscan.physics.event import Event


@dataclass(frozen=True)
class Rendered:
    content: bytes
    media_type: str
    filename: str


class UnknownFormat(ValueError):
    pass


Renderer = Callable[[Mapping[str, Any], Event | None], bytes]


def _json(doc: Mapping[str, Any], event: Event | None) -> bytes:
    return json.dumps(doc).encode()


def _lazy(module: str, func: str) -> Renderer:
    def call(doc: Mapping[str, Any], event: Event | None) -> bytes:
        return load_entry(f"skyscan.skymap.exports.{module}:{func}")(doc, event)  # type: ignore[no-any-return]

    return call


# format -> (renderer, media type, file-name suffix)
_TABLE: dict[str, tuple[Renderer, str, str]] = {
    "json": (_json, "application/json", ".json"),
    "skyreader-json": (_lazy("skyreader", "render_json"), "application/json", ".skyreader.json"),
    "npz": (_lazy("skyreader", "render_npz"), "application/octet-stream", ".skyreader.npz"),
    "fits": (_lazy("fits", "render_fits"), "application/fits", ".multiorder.fits"),
    "geojson": (_lazy("geojson", "render_geojson"), "application/geo+json", ".contours.geojson"),
    "png": (_lazy("plot", "render_png"), "image/png", ".png"),
    "pdf": (_lazy("plot", "render_pdf"), "application/pdf", ".pdf"),
    "gcn": (_lazy("gcn", "render_gcn"), "application/json", ".gcn.json"),
    "probability-fits": (
        _lazy("probability", "render_probability_fits"),
        "application/gzip",
        ".skymap_nside_1024_probability.fits.gz",
    ),
}

FORMATS: tuple[str, ...] = tuple(_TABLE)


def _basename(doc: Mapping[str, Any], event: Event | None = None) -> str:
    ev = doc["event"]
    run_id = event.run_id if event is not None else ev["run_id"]
    event_id = event.event_id if event is not None else ev["event_id"]
    return f"run{run_id:08d}.evt{event_id:012d}.{doc['scan_id']}"


def _entry(fmt: str) -> tuple[Renderer, str, str]:
    try:
        return _TABLE[fmt]
    except KeyError:
        raise UnknownFormat(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}") from None


def filename(doc: Mapping[str, Any], event: Event | None, fmt: str) -> str:
    """The download file name of a product (what a notice links to, before it is rendered)."""
    return f"{_basename(doc, event)}{_entry(fmt)[2]}"


def media_type(fmt: str) -> str:
    """The media type a product is served with (what the OpenAPI document declares for it)."""
    return _entry(fmt)[1]


def render(doc: Mapping[str, Any], event: Event | None, fmt: str) -> Rendered:
    """Render a result document; ValueError (UnknownFormat for a bad name) when it cannot."""
    renderer, media_type, _ = _entry(fmt)
    return Rendered(renderer(doc, event), media_type, filename(doc, event, fmt))


def write_product(doc: Mapping[str, Any], event: Event | None, fmt: str, out_dir: Path) -> Path:
    rendered = render(doc, event, fmt)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / rendered.filename
    path.write_bytes(rendered.content)
    return path


__all__ = ["FORMATS", "Rendered", "UnknownFormat", "filename", "media_type", "render", "write_product"]
