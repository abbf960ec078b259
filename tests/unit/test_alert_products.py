"""What an alert scan publishes: the offsets to IceCube's own fits in the result document, GCN
notices valid against GCN's IceCube schema, and the flat probability map IceCube distributes."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path
from typing import Any

import healpy as hp
import numpy as np
import pytest

from skyscan.physics.event import Event, parse_event
from skyscan.sky import pixels as px
from skyscan.sky.coordinates import angular_distance, equatorial_to_detector
from skyscan.skymap.assembly import analysis_from_result
from skyscan.skymap.exports import filename, render
from skyscan.skymap.exports.probability import credible_areas_deg2, flat_probability
from skyscan.skymap.multiorder import probability
from tests.support.gcn_schema import SKIP_REASON, schema_dir, schema_properties, validation_errors
from tests.support.skymaps import cap_area_deg2, full_map, gaussian_llh, make_doc, make_event

RA0, DEC0 = math.radians(224.0), math.radians(40.8)
needs_schema = pytest.mark.skipif(schema_dir() is None, reason=SKIP_REASON)


def alert_event(reference: dict[str, tuple[float, float]]) -> Event:
    data = make_event(truth=None, is_real=True, run_id=136766).to_json_dict()
    data["reference_fits"] = {name: {"zenith": z, "azimuth": a} for name, (z, a) in reference.items()}
    return parse_event(data)


def direction_offset(ra_deg_off: float) -> tuple[float, float]:
    """(zenith, azimuth) of the direction ``ra_deg_off`` degrees of RA east of the peak at mjd 60000.5."""
    zen, azi = equatorial_to_detector(RA0 + math.radians(ra_deg_off), DEC0, 60000.5)
    return float(zen), float(np.mod(azi, 2 * math.pi))


@pytest.fixture(scope="module")
def alert_doc() -> dict[str, Any]:
    f = gaussian_llh(RA0, DEC0, 1.0)
    complete = full_map(16, f)
    ra, dec = px.pixel_radec(256, np.arange(px.npix(256)))
    near = np.flatnonzero(np.degrees(angular_distance(RA0, DEC0, ra, dec)) < 8.0)
    complete.update(full_map(256, f, near))
    event = alert_event({"SplineMPE": direction_offset(0.5), "Far": direction_offset(20.0)})
    doc = make_doc(complete, event, [16, 256])
    return {"doc": doc, "event": event}


def test_the_result_gives_the_offset_to_each_reference_fit(alert_doc: dict[str, Any]) -> None:
    refs = alert_doc["doc"]["reference_fits"]
    best = alert_doc["doc"]["best_fit"]
    assert set(refs) == {"SplineMPE", "Far"}
    spline = refs["SplineMPE"]
    assert spline["dec_deg"] == pytest.approx(math.degrees(DEC0), abs=1e-6)
    expect = math.degrees(
        float(
            angular_distance(
                *np.radians([best["ra_deg"], best["dec_deg"]]),
                *np.radians([spline["ra_deg"], spline["dec_deg"]]),
            )
        )
    )
    assert spline["offset_deg"] == pytest.approx(expect, abs=1e-9)
    assert 0.2 < spline["offset_deg"] < 0.6  # 0.5 deg of RA at Dec 40.8 is 0.38 deg on the sky
    # 2*dLLH of the map there: the Gaussian's (offset/sigma)^2, to the pixel's precision
    assert spline["map_2dllh"] == pytest.approx((0.38 / 1.0) ** 2, abs=0.15)
    assert refs["Far"]["offset_deg"] > 14 and refs["Far"]["map_2dllh"] > 100


def test_a_result_without_reference_fits_has_none(alert_doc: dict[str, Any]) -> None:
    complete = full_map(8, gaussian_llh(RA0, DEC0, 5.0))
    assert "reference_fits" not in make_doc(complete, make_event(), [8])


# -- GCN notices ----------------------------------------------------------------------------------

GOLD_ALERT = {
    "run_id": 136766,
    "event_id": 42,
    "revision": 0,
    "stream": "gold",
    "event_name": "IceCube-230225A",
    "signalness": 0.5,
    "far": 0.3,
    "nu_energy": 150.0,
}


def notice(doc: dict[str, Any], event: Event | None, **extra: Any) -> dict[str, Any]:
    return json.loads(render({**doc, **extra}, event, "gcn").content)  # type: ignore[no-any-return]


@needs_schema
@pytest.mark.parametrize(
    "alert, expected",
    [
        (
            GOLD_ALERT,
            {
                "pipeline": "Gold Track Alert",
                "alert_topology": "Track",
                "alert_type": "initial",
                "record_number": 1,
            },
        ),
        (
            {**GOLD_ALERT, "stream": "neutrino", "pipeline": "Bronze Track Alert", "revision": 2},
            {"pipeline": "Bronze Track Alert", "alert_type": "update", "record_number": 3},
        ),
        (
            {**GOLD_ALERT, "stream": "cascade", "retraction": True},
            {"pipeline": "Cascade Alert", "alert_type": "retraction"},
        ),
        ({**GOLD_ALERT, "stream": "neutrino"}, {"alert_tense": "current"}),
    ],
    ids=["gold", "bronze update", "cascade retraction", "unknown stream"],
)
def test_alert_notices_validate_and_carry_the_alert(
    alert_doc: dict[str, Any], alert: dict[str, Any], expected: dict[str, Any]
) -> None:
    data = notice(
        alert_doc["doc"], alert_doc["event"], alert=alert, healpix_base_url="https://example.org/a/"
    )
    assert validation_errors(data) == []
    assert {k: data.get(k) for k in expected} == expected
    if "pipeline" not in expected:
        assert "pipeline" not in data and "alert_topology" not in data
    assert data["$schema"].endswith("icecube/single_neutrino_alerts.schema.json")
    assert (data["mission"], data["instrument"], data["messenger"]) == ("IceCube", "IC86", "Neutrino")
    assert data["id"] == ["136766_42"] and data["event_name"] == ["IceCube-230225A"]
    assert data["alert_tense"] == "current" and data["number_of_events"] == 1
    assert (data["p_astro"], data["far"], data["nu_energy"]) == (0.5, 0.3, 150.0)
    assert data["healpix_url"] == "https://example.org/a/" + filename(
        alert_doc["doc"], None, "probability-fits"
    )
    assert data["healpix_url"].endswith(".skymap_nside_1024_probability.fits.gz")
    assert data["trigger_time"].endswith("Z") and data["alert_datetime"].endswith("Z")
    # our own fields only under additional_info
    assert set(data) - {"$schema", "additional_info"} <= schema_properties()
    ours = data["additional_info"]
    assert ours["pipeline"] == "SkyDriver synthetic" and ours["alert"]["stream"] == alert["stream"]
    assert ours["reference_fits"]["SplineMPE"]["offset_deg"] == pytest.approx(
        alert_doc["doc"]["reference_fits"]["SplineMPE"]["offset_deg"], abs=1e-4
    )


@needs_schema
def test_non_alert_notices_validate(alert_doc: dict[str, Any]) -> None:
    archival = notice(alert_doc["doc"], alert_doc["event"])
    assert validation_errors(archival) == [] and archival["alert_tense"] == "archival"
    assert not {"pipeline", "record_number", "alert_type", "event_name", "healpix_url"} & set(archival)
    complete = full_map(8, gaussian_llh(RA0, DEC0, 5.0))
    simulated = notice(make_doc(complete, make_event(), [8]), None)
    assert validation_errors(simulated) == [] and simulated["alert_tense"] == "test"


@needs_schema
def test_the_validator_is_not_blind(alert_doc: dict[str, Any]) -> None:
    data = notice(alert_doc["doc"], alert_doc["event"], alert=GOLD_ALERT)
    data["pipeline"] = "SkyDriver"
    data["ra"] = "224"
    assert len(validation_errors(data)) == 2


@needs_schema
def test_the_shared_example_notice_validates() -> None:
    folder = schema_dir()
    assert folder is not None
    example = json.loads(
        (folder / "icecube/single_neutrino_alerts.gold_bronze_track_alerts.example.json").read_text()
    )
    assert validation_errors(example) == []


# -- the flat probability map -----------------------------------------------------------------------


def test_probability_fits_is_a_healpix_map_with_the_multiorder_areas(
    alert_doc: dict[str, Any], tmp_path: Path
) -> None:
    doc, event = alert_doc["doc"], alert_doc["event"]
    rendered = render(doc, event, "probability-fits")
    assert rendered.filename == "run00136766.evt000000000042.scan0001.skymap_nside_1024_probability.fits.gz"
    assert rendered.media_type == "application/gzip" and rendered.content[:2] == b"\x1f\x8b"
    path = tmp_path / rendered.filename
    path.write_bytes(rendered.content)
    flat, header = hp.read_map(path, h=True, nest=False)
    header = dict(header)
    assert (header["NSIDE"], header["ORDERING"], header["COORDSYS"], header["TTYPE1"]) == (
        1024,
        "RING",
        "C",
        "PROB",
    )
    assert (header["RUNID"], header["EVENTID"]) == (136766, 42)
    assert flat.size == hp.nside2npix(1024) and flat.sum() == pytest.approx(1.0, abs=1e-9) and flat.min() >= 0
    # the most probable pixel is the best fit's
    theta, phi = hp.pix2ang(1024, int(np.argmax(flat)))
    best = doc["best_fit"]
    offset = angular_distance(
        math.radians(best["ra_deg"]), math.radians(best["dec_deg"]), phi, math.pi / 2 - theta
    )
    assert math.degrees(float(offset)) < 0.25
    # credible areas: the multi-order map's within 1%, and the Gaussian's cap
    areas = credible_areas_deg2(flat, 1024)
    an = analysis_from_result(doc)
    for pct, containment in (("50", 0.5), ("90", 0.9)):
        low, high = multiorder_area_bounds(an, containment)
        stored = doc["probability"]["credible_areas_deg2"][pct]  # the crossing tile counted pro rata
        assert low <= stored <= high and low <= areas[pct] <= high
        assert stored == pytest.approx(multiorder_area_interpolated(an, containment), rel=1e-6)
        assert areas[pct] == pytest.approx(stored, rel=0.01)
    assert areas["90"] == pytest.approx(cap_area_deg2(1.0, 4.605), rel=0.03)
    assert header["CRED90"] == pytest.approx(areas["90"])


def _sorted_tiles(an: Any) -> tuple[np.ndarray, np.ndarray]:
    prob = probability(an.map, an.best.llh)
    order = np.argsort(-prob / an.map.area_sr, kind="stable")
    return np.cumsum(prob[order]), an.map.area_deg2[order]


def multiorder_area_bounds(an: Any, containment: float) -> tuple[float, float]:
    """The multi-order credible area without and with the tile that crosses the containment."""
    cumulative, area = _sorted_tiles(an)
    i = int(np.searchsorted(cumulative, containment))
    return float(area[:i].sum()), float(area[: i + 1].sum())


def multiorder_area_interpolated(an: Any, containment: float) -> float:
    cumulative, area = _sorted_tiles(an)
    i = int(np.searchsorted(cumulative, containment))
    before = cumulative[i - 1] if i else 0.0
    return float(area[:i].sum() + area[i] * (containment - before) / (cumulative[i] - before))


def test_probability_fits_reads_with_ligo_skymap(alert_doc: dict[str, Any], tmp_path: Path) -> None:
    io = pytest.importorskip("ligo.skymap.io", reason="ligo.skymap not installed")
    path = tmp_path / "map.fits.gz"
    path.write_bytes(render(alert_doc["doc"], None, "probability-fits").content)
    prob, meta = io.read_sky_map(str(path), nest=None)
    assert prob.size == hp.nside2npix(1024) and prob.sum() == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("nside", [8, 16, 64, 512])
def test_flat_probability_keeps_each_tiles_probability(alert_doc: dict[str, Any], nside: int) -> None:
    """Coarser output than some tiles (they add up) and finer (they spread evenly)."""
    an = analysis_from_result(alert_doc["doc"])
    assert an.best is not None
    flat_ring = flat_probability(an.map, an.best.llh, nside)
    assert flat_ring.sum() == pytest.approx(1.0, abs=1e-12)
    # every tile's probability lands in the pixels inside it (tiles of order <= target)
    flat = hp.reorder(flat_ring, r2n=True)
    prob = probability(an.map, an.best.llh)
    order = int(math.log2(nside))
    for i in np.flatnonzero(an.map.order <= order)[:50]:
        span = 4 ** (order - int(an.map.order[i]))
        start = int(an.map.nest[i]) * span
        assert flat[start : start + span].sum() == pytest.approx(prob[i], rel=1e-9, abs=1e-300)


def test_probability_fits_is_gzip_of_a_fits_file(alert_doc: dict[str, Any]) -> None:
    raw = gzip.decompress(render(alert_doc["doc"], None, "probability-fits").content)
    assert raw[:6] == b"SIMPLE"
