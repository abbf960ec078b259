"""A 90% region not resolved at the finest nside: the contour strategy refines it, the rest is flagged.

The flag is ``regions.unresolved`` in the result document (null when resolved), a sentence in the
GCN notice's ``additional_info.unresolved``; the CLI prints the same sentence (tests/unit/test_cli.py).
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from skyscan.refinement.strategies import make_strategy
from skyscan.skymap.exports import render
from tests.support.skymaps import drive, gaussian_llh, make_doc, make_event

WIDE = gaussian_llh(math.radians(250.0), math.radians(-38.0), 2.0, 1.2, angle_deg=20.0)


def scan(strategy: str, nsides: str, level_set: str = "wilks", **options: Any) -> dict[str, Any]:
    s = make_strategy(strategy, nsides, level_set=level_set, **options)
    ref = drive(s, WIDE)
    return make_doc(ref.complete, make_event(), s.nsides, level_set=level_set)


def test_a_fixed_progression_leaves_a_wide_region_half_resolved_and_says_so() -> None:
    doc = scan("progression", "8:0,32:4,128:4")
    r90 = doc["regions"]["levels"]["90"]
    assert r90["resolved_fraction"] < 0.8
    flag = doc["regions"]["unresolved"]
    assert flag["containment"] == 0.9 and flag["finest_nside"] == 128
    assert flag["fraction"] == pytest.approx(1 - r90["resolved_fraction"])
    assert flag["area_deg2"] == pytest.approx(flag["fraction"] * r90["area_deg2"])
    assert flag["boundary_resolved"] is False
    pct = f"{flag['fraction']:.0%}"
    assert flag["message"].startswith(f"{pct} of the 90% region") and "nside 128" in flag["message"]
    gcn = json.loads(render(doc, None, "gcn").content)
    assert gcn["additional_info"]["unresolved"] == flag["message"]


def test_the_contour_strategy_resolves_the_same_region() -> None:
    doc = scan("contour", "8,16,32,64,128")
    r90 = doc["regions"]["levels"]["90"]
    assert r90["resolved_fraction"] == 1.0 and r90["boundary_resolved"]
    assert doc["regions"]["unresolved"] is None
    assert "unresolved" not in json.loads(render(doc, None, "gcn").content)["additional_info"]


def test_the_contour_level_follows_the_scan_level_set() -> None:
    assert make_strategy("contour", "8,16", level_set="icecube-sim").level == 64.2  # type: ignore[attr-defined]
    assert make_strategy("contour", "8,16", level_set="50:1.39,95:5.99").level == 5.99  # type: ignore[attr-defined]
    assert make_strategy("contour", "8,16", level_set="icecube-sim", level=3).level == 3.0  # type: ignore[attr-defined]
    make_strategy("progression", "8:0,16:4", level_set="icecube-sim")  # takes no level: not passed on
    # resolving the 4.61 region leaves the wider 64.2 region of the simulation-calibrated set coarse
    narrow = make_strategy("contour", "8,16,32,64", level=4.61)
    doc = make_doc(drive(narrow, WIDE).complete, make_event(), narrow.nsides, level_set="icecube-sim")
    assert doc["regions"]["unresolved"]["fraction"] > 0.3
    followed = scan("contour", "8,16,32,64", level_set="icecube-sim")
    assert followed["regions"]["levels"]["90"]["level"] == 64.2
    assert followed["regions"]["unresolved"] is None


def test_what_the_task_limit_leaves_is_flagged() -> None:
    doc = scan("contour", "8,16,32,64,128", max_pixels_per_step=120)
    counts = {n: sum(1 for p in doc["pixels"] if p["nside"] == n) for n in (16, 32, 64, 128)}
    assert max(counts.values()) <= 120
    flag = doc["regions"]["unresolved"]
    assert flag is not None and flag["fraction"] > 0.2


def test_a_failed_fit_inside_the_region_is_flagged() -> None:
    s = make_strategy("contour", "8,16,32")
    clean = drive(s, WIDE)
    best = clean.best()
    assert best is not None
    fail = {(32, best.pixel)}  # the best pixel's fit fails: its parent's value shows there
    s2 = make_strategy("contour", "8,16,32")
    ref = drive(s2, WIDE, fail=fail)
    doc = make_doc(ref.complete, make_event(), s2.nsides)
    flag = doc["regions"]["unresolved"]
    area32 = 4 * math.pi / (12 * 32**2) * (180 / math.pi) ** 2
    assert flag["area_deg2"] == pytest.approx(area32, rel=1e-6)
    assert flag["fraction"] == pytest.approx(area32 / doc["regions"]["levels"]["90"]["area_deg2"])
