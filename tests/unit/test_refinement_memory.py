"""The columnar refinement state: the same answers as per-pixel objects, at a flat cost per pixel."""

from __future__ import annotations

import gc
import math
import random
import tracemalloc
from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from skyscan.refinement.fits import PixelBest, PixelKey, VariationResult, best_of, global_best
from skyscan.refinement.progression import ProgressionStrategy
from skyscan.refinement.state import PlannedPixels, Refinement, RefinementView, TaskSpec
from skyscan.sky import pixels as px

FIT6 = ("X", "Y", "Z", "T", "E_tot", "E_in")


class Scripted:
    """A strategy that hands out fixed plans, the next one once nothing is pending."""

    name = "scripted"

    def __init__(self, nsides: list[int], plans: Sequence[PlannedPixels]) -> None:
        self._nsides = nsides
        self._plans = list(plans)

    @property
    def nsides(self) -> list[int]:
        return self._nsides

    def plan(self, view: RefinementView) -> PlannedPixels:
        if view.pending or not self._plans:
            return []
        return self._plans.pop(0)

    def describe(self) -> str:
        return "scripted"

    def nsides_spec(self) -> str:
        return ",".join(map(str, self._nsides))

    def estimated_pixels(self) -> list[tuple[int, int]]:
        return []


def mixed_result(t: TaskSpec) -> VariationResult:
    """Deterministic results with everything the fold must keep apart: pixels whose variations all
    fail (with errors, without, a NaN llh not flagged failed), single failed variations, None and
    NaN fit values, keys that differ from pixel to pixel."""
    whole = (t.pixel * 7 + t.nside) % 13
    llh = 100.0 + ((t.pixel * 37 + t.variation * 11) % 101) / 7.0
    fit: dict[str, float | None] = {"X": t.pixel + 0.5, "Y": -1.0 * t.variation, "Z": 3.0, "T": 4.25}
    if whole == 0:
        return VariationResult(t.nside, t.pixel, t.variation, math.nan, {}, True, f"diverged {t.variation}")
    if whole == 1:
        return VariationResult(t.nside, t.pixel, t.variation, math.nan, {"X": 1.0}, True, None)
    if whole == 2:
        return VariationResult(t.nside, t.pixel, t.variation, math.nan, fit, False)  # NaN, not flagged
    one = (t.pixel + t.variation) % 4
    if one == 0:
        return VariationResult(t.nside, t.pixel, t.variation, -1e6, {}, True, "one variation")
    if one == 1:
        fit["E_tot"] = None
    if one == 2:
        fit["E_in"] = math.nan
    if one == 3:
        fit = {**fit, "extra": 2.0**0.5}
    return VariationResult(t.nside, t.pixel, t.variation, llh, fit)


def same_fit(a: Mapping[str, float | None], b: Mapping[str, float | None]) -> bool:
    """Equal fit dicts, NaN equal to NaN (and not to None)."""
    if a.keys() != b.keys():
        return False
    for k in a:
        x, y = a[k], b[k]
        if x is None or y is None:
            if x is not y:
                return False
        elif not (x == y or (math.isnan(x) and math.isnan(y))):
            return False
    return True


def same_best(a: PixelBest, b: PixelBest) -> bool:
    same_llh = a.llh == b.llh or (math.isnan(a.llh) and math.isnan(b.llh))
    return (
        (a.nside, a.pixel, a.variation, a.failed, a.error)
        == (b.nside, b.pixel, b.variation, b.failed, b.error)
        and same_llh
        and same_fit(a.fit, b.fit)
    )


