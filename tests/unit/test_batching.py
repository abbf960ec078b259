"""The batch size follows the measured fit time; the window bounds what is outstanding."""

from __future__ import annotations

import pytest

from server.batching import BatchPolicy, BatchSizer


def test_single_pixels_until_a_fit_time_is_measured() -> None:
    sizer = BatchSizer(BatchPolicy(), workers=2)
    assert sizer.batch_size(unpublished=10_000) == 1
    assert sizer.window(1) == 1 * 2 * 4


def test_a_message_carries_about_the_target_fit_time() -> None:
    sizer = BatchSizer(BatchPolicy(target_message_s=0.25, max_batch=256), workers=2)
    sizer.observe(fit_seconds=0.8, pixels=100)  # 8 ms per pixel
    assert sizer.fit_s == pytest.approx(0.008)
    assert sizer.batch_size(unpublished=10_000) == 31  # 0.25 s / 8 ms
    sizer.observe(fit_seconds=0.0, pixels=10)  # much faster now: the mean moves, it does not jump
    assert sizer.fit_s == pytest.approx(0.008 * 0.7)
    assert sizer.batch_size(unpublished=10_000) == 44


def test_fast_fits_are_capped_and_slow_fits_go_alone() -> None:
    fast = BatchSizer(BatchPolicy(max_batch=256), workers=2)
    fast.observe(fit_seconds=1e-5, pixels=1)
    assert fast.batch_size(unpublished=100_000) == 256
    slow = BatchSizer(BatchPolicy(), workers=2)
    slow.observe(fit_seconds=3.0, pixels=1)
    assert slow.batch_size(unpublished=100_000) == 1


def test_the_tail_of_a_step_is_cut_into_small_messages_for_every_worker() -> None:
    sizer = BatchSizer(BatchPolicy(max_batch=256, tail_messages_per_worker=2), workers=4)
    sizer.observe(fit_seconds=1e-5, pixels=1)
    assert sizer.batch_size(unpublished=800) == 100  # 800 pixels left: 2 messages for each of 4 workers
    assert sizer.batch_size(unpublished=7) == 1
    assert sizer.batch_size(unpublished=0) == 1


def test_the_window_is_a_few_messages_per_worker_and_bounded() -> None:
    policy = BatchPolicy(messages_per_worker=4, max_outstanding=1000)
    sizer = BatchSizer(policy, workers=2)
    assert sizer.window(30) == 240
    sizer.saw_workers(100)  # more workers answered than were asked for at the start
    assert sizer.window(30) == 1000
    assert sizer.window(2000) == 2000  # never below one message


def test_nonsense_measurements_are_ignored() -> None:
    sizer = BatchSizer(BatchPolicy(), workers=1)
    sizer.observe(float("nan"), 3)
    sizer.observe(-1.0, 3)
    sizer.observe(1.0, 0)
    assert sizer.fit_s is None
