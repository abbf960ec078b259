"""Contour-driven refinement: what it refines, caps, predictive start, determinism."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from skyscan.refinement.contour import ContourStrategy, parse_nsides
from skyscan.refinement.fits import PixelBest, VariationResult
from skyscan.refinement.state import Refinement
from skyscan.refinement.strategies import make_strategy
from skyscan.sky import pixels as px
from skyscan.skymap.contours import region
from skyscan.skymap.multiorder import SR_TO_DEG2, build_multiorder
from tests.support.skymaps import LlhFunc, drive, gaussian_llh

NSIDES = "8,16,32,64,128,256"


def fine_truth_area(f: LlhFunc, nside: int, llh_best: float, level: float = 4.61) -> float:
    """90% area a full scan at ``nside`` would give (TS relative to ``llh_best``)."""
    ra, dec = px.pixel_radec(nside, np.arange(px.npix(nside)))
    ts = 2 * (f(ra, dec) - llh_best)
    return float((ts <= level).sum() * px.pixel_area_sr(nside) * SR_TO_DEG2)


def test_factory_builds_it_with_options() -> None:
    s = make_strategy("contour", "8:0,64:12,512:24", level="icecube-sim", margin=2, predictive="0.5")
    assert isinstance(s, ContourStrategy)
    assert s.nsides == [8, 64, 512] and s.level == 64.2 and s.margin == 2.0 and s.predictive_threshold == 0.5
    assert "level=64.2" in s.describe() and s.name == "contour"
    assert make_strategy("contour", "8,16", level="4.61").level == 4.61
    assert make_strategy("contour", "8,16", level=11.83).level == 11.83


@pytest.mark.parametrize(
    ("nsides", "options", "message"),
    [
        ("8,16", {"predictive_threshold": 0.05}, "predictive_threshold"),
        ("8,16", {"predictive_threshold": 1.5}, "predictive_threshold"),
        ("8,16", {"margin": -1}, "margin"),
        ("8,16", {"max_pixels_per_step": 0}, "max_pixels_per_step"),
        ("8,16", {"max_pixels_per_step": 2.5}, "integer"),
        ("8,16", {"level": "nonsense"}, "level set"),
        ("8,16", {"bogus": 1}, "unknown contour-strategy options"),
        ("8,16", {"predictive": 0.5, "predictive_threshold": 0.5}, "either"),
        ("8,12", {}, "power of two"),
        ("16,8", {}, "increase"),
        ("", {}, "empty"),
    ],
)
def test_bad_specs_are_refused(nsides: str, options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_strategy("contour", nsides, **options)


def test_parse_nsides_caps_at_max() -> None:
    assert parse_nsides("8 16 32") == [8, 16, 32]
    with pytest.raises(ValueError, match="exceeds"):
        parse_nsides("8,2048", max_nside=1024)


def test_first_plan_is_the_whole_coarse_sky_then_strict_rounds() -> None:
    s = ContourStrategy([4, 8, 16])
    ref = Refinement(s, 1, 60000.0)
    tasks = ref.next_tasks()
    assert sorted(t.pixel for t in tasks) == list(range(192)) and {t.nside for t in tasks} == {4}
    f = gaussian_llh(1.0, 0.3, 2.0)
    for t in tasks[:-1]:
        ref.record(VariationResult(t.nside, t.pixel, 0, float(f(np.array(t.ra), np.array(t.dec)))))
        assert ref.next_tasks() == []  # threshold 1: nothing new while any pixel is in flight
    last = tasks[-1]
    ref.record(VariationResult(last.nside, last.pixel, 0, float(f(np.array(last.ra), np.array(last.dec)))))
    nxt = ref.next_tasks()
    assert nxt and {t.nside for t in nxt} == {8}
    assert s.plan(ref) == []  # the plan is already in flight
    assert s.plan(ref) == s.plan(ref)


@pytest.mark.parametrize(
    ("ra_deg", "dec_deg", "sigma"), [(120.0, -20.0, 0.7), (359.9, 40.0, 1.5), (10.0, -85.0, 1.0)]
)
def test_resolves_the_region_at_the_finest_nside(ra_deg: float, dec_deg: float, sigma: float) -> None:
    f = gaussian_llh(math.radians(ra_deg), math.radians(dec_deg), sigma)
    ref = drive(make_strategy("contour", NSIDES), f)
    best = ref.best()
    assert best is not None
    full = f(*px.pixel_radec(256, np.arange(px.npix(256))))
    assert best.llh <= full.min()  # at least as good as the full-resolution minimum
    assert best.nside >= 128
    mom = build_multiorder(ref.complete)
    r90 = region(mom, best.llh, *best.radec, 0.9, 4.61, 256)
    assert r90.resolved_fraction == 1.0 and r90.boundary_resolved
    # exactly the area a full nside-256 scan gives
    assert r90.area_deg2 == pytest.approx(fine_truth_area(f, 256, best.llh), rel=1e-9)


def test_fewer_fits_than_the_fixed_progression_for_a_compact_region() -> None:
    f = gaussian_llh(math.radians(80.0), math.radians(10.0), 0.4)
    contour = drive(make_strategy("contour", "8,16,32,64,128,256,512"), f)
    progression = drive(make_strategy("progression", "8:0,64:12,512:24"), f)
    assert len(contour.complete) < 0.6 * len(progression.complete)
    areas = []
    for ref in (contour, progression):
        best = ref.best()
        assert best is not None
        areas.append(region(build_multiorder(ref.complete), best.llh, *best.radec, 0.9, 4.61, 512).area_deg2)
    assert areas[0] == pytest.approx(areas[1], rel=0.01)


def test_region_grows_past_a_coarse_misjudgement() -> None:
    # a narrow minimum between coarse centres: the nside-8 values alone miss most of the region,
    # the finer fits show it reaching the edge of the refined area, and the area grows
    f = gaussian_llh(math.radians(33.0), math.radians(12.0), 0.6)
    ref = drive(make_strategy("contour", "8,64,512", dilate=0), f)
    best = ref.best()
    assert best is not None
    r90 = region(build_multiorder(ref.complete), best.llh, *best.radec, 0.9, 4.61, 512)
    assert r90.boundary_resolved
    assert r90.area_deg2 == pytest.approx(fine_truth_area(f, 512, best.llh), rel=1e-9)


def test_the_pixel_set_does_not_depend_on_the_order_results_arrive() -> None:
    f = gaussian_llh(2.5, -0.2, 1.0)
    sets = {
        frozenset(drive(make_strategy("contour", "8,16,32,64"), f, order_seed=seed).complete)
        for seed in range(3)
    }
    sets.add(frozenset(drive(make_strategy("contour", "8,16,32,64"), f).complete))
    assert len(sets) == 1


def test_cap_limits_pixels_per_nside_and_takes_the_best_parents_first() -> None:
    f = gaussian_llh(1.0, 0.1, 6.0)  # a wide region
    cap = 300
    ref = drive(make_strategy("contour", "8,16,32", max_pixels_per_step=cap), f)
    counts = Counter(n for n, _ in ref.complete)
    assert counts[8] == 768 and 0 < counts[16] <= cap and 0 < counts[32] <= cap
    best = ref.best()
    assert best is not None and best.nside == 32
    # the refined nside-16 pixels are the children of the lowest-llh nside-8 parents
    parents = {px.parent(16, p, 8) for n, p in ref.complete if n == 16}
    worst_refined = max(ref.complete[(8, p)].llh for p in parents)
    unrefined = [pb.llh for (n, p), pb in ref.complete.items() if n == 8 and p not in parents]
    assert sum(v < worst_refined for v in unrefined) <= 8  # only dilated neighbours break the order


def test_predictive_start_plans_the_next_nside_before_the_current_one_is_done() -> None:
    f = gaussian_llh(4.0, 0.6, 1.0)
    s = make_strategy("contour", "8,16,32", predictive_threshold=0.5)
    ref = Refinement(s, 1, 60000.0)
    tasks = ref.next_tasks()
    rng = np.random.default_rng(3)
    order = rng.permutation(len(tasks))
    started_at = None
    for i, j in enumerate(order):
        t = tasks[j]
        ref.record(VariationResult(t.nside, t.pixel, 0, float(f(np.array(t.ra), np.array(t.dec)))))
        new = ref.next_tasks()
        if new and started_at is None:
            started_at = i + 1
            assert {t.nside for t in new} == {16}
            assert ref.pending  # nside 8 is still in flight
    assert started_at == 384  # exactly half of the 768 coarse pixels
    strict = drive(make_strategy("contour", "8,16,32"), f)
    # finish the predictive scan
    inflight = [t for t in ref.next_tasks()]
    while True:
        pend = list(ref.pending)
        if not pend and not inflight:
            break
        for nside, pixel in pend:
            ra, dec = px.pixel_radec(nside, pixel)
            ref.record(VariationResult(nside, pixel, 0, float(f(ra, dec))))
        inflight = ref.next_tasks()
    assert ref.finished
    assert set(strict.complete) <= set(ref.complete)  # predictive may fit a few more, never fewer
    b1, b2 = strict.best(), ref.best()
    assert b1 is not None and b2 is not None and b1.key == b2.key


def test_everything_failed_stops_after_the_coarse_nside() -> None:
    s = make_strategy("contour", "4,8")
    fail = {(4, p) for p in range(192)}
    ref = drive(s, gaussian_llh(1.0, 0.0, 1.0), fail=fail)
    assert set(ref.complete) == fail and ref.best() is None


def test_plan_is_a_function_of_the_view() -> None:
    f = gaussian_llh(0.2, 0.9, 2.0)
    done = drive(make_strategy("contour", "8,16,32"), f)
    # a fresh strategy asked about the same completed state plans nothing more
    fresh = make_strategy("contour", "8,16,32")
    assert fresh.plan(done) == []

    class View:
        def __init__(self, complete: dict[tuple[int, int], PixelBest]) -> None:
            self.complete = complete
            self.pending: dict[tuple[int, int], int] = {}

        def best(self) -> PixelBest | None:
            return None

    coarse_only = View({k: v for k, v in done.complete.items() if k[0] == 8})
    a = fresh.plan(coarse_only)
    b = make_strategy("contour", "8,16,32").plan(View(dict(reversed(list(coarse_only.complete.items())))))
    assert a == b and a and {n for n, _ in a} == {16}
    # the planned nside-16 pixels cover the region around the coarse minimum
    best8 = min(coarse_only.complete.values(), key=lambda pb: pb.llh)
    assert set(px.children(8, best8.pixel, 16).tolist()) <= {p for _, p in a}