def run_mixed(n_var: int, batch: int | None, seed: int = 5) -> tuple[Refinement, dict, list, list]:
    """A small progression scan; results come back shuffled, recorded one by one (batch None) or
    ``batch`` at a time. Returns the state, every result per pixel, the completion order and
    what record said of each result."""
    ref = Refinement(ProgressionStrategy.from_spec("4:0,8:3,16:2"), n_var, 58000.0)
    rng = random.Random(seed)
    per_pixel: dict[PixelKey, list[VariationResult]] = {}
    order: list[PixelKey] = []
    said: list[bool] = []
    answered: set[tuple[PixelKey, int]] = set()
    inflight: list[TaskSpec] = []
    while True:
        inflight.extend(ref.next_tasks())
        if not inflight:
            assert ref.finished
            return ref, per_pixel, order, said
        rng.shuffle(inflight)
        cut = max(1, len(inflight) // 2)
        now, inflight = inflight[:cut], inflight[cut:]
        results = [mixed_result(t) for t in now]
        results += results[:3]  # duplicates
        expected_pending = dict(ref.pending)
        for r in results:
            per_pixel.setdefault((r.nside, r.pixel), []).append(r)
        if batch is None:
            said.extend(ref.record(r) for r in results)
        else:
            for i in range(0, len(results), batch):
                said.extend(ref.record_many(results[i : i + batch]))
        for r in results:
            key = (r.nside, r.pixel)
            if key in expected_pending and (key, r.variation) not in answered:
                answered.add((key, r.variation))
                expected_pending[key] -= 1
                if expected_pending[key] == 0:
                    del expected_pending[key]
                    order.append(key)
        assert dict(ref.pending) == expected_pending


@pytest.mark.parametrize(("n_var", "batch"), [(1, None), (1, 5), (1, 64), (3, None), (3, 5), (3, 64)])
def test_the_views_give_the_best_of_each_pixel_as_the_fold_does(n_var: int, batch: int | None) -> None:
    ref, per_pixel, order, _ = run_mixed(n_var, batch)
    complete = ref.complete
    # the reference: best_of over each pixel's results, the duplicates dropped
    expected = {
        key: best_of(list({r.variation: r for r in reversed(rs)}.values())) for key, rs in per_pixel.items()
    }
    assert len(complete) == len(expected) == len(order)
    assert list(complete) == order  # completion order, as the dict it replaces
    assert [k for k, _ in complete.items()] == order
    for key, pb in complete.items():
        assert same_best(pb, expected[key]) and same_best(complete[key], expected[key])
    assert all(same_best(a, b) for a, b in zip(complete.values(), (expected[k] for k in order), strict=True))
    assert all(key in complete for key in expected) and (4, 10**6) not in complete and "x" not in complete
    assert complete.get((16, -1)) is None and not ref.pending
    # what the mix holds, so the comparison above means something
    fails = [pb for pb in expected.values() if pb.failed]
    assert (
        fails
        and any(pb.error == "fit failed" for pb in fails)
        and any("diverged" in pb.error for pb in fails)
    )
    assert any(pb.fit.get("E_tot", 0.0) is None and "E_tot" in pb.fit for pb in complete.values())
    assert any("E_in" in pb.fit and math.isnan(pb.fit["E_in"]) for pb in complete.values())  # type: ignore[arg-type]
    assert any("extra" in pb.fit for pb in complete.values()) and any(
        pb.fit == {} for pb in complete.values()
    )
    if n_var > 1:
        assert {pb.variation for pb in complete.values()} == set(range(n_var))
    best = ref.best()
    assert best is not None and same_best(best, global_best(expected))  # type: ignore[arg-type]
    counts = {int(n): p["pixels_done"] for n, p in ref.progress_dict().items()}
    assert sum(counts.values()) == len(expected)
    assert {int(n): p["pixels_failed"] for n, p in ref.progress_dict().items()} == {
        n: sum(1 for (ns, _), pb in expected.items() if ns == n and pb.failed) for n in counts
    }


@pytest.mark.parametrize("batch", [5, 64])
def test_record_many_says_what_record_says(batch: int) -> None:
    for n_var in (1, 3):
        one, _, _, said_one = run_mixed(n_var, None)
        many, _, _, said_many = run_mixed(n_var, batch)
        assert said_many == said_one and said_one.count(False) > 0
        assert one.progress_dict() == many.progress_dict()
        assert list(one.complete) == list(many.complete)
        assert all(
            same_best(a, b) for a, b in zip(one.complete.values(), many.complete.values(), strict=True)
        )


@pytest.mark.parametrize("n_var", [1, 2])
def test_record_many_ignores_duplicates_unknown_pixels_and_foreign_variations(n_var: int) -> None:
    ref = Refinement(ProgressionStrategy.from_spec("8:0"), n_var, 58000.0)
    tasks = ref.next_tasks()
    assert len(tasks) == 768 * n_var
    first = [VariationResult(t.nside, t.pixel, t.variation, 10.0 + t.pixel) for t in tasks[:40]]
    noise = [
        first[0],  # a duplicate within the flush
        VariationResult(8, 768, 0, 1.0),  # off the sphere
        VariationResult(8, -1, 0, 1.0),
        VariationResult(64, 3, 0, 1.0),  # an nside never planned
        VariationResult(8, 5, n_var, 1.0),  # a variation never sent
        VariationResult(8, 5, -1, 1.0),
    ]
    said = ref.record_many(first + noise)
    assert said == [True] * 40 + [False] * len(noise)
    assert ref.record_many(first) == [False] * 40  # duplicates of an earlier flush
    assert ref.record_many([]) == []
    assert ref.progress[8].tasks_done == 40
    assert len(ref.complete) == (40 if n_var == 1 else 20) and len(ref.pending) == 768 - len(ref.complete)
    assert (64, 3) not in ref.pending and (8, 768) not in ref.complete
    one = Refinement(ProgressionStrategy.from_spec("8:0"), n_var, 58000.0)
    one.next_tasks()
    assert [one.record(r) for r in first + noise] == said  # record, one at a time, agrees


def test_failed_fits_never_win_the_best() -> None:
    # the lowest llh values come with failed fits; a NaN llh is a failure even when not flagged
    plan = {8: np.arange(px.npix(8), dtype=np.int64)}
    ref = Refinement(Scripted([8], [plan]), 2, 58000.0)
    tasks = ref.next_tasks()
    results = []
    for t in tasks:
        if t.pixel == 7:
            results.append(VariationResult(8, 7, t.variation, -1e9, {"X": 1.0}, failed=True, error="bad"))
        elif t.pixel == 9 and t.variation == 0:
            results.append(VariationResult(8, 9, 0, -5e8, {}, failed=True))
        elif t.pixel == 9:
            results.append(VariationResult(8, 9, 1, 50.0 + t.variation, {"X": 9.0}))
        elif t.pixel == 11:
            results.append(VariationResult(8, 11, t.variation, math.nan, {}))
        else:
            results.append(VariationResult(8, t.pixel, t.variation, 100.0 + t.pixel + t.variation))
    assert ref.record_many(results) == [True] * len(results)
    best = ref.best()
    assert best is not None and best.key == (8, 9) and best.variation == 1 and best.llh == 51.0
    assert ref.complete[(8, 7)].failed and math.isnan(ref.complete[(8, 7)].llh)
    assert ref.complete[(8, 7)].error == "bad" and ref.complete[(8, 7)].fit == {"X": 1.0}
    assert ref.complete[(8, 11)].failed and ref.complete[(8, 11)].error == "fit failed"
    assert not ref.complete[(8, 9)].failed and ref.complete[(8, 9)].error is None
    assert ref.progress[8].pixels_failed == 2 and ref.next_tasks() == [] and ref.finished
    # every pixel failed: no best at all
    ref = Refinement(Scripted([8], [plan]), 1, 58000.0)
    ref.record_many([VariationResult(8, t.pixel, 0, -1.0, {}, failed=True) for t in ref.next_tasks()])
    assert ref.best() is None and len(ref.complete) == 768


def test_array_plans_are_deduplicated_and_skip_what_is_planned() -> None:
    first = [(16, 5), (16, 3), (16, 5), (16, 1)]  # a list plan, with a repeat, kept in its order
    second = {16: np.array([3, 9, 9, 8, 3, 5, 2], dtype=np.int64), 8: np.array([0])}
    third = {16: np.arange(px.npix(16))}  # the rest of the sphere: the index turns dense
    ref = Refinement(Scripted([8, 16], [first, second, third]), 1, 58000.0)
    sent = []
    while tasks := ref.next_tasks():
        sent.append([(t.nside, t.pixel) for t in tasks])
        ref.record_many([VariationResult(t.nside, t.pixel, 0, 1000.0 - t.pixel, {"X": 1.0}) for t in tasks])
    assert sent[0] == [(16, 5), (16, 3), (16, 1)]
    assert sent[1] == [(16, 9), (16, 8), (16, 2), (8, 0)]
    assert sorted(sent[2]) == [(16, p) for p in range(px.npix(16)) if p not in {1, 2, 3, 5, 8, 9}]
    assert ref.finished and len(ref.complete) == px.npix(16) + 1
    assert all(ref.complete[(16, p)].pixel == p for p in range(px.npix(16)))
    assert ref.best() is not None and ref.best().key == (16, px.npix(16) - 1)  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="outside"):
        Refinement(Scripted([8], [{8: np.array([768])}]), 1, 58000.0).next_plan()


