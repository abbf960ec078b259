from __future__ import annotations

import math

import healpy as hp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skyscan.physics.recos.dummy import DummyPrepared, DummyReco
from skyscan.refinement.fits import VariationResult, best_of, global_best
from skyscan.refinement.progression import ProgressionStrategy, parse_progression
from skyscan.refinement.state import Refinement
from skyscan.sky import pixels as px

TRUE_RA, TRUE_DEC = 1.0, -0.3
PREP = DummyPrepared(TRUE_RA, TRUE_DEC, 1.0, (0.0, 0.0, 0.0), 0.0)


def run(spec: str, n_var: int = 1, fail=lambda t: False) -> tuple[Refinement, list]:  # type: ignore[no-untyped-def]
    ref = Refinement(ProgressionStrategy.from_spec(spec), n_var, 58000.0)
    sent = []
    tasks = ref.next_tasks()
    while tasks:
        sent.extend(tasks)
        for t in tasks:
            llh = math.nan if fail(t) else DummyReco.llh_at(PREP, t.ra, t.dec) + 0.01 * t.variation
            ref.record(
                VariationResult(
                    t.nside,
                    t.pixel,
                    t.variation,
                    llh,
                    {"X": 1.0, "Y": 2.0, "Z": 3.0, "T": 4.0},
                    failed=fail(t),
                )
            )
        tasks = ref.next_tasks()
    return ref, sent


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("8:3", "first step"),
        ("8:0,6:4", "power of two"),
        ("8:0,64:0", "positive extension"),
        ("64:0,8:4", "increase"),
        ("", "empty"),
        ("8:0,x:1", "nside:extension"),
        ("8:0,64:12,64:4", "increase"),
    ],
)
def test_bad_progressions_are_rejected(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_progression(spec)


def test_progression_parses_anchor_default() -> None:
    steps = parse_progression("8:0,64:12,512:24")
    assert [(s.nside, s.extension) for s in steps] == [(8, 0), (64, 12), (512, 24)]


def test_full_progression_finds_the_minimum_and_is_deterministic() -> None:
    ref1, sent1 = run("8:0,64:12,512:24")
    ref2, sent2 = run("8:0,64:12,512:24")
    assert [(t.nside, t.pixel) for t in sent1] == [(t.nside, t.pixel) for t in sent2]
    assert ref1.finished
    best = ref1.best()
    assert best is not None and best.nside == 512
    assert best.pixel == int(px.radec_pixel(512, TRUE_RA, TRUE_DEC)) or math.degrees(
        hp.rotator.angdist([np.pi / 2 - best.radec[1], best.radec[0]], [np.pi / 2 - TRUE_DEC, TRUE_RA])[0]
    ) < hp.max_pixrad(512, degrees=True)
    counts = {n: p.pixels_done for n, p in ref1.progress.items()}
    assert counts[8] == 768
    assert 9 * 64 <= counts[64] <= 18 * 64
    assert 21 * 64 <= counts[512] <= 60 * 64
    assert len({(t.nside, t.pixel, t.variation) for t in sent1}) == len(sent1)  # nothing sent twice


def test_variations_fold_to_the_minimum() -> None:
    ref, sent = run("8:0", n_var=3)
    assert len(sent) == 768 * 3
    assert all(pb.variation == 0 for pb in ref.complete.values())  # variation 0 has the lowest llh


def test_failed_fits_never_become_the_best() -> None:
    target = int(px.radec_pixel(8, TRUE_RA, TRUE_DEC))
    ref, _ = run("8:0,64:12", fail=lambda t: t.nside == 8 and t.pixel == target)
    assert ref.complete[(8, target)].failed
    best = ref.best()
    assert best is not None and not best.failed and math.isfinite(best.llh)


def test_all_failed_finishes_without_best() -> None:
    ref, sent = run("8:0,64:12", fail=lambda t: True)
    assert ref.finished and ref.best() is None and len(sent) == 768


def test_best_of_is_nan_safe_whatever_the_order() -> None:
    rs = [
        VariationResult(8, 1, 0, math.nan, failed=True),
        VariationResult(8, 1, 1, 5.0),
        VariationResult(8, 1, 2, 3.0),
    ]
    for order in (rs, rs[::-1], [rs[1], rs[0], rs[2]]):
        assert best_of(order).llh == 3.0 and best_of(order).variation == 2


def test_global_best_skips_nan_first() -> None:
    from skyscan.refinement.fits import PixelBest

    complete = {(8, 0): PixelBest(8, 0, math.nan, 0, {}, True), (8, 1): PixelBest(8, 1, 2.0, 0, {}, False)}
    assert global_best(complete).pixel == 1  # type: ignore[union-attr]


@settings(max_examples=10, deadline=None)
@given(stop_after=st.integers(min_value=0, max_value=1500))
def test_resume_publishes_only_missing_tasks(stop_after: int) -> None:
    _, sent_full = run("8:0,64:12")
    full = {(t.nside, t.pixel, t.variation) for t in sent_full}
    # first run: stop after some results
    ref = Refinement(ProgressionStrategy.from_spec("8:0,64:12"), 1, 58000.0)
    stored: list[VariationResult] = []
    tasks = ref.next_tasks()
    while tasks and len(stored) < stop_after:
        for t in tasks:
            if len(stored) >= stop_after:
                break
            r = VariationResult(t.nside, t.pixel, 0, DummyReco.llh_at(PREP, t.ra, t.dec), {})
            ref.record(r)
            stored.append(r)
        tasks = ref.next_tasks()
    # second run resumes from the stored results
    resumed = Refinement(ProgressionStrategy.from_spec("8:0,64:12"), 1, 58000.0)
    resumed.restore(stored)
    republished: set = set()
    tasks = resumed.next_tasks()
    while tasks:
        for t in tasks:
            republished.add((t.nside, t.pixel, t.variation))
            resumed.record(VariationResult(t.nside, t.pixel, 0, DummyReco.llh_at(PREP, t.ra, t.dec), {}))
        tasks = resumed.next_tasks()
    done_before = {(r.nside, r.pixel, r.variation) for r in stored}
    assert not (republished & done_before)  # nothing finished is fitted again
    assert republished | done_before == full  # and together they are the same scan


def test_duplicates_and_unknown_results_are_ignored() -> None:
    ref = Refinement(ProgressionStrategy.from_spec("8:0"), 1, 58000.0)
    t = ref.next_tasks()[0]
    r = VariationResult(t.nside, t.pixel, 0, 1.0)
    assert ref.record(r) is True
    assert ref.record(r) is False
    assert ref.record(VariationResult(64, 0, 0, 1.0)) is False
    assert ref.progress[8].tasks_done == 1


def test_finer_pixels_are_seeded_from_their_parent() -> None:
    ref, sent = run("8:0,64:12")
    fine = [t for t in sent if t.nside == 64]
    assert fine and all(t.seed == {"x": 1.0, "y": 2.0, "z": 3.0, "t": 4.0} for t in fine)
    assert all(t.seed is None for t in sent if t.nside == 8)
