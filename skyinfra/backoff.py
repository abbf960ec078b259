"""The one retry/backoff helper every shell uses (server, worker, reconciler, webhooks).

Capped exponential delays: ``Backoff(initial_s, max_s).delay(n)`` is the wait before retry ``n``
(0-based). :func:`retry_async` and :func:`retry_sync` retry an operation on the given errors,
logging each retry, until it succeeds or the total wait passes ``max_wait_s``; :meth:`Backoff.waits`
drives loops that must keep going (reconnect loops) and reset after a success.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    initial_s: float = 0.2
    max_s: float = 10.0
    factor: float = 2.0

    def delay(self, attempt: int) -> float:
        """The wait before retry ``attempt`` (0 for the first retry)."""
        return min(self.initial_s * self.factor ** max(0, attempt), self.max_s)

    def waits(self) -> Iterator[float]:
        """Endless delays: initial, initial*factor, ... capped at max_s."""
        attempt = 0
        while True:
            yield self.delay(attempt)
            attempt += 1


async def retry_async(
    what: str,
    op: Callable[[], Awaitable[T]],
    retry_on: tuple[type[BaseException], ...],
    backoff: Backoff,
    log: logging.Logger,
    max_wait_s: float | None = None,
) -> T:
    """Await ``op()`` until it does not raise ``retry_on``; re-raise once ``max_wait_s`` is spent."""
    waited = 0.0
    for delay in backoff.waits():
        try:
            return await op()
        except retry_on as err:
            if max_wait_s is not None and waited >= max_wait_s:
                raise
            log.warning("%s failed, retrying in %.1fs: %s", what, delay, type(err).__name__)
            await asyncio.sleep(delay)
            waited += delay
    raise AssertionError("unreachable")  # pragma: no cover


def retry_sync(
    what: str,
    op: Callable[[], T],
    retry_on: tuple[type[BaseException], ...],
    backoff: Backoff,
    log: logging.Logger,
    max_wait_s: float | None = None,
) -> T:
    """The blocking twin of :func:`retry_async` (the worker is a plain blocking process)."""
    waited = 0.0
    for delay in backoff.waits():
        try:
            return op()
        except retry_on as err:
            if max_wait_s is not None and waited >= max_wait_s:
                raise
            log.warning("%s failed, retrying in %.1fs: %s", what, delay, type(err).__name__)
            time.sleep(delay)
            waited += delay
    raise AssertionError("unreachable")  # pragma: no cover
