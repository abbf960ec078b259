"""skyreader (``icecube-skyreader``) result files, pixel version 1: JSON and NPZ.

One entry per nside, ``nside-<N>``, with the RING pixel ``index``, ``llh`` (-lnL), ``E_in``,
``E_tot``, ``X``, ``Y``, ``Z``, ``T`` and the metadata ``run_id, event_id, mjd, event_type, nside,
version, is_real_event, complete``. NaN is written as skyreader's sentinel string in JSON.

Failed pixels are left out: skyreader's best fit takes the minimum of each nside without skipping
NaN, so one failed pixel would hide a whole nside from it (the result document keeps them).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from skyscan.physics.event import Event
from skyscan.skymap.assembly import pixels_from_result
from skyscan.skymap.exports.common import event_info

VERSION = 1
COLUMNS = ("index", "llh", "E_in", "E_tot", "X", "Y", "Z", "T")
NAN_SENTINEL = "<skyreader.nan>"
PIXEL_DTYPE = np.dtype([("index", np.int64)] + [(c, np.float64) for c in COLUMNS[1:]])


def nside_tables(doc: Mapping[str, Any]) -> dict[int, np.ndarray]:
    """Structured arrays (PIXEL_DTYPE) per nside, sorted by index, failed pixels left out."""
    rows: dict[int, list[tuple[float, ...]]] = {}
    for (nside, pixel), pb in sorted(pixels_from_result(doc).items()):
        if pb.failed or not math.isfinite(pb.llh):
            continue
        fit = [_f(pb.fit.get(c)) for c in COLUMNS[2:]]
        rows.setdefault(nside, []).append((pixel, pb.llh, *fit))
    return {n: np.array(r, dtype=PIXEL_DTYPE) for n, r in sorted(rows.items())}


def _f(value: object) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) else math.nan


def metadata(doc: Mapping[str, Any], event: Event | None, nside: int) -> dict[str, Any]:
    info = event_info(doc, event)
    return {
        "nside": nside,
        "complete": bool(doc.get("complete", False)),
        "run_id": info.run_id,
        "event_id": info.event_id,
        "event_type": info.event_type,
        "mjd": info.mjd,
        "is_real_event": info.is_real_event,
        "version": VERSION,
    }


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return NAN_SENTINEL
    return v


def to_dict(doc: Mapping[str, Any], event: Event | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for nside, table in nside_tables(doc).items():
        data = [[int(row[0])] + [_json_value(float(x)) for x in row.tolist()[1:]] for row in table]
        out[f"nside-{nside}"] = {
            "columns": list(COLUMNS),
            "metadata": metadata(doc, event, nside),
            "data": data,
        }
    return out


def render_json(doc: Mapping[str, Any], event: Event | None) -> bytes:
    return json.dumps(to_dict(doc, event)).encode()


def render_npz(doc: Mapping[str, Any], event: Event | None) -> bytes:
    tables = nside_tables(doc)
    arrays: dict[str, np.ndarray] = {f"nside-{n}": t for n, t in tables.items()}
    if tables:
        metas = [metadata(doc, event, n) for n in tables]
        fields = []
        for key, value in metas[0].items():
            if isinstance(value, str):
                width = max(len(str(m[key])) for m in metas)
                fields.append((key, f"U{max(width, 1)}"))
            elif isinstance(value, bool):
                fields.append((key, np.bool_))
            elif isinstance(value, int):
                fields.append((key, np.int64))
            else:
                fields.append((key, np.float64))
        arrays["header"] = np.array([tuple(m[k] for k, _ in fields) for m in metas], dtype=fields)
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()
