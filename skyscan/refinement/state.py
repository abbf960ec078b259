"""The refinement state machine: given the results so far, which pixels to fit next, and when done.

Pure and deterministic. The scan server drives it over RabbitMQ and the local scan drives it over
a process pool: one algorithm, two I/O shells.

* A *strategy* decides which (nside, pixel) pairs to fit, from a read-only view of the state.
* :class:`Refinement` expands pixels into per-variation tasks, folds variation results into one
  best result per pixel (NaN-safe: a failed fit never wins), seeds finer pixels from their coarser
  parent's fit, and replays stored results on resume so only missing tasks are published.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from skyscan.refinement.fits import FIT_VERTEX_KEYS, PixelBest, PixelKey, VariationResult, best_of
from skyscan.sky import pixels as px
from skyscan.sky.coordinates import equatorial_to_detector


class RefinementView(Protocol):
    @property
    def complete(self) -> Mapping[PixelKey, PixelBest]: ...
    @property
    def pending(self) -> Mapping[PixelKey, int]: ...  # pixel -> variations outstanding
    def best(self) -> PixelBest | None: ...


class Strategy(Protocol):
    """Decides which pixels to fit next. Must be deterministic given the view."""

    name: str

    @property
    def nsides(self) -> list[int]: ...

    def plan(self, view: RefinementView) -> list[PixelKey]: ...

    def describe(self) -> str: ...

    def nsides_spec(self) -> str:
        """The nsides in the form ``from_spec`` reads back (what a scan record stores)."""
        ...


# --------------------------------------------------------------------------------------------
# Driver-facing state machine
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskSpec:
    """One task to publish: a pixel variation with its direction and optional vertex seed."""

    nside: int
    pixel: int
    variation: int
    ra: float
    dec: float
    zenith: float
    azimuth: float
    seed: Mapping[str, float] | None


@dataclass
class NsideProgress:
    tasks_sent: int = 0
    tasks_done: int = 0
    pixels_done: int = 0
    pixels_failed: int = 0


class Refinement:
    """Holds what was sent and what came back; asks the strategy for more until it is done."""

    def __init__(self, strategy: Strategy, n_variations: int, mjd: float) -> None:
        if n_variations < 1:
            raise ValueError("a reco needs at least one variation")
        self.strategy = strategy
        self.n_variations = n_variations
        self.mjd = mjd
        self._complete: dict[PixelKey, PixelBest] = {}
        self._pending: dict[PixelKey, int] = {}
        self._known: dict[PixelKey, dict[int, VariationResult]] = defaultdict(dict)
        self._best: PixelBest | None = None
        self.progress: dict[int, NsideProgress] = {n: NsideProgress() for n in strategy.nsides}
        self.finished = False

    # -- RefinementView -----------------------------------------------------------------------
    @property
    def complete(self) -> Mapping[PixelKey, PixelBest]:
        return self._complete

    @property
    def pending(self) -> Mapping[PixelKey, int]:
        return self._pending

    def best(self) -> PixelBest | None:
        return self._best

    def is_open(self, nside: int, pixel: int, variation: int) -> bool:
        """Whether a result for this task is still expected (planned and not answered yet)."""
        key = (nside, pixel)
        return key in self._pending and variation not in self._known.get(key, {})

    # -- inputs --------------------------------------------------------------------------------
    def restore(self, results: Iterable[VariationResult]) -> None:
        """Load results stored by an earlier run (resume); call :meth:`next_tasks` afterwards."""
        for r in results:
            self._known[(r.nside, r.pixel)].setdefault(r.variation, r)

    def record(self, result: VariationResult) -> bool:
        """Take one result. Returns False for a duplicate or a task this state never sent."""
        key = (result.nside, result.pixel)
        if key not in self._pending or result.variation in self._known[key]:
            return False
        if not 0 <= result.variation < self.n_variations:
            return False
        self._known[key][result.variation] = result
        self.progress.setdefault(result.nside, NsideProgress()).tasks_done += 1
        self._pending[key] -= 1
        if self._pending[key] == 0:
            del self._pending[key]
            self._complete_pixel(key)
        return True

    def _complete_pixel(self, key: PixelKey) -> None:
        pb = best_of(self._known[key].values())
        self._complete[key] = pb
        prog = self.progress.setdefault(key[0], NsideProgress())
        prog.pixels_done += 1
        prog.pixels_failed += int(pb.failed)
        if not pb.failed and (
            self._best is None
            or (pb.llh, -pb.nside, pb.pixel) < (self._best.llh, -self._best.nside, self._best.pixel)
        ):
            self._best = pb

    # -- outputs -------------------------------------------------------------------------------
    def next_tasks(self) -> list[TaskSpec]:
        """Tasks to publish now (possibly none while results are outstanding).

        Pixels whose variations are all known already (stored results on resume) complete at once,
        and planning repeats, so a resumed scan replays finished rounds without publishing them.
        """
        out: list[TaskSpec] = []
        while True:
            planned = [
                k
                for k in dict.fromkeys(self.strategy.plan(self))
                if k not in self._complete and k not in self._pending
            ]
            if not planned:
                break
            fresh: list[tuple[PixelKey, list[int]]] = []
            for key in planned:
                known = self._known.get(key, {})
                missing = [v for v in range(self.n_variations) if v not in known]
                prog = self.progress.setdefault(key[0], NsideProgress())
                prog.tasks_sent += self.n_variations
                prog.tasks_done += self.n_variations - len(missing)
                if missing:
                    self._pending[key] = len(missing)
                    fresh.append((key, missing))
                else:
                    self._complete_pixel(key)
            out.extend(self._specs(fresh))
            if fresh:
                break
        if not out and not self._pending:
            self.finished = True
        return out

    def _specs(self, fresh: list[tuple[PixelKey, list[int]]]) -> list[TaskSpec]:
        if not fresh:
            return []
        by_nside: dict[int, list[int]] = defaultdict(list)
        for (nside, pixel), _ in fresh:
            by_nside[nside].append(pixel)
        dirs: dict[PixelKey, tuple[float, float, float, float]] = {}
        for nside, pix in by_nside.items():
            ra, dec = px.pixel_radec(nside, np.asarray(pix))
            zen, az = equatorial_to_detector(ra, dec, self.mjd)
            for i, p in enumerate(pix):
                dirs[(nside, p)] = (float(ra[i]), float(dec[i]), float(zen[i]), float(az[i]))
        specs = []
        for key, variations in fresh:
            seed = self.seed_for(key)
            ra, dec, zen, az = dirs[key]
            specs.extend(TaskSpec(key[0], key[1], v, ra, dec, zen, az, seed) for v in variations)
        return specs

    def seed_for(self, key: PixelKey) -> dict[str, float] | None:
        """Vertex seed from the nearest coarser completed pixel containing this one."""
        nside, pixel = key
        for coarse in sorted((n for n in self.strategy.nsides if n < nside), reverse=True):
            parent = self._complete.get((coarse, px.parent(nside, pixel, coarse)))
            if parent is None or parent.failed:
                continue
            values = [parent.fit.get(k) for k in FIT_VERTEX_KEYS]
            if all(v is not None and math.isfinite(v) for v in values):
                return dict(zip(("x", "y", "z", "t"), (float(v) for v in values), strict=True))  # type: ignore[arg-type]
        return None

    def progress_dict(self) -> dict[str, dict[str, int]]:
        return {str(n): vars(p).copy() for n, p in sorted(self.progress.items())}
