"""Exports of a result document to files other tools read (filled in by the skymap-products work).

Contract used by the API (``GET /result?format=``) and the CLI (``scan-local --formats``):

* ``FORMATS``: the supported format names.
* ``render(doc, event, fmt) -> Rendered``: bytes, media type and download file name.
* ``write_product(doc, event, fmt, out_dir) -> Path``: render and write into ``out_dir``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skyscan.event import Event

FORMATS: tuple[str, ...] = ("json",)


@dataclass(frozen=True)
class Rendered:
    content: bytes
    media_type: str
    filename: str


class UnknownFormat(ValueError):
    pass


def _basename(doc: dict[str, Any]) -> str:
    ev = doc["event"]
    return f"run{ev['run_id']:08d}.evt{ev['event_id']:012d}.{doc['scan_id']}"


def render(doc: dict[str, Any], event: Event | None, fmt: str) -> Rendered:
    if fmt == "json":
        return Rendered(json.dumps(doc).encode(), "application/json", f"{_basename(doc)}.json")
    raise UnknownFormat(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")


def write_product(doc: dict[str, Any], event: Event | None, fmt: str, out_dir: Path) -> Path:
    rendered = render(doc, event, fmt)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / rendered.filename
    path.write_bytes(rendered.content)
    return path
