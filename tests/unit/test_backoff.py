"""The one retry/backoff helper: delays, and retries that stop when they should."""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from skyinfra.backoff import Backoff, retry_async, retry_sync

log = logging.getLogger("test.backoff")


def test_delays_grow_and_are_capped() -> None:
    b = Backoff(initial_s=0.5, max_s=4.0)
    assert [b.delay(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert list(itertools.islice(b.waits(), 5)) == [0.5, 1.0, 2.0, 4.0, 4.0]


def test_retry_sync_retries_only_the_named_errors() -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("down")
        return "up"

    assert retry_sync("flaky", flaky, (ConnectionError,), Backoff(0.0, 0.0), log) == "up"
    assert len(calls) == 3

    def broken() -> None:
        raise KeyError("not retried")

    with pytest.raises(KeyError):
        retry_sync("broken", broken, (ConnectionError,), Backoff(0.0, 0.0), log)


def test_retry_async_gives_up_after_max_wait() -> None:
    calls = []

    async def down() -> None:
        calls.append(1)
        raise ConnectionError("still down")

    with pytest.raises(ConnectionError):
        asyncio.run(retry_async("down", down, (ConnectionError,), Backoff(0.01, 0.01), log, max_wait_s=0.025))
    assert len(calls) == 4  # the first try, then three retries until 0.03 s >= 0.025 s waited
