"""What every exporter needs from a result document: event metadata, names, times, the analysis."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from astropy.time import Time

from skyscan.physics.event import Event
from skyscan.sky.coordinates import detector_to_equatorial
from skyscan.skymap.assembly import Analysis, analysis_from_result, reference_fits_summary


@dataclass(frozen=True)
class EventInfo:
    run_id: int
    event_id: int
    mjd: float
    event_type: str
    is_real_event: bool

    @property
    def label(self) -> str:
        return f"run{self.run_id:08d}.evt{self.event_id:012d}"

    @property
    def iso_time(self) -> str:
        return str(Time(self.mjd, format="mjd", scale="utc").isot)


def event_info(doc: Mapping[str, Any], event: Event | None) -> EventInfo:
    """Metadata from the Event when given, else from the document's event summary."""
    if event is not None:
        return EventInfo(event.run_id, event.event_id, event.mjd, event.event_type, event.is_real_event)
    ev = doc["event"]
    return EventInfo(
        int(ev["run_id"]),
        int(ev["event_id"]),
        float(ev["mjd"]),
        str(ev["event_type"]),
        bool(ev["is_real_event"]),
    )


def truth_radec(doc: Mapping[str, Any], event: Event | None) -> tuple[float, float] | None:
    """True direction (RA, Dec radians) of a simulated event, if known."""
    truth = doc.get("truth")
    if truth and truth.get("ra_deg") is not None:
        return math.radians(truth["ra_deg"]), math.radians(truth["dec_deg"])
    if event is not None and event.truth is not None:
        ra, dec = detector_to_equatorial(event.truth.zenith, event.truth.azimuth, event.mjd)
        return float(ra), float(dec)
    return None


def reference_radec(doc: Mapping[str, Any], event: Event | None) -> dict[str, tuple[float, float]]:
    """IceCube's reference fits (name -> RA, Dec radians): the document's, else the event's."""
    rows = doc.get("reference_fits")
    if not rows and event is not None:
        rows = reference_fits_summary(event, None)
    return {name: (math.radians(r["ra_deg"]), math.radians(r["dec_deg"])) for name, r in (rows or {}).items()}


def basename(doc: Mapping[str, Any], event: Event | None = None) -> str:
    return f"{event_info(doc, event).label}.{doc['scan_id']}"


def analysis(doc: Mapping[str, Any]) -> Analysis:
    return analysis_from_result(doc)


def require_best(an: Analysis, what: str) -> None:
    if an.best is None:
        raise ValueError(f"the result has no finite fit yet; cannot produce {what}")
