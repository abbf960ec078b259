"""``crash-dummy``: the dummy likelihood with chosen misbehaviour, for fault-injection tests.

Per RING pixel at ``nside`` (default 8; pixels of other nsides map to the one containing
them): ``raise_pixels`` raise inside the fit; ``hang_pixels`` never return (the worker's
per-pixel timeout must kill them); ``kill_worker_pixels`` kill the worker process that runs
them (a poison task: redelivered until the delivery limit dead-letters it). Everything else
behaves like ``dummy``.
"""

from __future__ import annotations

import math
import os
import signal
import time
from typing import ClassVar

import healpy as hp

from skyscan.physics.recos.base import FitResult
from skyscan.physics.recos.dummy import DummyPrepared, DummyReco
from skyscan.wire import Direction, Vertex


class CrashDummyError(RuntimeError):
    pass


class CrashDummyReco(DummyReco):
    name: ClassVar[str] = "crash-dummy"
    description: ClassVar[str] = (
        "dummy that raises, hangs or kills its worker on chosen pixels (fault tests)."
    )

    def __init__(
        self,
        delay_s: float = 0.0,
        raise_pixels: list[int] | None = None,
        hang_pixels: list[int] | None = None,
        kill_worker_pixels: list[int] | None = None,
        nside: int = 8,
    ) -> None:
        super().__init__(delay_s)
        self.nside = nside
        self.raise_pixels = set(raise_pixels or [])
        self.hang_pixels = set(hang_pixels or [])
        self.kill_worker_pixels = set(kill_worker_pixels or [])

    def fit(
        self, prepared: DummyPrepared, direction: Direction, variation: int, seed: Vertex | None
    ) -> FitResult:
        pixel = self._pixel_of(direction)
        if pixel in self.raise_pixels:
            raise CrashDummyError(f"crash-dummy raises on pixel {pixel}")
        if pixel in self.hang_pixels:
            while True:
                time.sleep(3600)
        if pixel in self.kill_worker_pixels:
            os.kill(os.getppid(), signal.SIGKILL)  # the worker dies mid-task; the task comes back
            time.sleep(3600)
        return super().fit(prepared, direction, variation, seed)

    def _pixel_of(self, direction: Direction) -> int:
        return int(hp.ang2pix(self.nside, math.pi / 2 - direction.dec, direction.ra))
