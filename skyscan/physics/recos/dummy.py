"""``dummy``: a deterministic stand-in whose minimum is known (for CI and load tests).

-lnL = 1000 * (1 - cos psi) + 10, psi the angle between the pixel and the event's stated
direction (``truth``), converted to the sky at the event's MJD. Smooth, one minimum, exact answer
known. ``options.delay_s`` sleeps per pixel to emulate a slow fit in load tests.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from skyscan.physics.event import Event
from skyscan.physics.recos.base import FitResult, RecoUnsuitable
from skyscan.sky.coordinates import astrometry_context, detector_to_equatorial
from skyscan.wire import Direction, Vertex

LLH_SCALE = 1000.0
LLH_OFFSET = 10.0


@dataclass(frozen=True)
class DummyPrepared:
    ra: float
    dec: float
    total_charge: float
    centre: tuple[float, float, float]
    t0: float


class DummyReco:
    name: ClassVar[str] = "dummy"
    description: ClassVar[str] = "Smooth -lnL around the event's stated (truth) direction; CI and load tests."
    test_only: ClassVar[bool] = True  # not physics: enabled only where the operator asks for test recos

    def __init__(self, delay_s: float = 0.0) -> None:
        if not 0.0 <= delay_s <= 3600.0:
            raise ValueError("delay_s must be within [0, 3600]")
        self.delay_s = delay_s

    @staticmethod
    def warm_up() -> None:
        """Load the astrometry tables ``prepare`` converts the truth with (a warm worker calls this
        before it says ready; the physics recos fit in detector coordinates and never need them)."""
        astrometry_context(51544.5)

    def n_variations(self) -> int:
        return 1

    def check_event(self, event: Event) -> None:
        if event.truth is None:
            raise RecoUnsuitable("the dummy reco needs the event's 'truth' direction (its known minimum)")

    def prepare(self, event: Event) -> DummyPrepared:
        self.check_event(event)
        assert event.truth is not None
        ra, dec = detector_to_equatorial(event.truth.zenith, event.truth.azimuth, event.mjd)
        cols = event.pulse_arrays
        q = cols["charge"]
        centre = tuple(float(np.average(cols[k], weights=q)) for k in ("x", "y", "z"))
        return DummyPrepared(float(ra), float(dec), float(q.sum()), centre, float(cols["time"].min()))

    @staticmethod
    def llh_at(prepared: DummyPrepared, ra: float, dec: float) -> float:
        cos_psi = math.sin(dec) * math.sin(prepared.dec) + math.cos(dec) * math.cos(prepared.dec) * math.cos(
            ra - prepared.ra
        )
        return LLH_SCALE * (1.0 - max(-1.0, min(1.0, cos_psi))) + LLH_OFFSET

    def fit(
        self, prepared: DummyPrepared, direction: Direction, variation: int, seed: Vertex | None
    ) -> FitResult:
        if self.delay_s:
            time.sleep(self.delay_s)
        x, y, z = prepared.centre
        return FitResult(
            llh=self.llh_at(prepared, direction.ra, direction.dec),
            params={
                "X": x,
                "Y": y,
                "Z": z,
                "T": prepared.t0,
                "E_tot": prepared.total_charge,
                "E_in": math.nan,
            },
        )