def test_a_whole_sky_step_is_planned_as_arrays() -> None:
    strategy = ProgressionStrategy.from_spec("64:0,128:4")
    ref = Refinement(strategy, 1, 58000.0)
    first = strategy.plan(ref)
    assert isinstance(first, Mapping) and list(first) == [64]
    assert np.array_equal(first[64], np.arange(px.npix(64)))
    plan = ref.next_plan()
    assert len(plan) == px.npix(64) and len(ref.pending) == px.npix(64) and not ref.complete
    tasks = plan.take(10)
    assert [(t.nside, t.pixel) for t in tasks] == [(64, p) for p in range(10)]


def test_restored_results_complete_pixels_and_only_missing_variations_go_out() -> None:
    def results(ref: Refinement) -> list[VariationResult]:
        return [VariationResult(t.nside, t.pixel, t.variation, 5.0 + t.variation) for t in ref.next_tasks()]

    full = Refinement(ProgressionStrategy.from_spec("4:0"), 2, 58000.0)
    stored = results(full)[:61]  # pixels 0-29 whole, pixel 30 variation 0 only
    resumed = Refinement(ProgressionStrategy.from_spec("4:0"), 2, 58000.0)
    resumed.restore(stored + [VariationResult(4, 40, 7, 1.0)])  # a variation never sent: ignored
    tasks = resumed.next_tasks()
    assert (tasks[-1].pixel, tasks[-1].variation) == (30, 1) and len(tasks) == 2 * 192 - 61
    assert len(resumed.complete) == 30 and resumed.progress[4].tasks_done == 61
    assert not resumed.is_open(4, 30, 0) and resumed.is_open(4, 30, 1) and not resumed.is_open(4, 3, 1)
    resumed.restore([VariationResult(4, 31, 0, 1.0)])  # restored after planning: recorded
    assert not resumed.is_open(4, 31, 0) and resumed.pending[(4, 31)] == 1


