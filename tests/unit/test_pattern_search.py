"""The batched compass search: the same walk as a plain search that evaluates every stencil point,
at fewer evaluations, never evaluating a point twice or outside the feasible region."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from skyscan.physics.recos.pattern_search import AXES, CUBE, IMPROVEMENT, pattern_search

PASSES = ((AXES, 48.0), (CUBE, 4.0))


def plain_search(objective, start, start_value, passes, min_step, max_iterations, feasible):
    """The search as it was written before it kept values: every stencil point evaluated."""
    centre, best, iterations, evaluations = np.array(start, float), float(start_value), 0, 0
    for stencil, first_step in passes:
        steps = np.full(3, first_step)
        while iterations < max_iterations:
            iterations += 1
            points = centre + stencil * steps
            values = objective(points)
            values[~feasible(points)] = np.inf
            evaluations += len(points)
            k = int(np.argmin(values))
            if values[k] < best - IMPROVEMENT:
                centre, best = points[k].copy(), float(values[k])
            else:
                steps *= 0.5
                if steps[0] < min_step:
                    break
    return centre, best, iterations, evaluations


def rugged(minimum: np.ndarray, ripple: float):
    """A tilted valley with ripples: local minima and diagonal moves, like a track likelihood."""

    def objective(points: np.ndarray) -> np.ndarray:
        d = points - minimum
        valley = (d[:, 0] - 0.5 * d[:, 2]) ** 2 + 2.0 * d[:, 1] ** 2 + 0.1 * d[:, 2] ** 2
        return valley + ripple * np.sin(d[:, 0] / 3.0) * np.cos(d[:, 2] / 5.0)

    return objective


def bounded(radius: float, max_shift: float):
    def feasible(points: np.ndarray) -> np.ndarray:
        return (points[:, 0] ** 2 + points[:, 1] ** 2 <= radius**2) & (np.abs(points[:, 2]) <= max_shift)

    return feasible


@settings(max_examples=60, deadline=None)
@given(
    minimum=st.lists(st.floats(-400.0, 400.0), min_size=3, max_size=3),
    start_t=st.floats(-50.0, 50.0),
    ripple=st.floats(0.0, 40.0),
    radius=st.floats(50.0, 300.0),
    max_iterations=st.integers(5, 120),
)
def test_same_walk_as_the_plain_search_at_fewer_evaluations(minimum, start_t, ripple, radius, max_iterations):
    objective = rugged(np.array(minimum), ripple)
    feasible = bounded(radius, 1000.0)
    start = np.array([0.0, 0.0, start_t])
    start_value = float(objective(start[None])[0])
    seen: list[tuple[float, ...]] = []

    def recording(points: np.ndarray) -> np.ndarray:
        assert feasible(points).all(), "evaluated a point outside the feasible region"
        seen.extend(map(tuple, points.tolist()))
        return objective(points)

    result = pattern_search(recording, start, start_value, PASSES, 0.25, max_iterations, feasible)
    point, value, iterations, evaluations = plain_search(
        objective, start, start_value, PASSES, 0.25, max_iterations, feasible
    )
    assert np.array_equal(result.point, point)
    assert result.value == value
    assert result.iterations == iterations
    assert result.converged == (iterations < max_iterations)
    assert len(seen) == len(set(seen)) == result.evaluations <= evaluations


def test_a_walk_along_a_valley_reuses_points_and_finds_the_minimum():
    minimum = np.array([37.0, -21.0, 12.0])
    result = pattern_search(
        rugged(minimum, 0.0), np.zeros(3), float(rugged(minimum, 0.0)(np.zeros((1, 3)))[0]),
        PASSES, 0.25, 120, bounded(300.0, 1000.0),
    )  # fmt: skip
    _, _, _, plain_evaluations = plain_search(
        rugged(minimum, 0.0), np.zeros(3), float(rugged(minimum, 0.0)(np.zeros((1, 3)))[0]),
        PASSES, 0.25, 120, bounded(300.0, 1000.0),
    )  # fmt: skip
    assert np.abs(result.point - minimum).max() < 1.0
    assert result.converged
    assert result.evaluations < 0.9 * plain_evaluations


def test_the_bound_stops_the_walk_without_evaluating_beyond_it():
    # The minimum lies 500 m out: the walk ends on the 100 m bound and never looks past it.
    objective = rugged(np.array([500.0, 0.0, 0.0]), 0.0)
    feasible = bounded(100.0, 1000.0)
    outside: list[bool] = []

    def recording(points: np.ndarray) -> np.ndarray:
        outside.extend((~feasible(points)).tolist())
        return objective(points)

    result = pattern_search(
        recording, np.zeros(3), float(objective(np.zeros((1, 3)))[0]), PASSES, 0.25, 120, feasible
    )
    assert 99.0 < np.hypot(*result.point[:2]) <= 100.0
    assert not any(outside)
