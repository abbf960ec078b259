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

    def estimated_pixels(self) -> list[tuple[int, int]]:
        """(nside, pixels) per step: what the strategy expects to fit, before any result (the API
        refuses a scan whose estimate is over its task limits)."""
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
        pb = best_of(self._known.pop(key).values())
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
        """Tasks to publish now (possibly none while results are outstanding); see :meth:`next_plan`."""
        return self.next_plan().take(None)

    def next_plan(self) -> TaskPlan:
        """The tasks to publish now, to be taken in chunks (possibly none while results are outstanding).

        Pixels whose variations are all known already (stored results on resume) complete at once,
        and planning repeats, so a resumed scan replays finished rounds without publishing them.
        """
        groups: list[tuple[int, np.ndarray, tuple[int, ...]]] = []
        while True:
            planned = [
                k
                for k in dict.fromkeys(self.strategy.plan(self))
                if k not in self._complete and k not in self._pending
            ]
            if not planned:
                break
            fresh: dict[tuple[int, tuple[int, ...]], list[int]] = defaultdict(list)
            for key in planned:
                known = self._known.get(key, {})
                missing = tuple(v for v in range(self.n_variations) if v not in known)
                prog = self.progress.setdefault(key[0], NsideProgress())
                prog.tasks_sent += self.n_variations
                prog.tasks_done += self.n_variations - len(missing)
                if missing:
                    self._pending[key] = len(missing)
                    fresh[(key[0], missing)].append(key[1])
                else:
                    self._complete_pixel(key)
            groups.extend((n, np.asarray(pix, dtype=np.int64), v) for (n, v), pix in fresh.items())
            if fresh:
                break
        plan = TaskPlan(self, groups)
        if not plan and not self._pending:
            self.finished = True
        return plan

    def _specs(self, nside: int, pixels: np.ndarray, variations: tuple[int, ...]) -> list[TaskSpec]:
        ra, dec = px.pixel_radec(nside, pixels)
        zen, az = equatorial_to_detector(ra, dec, self.mjd)
        specs = []
        for i, p in enumerate(pixels.tolist()):
            seed = self.seed_for((nside, p))
            d = (float(ra[i]), float(dec[i]), float(zen[i]), float(az[i]))
            specs.extend(TaskSpec(nside, p, v, *d, seed) for v in variations)
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


class TaskPlan:
    """Tasks planned by one :meth:`Refinement.next_plan`, handed out in chunks.

    Held as arrays of pixels per (nside, missing variations); directions and seeds are computed for
    each chunk as it is taken, so a whole-sky step is never held as task objects at once. Seeds
    come from parents that completed before the plan was made, so when a chunk is taken does not
    change it.
    """

    def __init__(self, refinement: Refinement, groups: list[tuple[int, np.ndarray, tuple[int, ...]]]) -> None:
        self._ref = refinement
        self._groups = [g for g in groups if len(g[1])]
        self._pos = 0  # pixels of the first group already taken
        self._left = sum(len(pix) * len(v) for _, pix, v in self._groups)

    def __len__(self) -> int:
        return self._left

    def take(self, n: int | None) -> list[TaskSpec]:
        """The next ``n`` tasks or a little more (whole pixels), all of them for None."""
        out: list[TaskSpec] = []
        while self._groups and (n is None or len(out) < n):
            nside, pixels, variations = self._groups[0]
            want = len(pixels) if n is None else -(-(n - len(out)) // len(variations))
            chunk = pixels[self._pos : self._pos + want]
            out.extend(self._ref._specs(nside, chunk, variations))
            self._pos += len(chunk)
            if self._pos >= len(pixels):
                self._groups.pop(0)
                self._pos = 0
        self._left -= len(out)
        return out