def test_seeds_come_from_the_nearest_usable_parent() -> None:
    ref = Refinement(Scripted([4, 8, 16], [[(4, 0), (4, 1)], [(8, 4)], [(16, p) for p in range(64)]]), 1, 0.0)
    vertex = {"X": 1.0, "Y": 2.0, "Z": 3.0, "T": 4.0}
    for t in ref.next_tasks():
        ref.record(VariationResult(4, t.pixel, 0, 1.0, vertex if t.pixel == 0 else {**vertex, "T": None}))
    for t in ref.next_tasks():
        ref.record(VariationResult(8, t.pixel, 0, 1.0, {**vertex, "X": 8.0}))
    fine = ref.next_tasks()
    for t in fine:
        p8, p4 = px.parent(16, t.pixel, 8), px.parent(16, t.pixel, 4)
        want = {"x": 8.0, "y": 2.0, "z": 3.0, "t": 4.0} if p8 == 4 else None
        if want is None and p4 == 0:
            want = {"x": 1.0, "y": 2.0, "z": 3.0, "t": 4.0}
        assert t.seed == want == ref.seed_for((16, t.pixel))
    assert {t.seed is None for t in fine} == {True, False}


def held_bytes_per_pixel(nside: int) -> tuple[float, float]:
    """Bytes held by the state per pixel of a whole-sky step: planned, then every result in."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        ref = Refinement(ProgressionStrategy.from_spec(f"{nside}:0"), 1, 58000.0)
        ref.next_plan()  # published elsewhere: the plan itself is let go
        planned = tracemalloc.get_traced_memory()[0] - base
        npix = px.npix(nside)
        fit = {k: 0.5 + i for i, k in enumerate(FIT6)}  # one dict: building results is not measured
        for start in range(0, npix, 8192):
            stop = min(npix, start + 8192)
            ref.record_many([VariationResult(nside, p, 0, 100.0 + p * 1e-3, fit) for p in range(start, stop)])
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert len(ref.complete) == npix and not ref.pending and ref.best().pixel == 0  # type: ignore[union-attr]
    return planned / npix, held / npix


def test_a_whole_sky_step_costs_the_same_few_bytes_per_pixel_at_any_nside() -> None:
    held_bytes_per_pixel(4)  # lazy imports and caches are not the state's
    planned64, held64 = held_bytes_per_pixel(64)
    planned128, held128 = held_bytes_per_pixel(128)
    # measured: 26 bytes a pixel planned and 71 with a six-key fit at both nsides (six float64
    # fit columns are 48 of them); per-pixel objects cost 770-1030
    assert planned64 < 35 and planned128 < 35
    assert held64 < 100 and held128 < 100
    assert abs(held128 / held64 - 1) < 0.1


@pytest.mark.parametrize("batch", [1, 40])
def test_fit_values_read_back_as_they_came_none_nan_and_absent_apart(batch: int) -> None:
    ref = Refinement(Scripted([4], [{4: np.arange(40)}]), 1, 58000.0)
    ref.next_plan()
    fits: list[dict[str, float | None]] = []
    for p in range(40):
        fit: dict[str, float | None] = {"X": p * 0.25, "E_tot": None if p % 3 == 0 else 1e300}
        if p % 5 == 0:
            fit["E_tot"] = math.nan
        if p == 7:
            fit["X"] = "not a number"  # type: ignore[assignment]  # a reco bug: stored as None
        if p == 8:
            fit["X"] = math.inf
        fits.append(fit)
    results = [VariationResult(4, p, 0, 1.0 + p, fits[p]) for p in range(40)]
    for i in range(0, 40, batch):
        ref.record_many(results[i : i + batch])
    for p in range(40):
        got = ref.complete[(4, p)].fit
        want = {**fits[p], "X": None} if p == 7 else fits[p]
        assert same_fit(got, want), (p, got, want)
    assert ref.complete[(4, 15)].fit["E_tot"] is not None and math.isnan(ref.complete[(4, 15)].fit["E_tot"])
    assert ref.complete[(4, 3)].fit["E_tot"] is None and ref.complete[(4, 8)].fit["X"] == math.inf
