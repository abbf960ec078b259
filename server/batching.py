"""How many pixels go in one task message, and how many may be outstanding: adaptive batching.

One message and one broker round trip per pixel is what costs when fits take milliseconds, so a
message carries about ``target_message_s`` of work: the batch size follows the measured fit time
(what workers report per pixel, averaged). Two limits keep every worker busy and a step's tail
short: the batch never takes more than a share of the step's unpublished pixels that leaves each
worker several messages, and the pixels outstanding (published, no result yet) stay within a window
of a few messages per worker, so the broker and the server hold a bounded number of tasks however
large the step is (the rest is published as results come back).

Pure: the scan server feeds it measurements and asks it for sizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class BatchPolicy:
    target_message_s: float = 0.25
    max_batch: int = 256
    messages_per_worker: int = 4  # in flight per worker: its prefetch (2) plus as many waiting
    tail_messages_per_worker: int = 2  # near a step's end: at least this many messages each
    max_outstanding: int = 20_000  # pixels published and unanswered, whatever the workers


class BatchSizer:
    """Batch size and outstanding window from the measured fit time and the workers seen."""

    # weight of a new measurement in the running mean of the per-pixel fit time
    SMOOTHING = 0.3

    def __init__(self, policy: BatchPolicy, workers: int) -> None:
        self.policy = policy
        self.workers = max(1, workers)
        self.fit_s: float | None = None  # per pixel, as workers measure it (fit only)

    def observe(self, fit_seconds: float, pixels: int) -> None:
        """Fold in the fit time of ``pixels`` results (e.g. one result message)."""
        if pixels <= 0 or not math.isfinite(fit_seconds) or fit_seconds < 0:
            return
        per_pixel = fit_seconds / pixels
        if self.fit_s is None:
            self.fit_s = per_pixel
        else:
            self.fit_s += self.SMOOTHING * (per_pixel - self.fit_s)

    def saw_workers(self, n: int) -> None:
        """More workers than requested answered (added workers): widen the window for them."""
        self.workers = max(self.workers, n)

    def batch_size(self, unpublished: int) -> int:
        """Pixels for the next task message when ``unpublished`` pixels of the plan remain."""
        p = self.policy
        # nothing measured yet: single pixels until the first results say more
        by_time = 1 if self.fit_s is None else int(p.target_message_s / max(self.fit_s, 1e-6))
        tail = math.ceil(max(1, unpublished) / (self.workers * p.tail_messages_per_worker))
        return max(1, min(by_time, tail, p.max_batch))

    def window(self, batch: int) -> int:
        """Pixels that may be outstanding at once."""
        p = self.policy
        return max(batch, min(p.max_outstanding, batch * self.workers * p.messages_per_worker))
