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
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from skyscan import pixels as px
from skyscan.coordinates import equatorial_to_detector

PixelKey = tuple[int, int]  # (nside, RING pixel)

DEFAULT_PROGRESSION = "8:0,64:12,512:24"


# --------------------------------------------------------------------------------------------
# nside:extension progression (Skymap Scanner's meaning)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NsideStep:
    nside: int
    extension: int  # area of the refined disc around the best fit, in pixels of the *previous* nside


def parse_progression(
    spec: str | Iterable[str | int | tuple[int, int]], max_nside: int = 1 << 29
) -> list[NsideStep]:
    """Parse ``"8:0,64:12,512:24"`` (or a list of ``"n:e"`` items / (n, e) pairs) and validate it.

    Rules: powers of two, strictly ascending, first extension 0, later extensions positive.
    """
    items: list[str | int | tuple[int, int]]
    items = [s for s in spec.replace(" ", ",").split(",") if s] if isinstance(spec, str) else list(spec)
    if not items:
        raise ValueError("the nside progression is empty")
    steps: list[NsideStep] = []
    for i, item in enumerate(items):
        if isinstance(item, tuple | list):
            nside, ext = int(item[0]), int(item[1])
        elif isinstance(item, int) and not isinstance(item, bool):
            nside, ext = item, 0 if i == 0 else -1
        else:
            text = str(item)
            head, sep, tail = text.partition(":")
            try:
                nside = int(head)
                ext = int(tail) if sep else (0 if i == 0 else -1)
            except ValueError:
                raise ValueError(f"progression item {text!r} is not 'nside:extension'") from None
        px.check_nside(nside, max_nside)
        if i == 0 and ext != 0:
            raise ValueError(f"the first step ({nside}) must have extension 0 (the whole sky), got {ext}")
        if i > 0:
            if ext <= 0:
                raise ValueError(f"step {nside} needs a positive extension ('{nside}:12'), got {ext}")
            if nside <= steps[-1].nside:
                raise ValueError(f"nsides must increase strictly: {steps[-1].nside} then {nside}")
        steps.append(NsideStep(nside, ext))
    return steps


def format_progression(steps: Iterable[NsideStep]) -> str:
    return ",".join(f"{s.nside}:{s.extension}" for s in steps)


# --------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------

FIT_VERTEX_KEYS = ("X", "Y", "Z", "T")


@dataclass(frozen=True)
class VariationResult:
    """One fit result as the state machine needs it (the wire PixelResult maps onto this)."""

    nside: int
    pixel: int
    variation: int
    llh: float  # NaN when failed
    fit: Mapping[str, float | None] = field(default_factory=dict)
    failed: bool = False
    error: str | None = None


@dataclass(frozen=True)
class PixelBest:
    """The best variation of a completed pixel; llh is NaN when every variation failed."""

    nside: int
    pixel: int
    llh: float
    variation: int
    fit: Mapping[str, float | None]
    failed: bool
    error: str | None = None

    @property
    def key(self) -> PixelKey:
        return (self.nside, self.pixel)

    @property
    def radec(self) -> tuple[float, float]:
        ra, dec = px.pixel_radec(self.nside, self.pixel)
        return float(ra), float(dec)


def best_of(results: Iterable[VariationResult]) -> PixelBest:
    """NaN-safe minimum over variations (ties go to the lower variation index)."""
    ordered = sorted(results, key=lambda r: r.variation)
    finite = [r for r in ordered if not r.failed and math.isfinite(r.llh)]
    if finite:
        r = min(finite, key=lambda r: (r.llh, r.variation))
        return PixelBest(r.nside, r.pixel, r.llh, r.variation, dict(r.fit), False)
    r = ordered[0]
    errors = "; ".join(sorted({x.error for x in ordered if x.error}))
    return PixelBest(r.nside, r.pixel, math.nan, r.variation, dict(r.fit), True, errors or "fit failed")


def global_best(complete: Mapping[PixelKey, PixelBest]) -> PixelBest | None:
    """Lowest finite llh across all nsides; ties prefer the finer nside, then the lower pixel."""
    best: PixelBest | None = None
    for pb in complete.values():
        if pb.failed or not math.isfinite(pb.llh):
            continue
        if best is None or (pb.llh, -pb.nside, pb.pixel) < (best.llh, -best.nside, best.pixel):
            best = pb
    return best


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


class ProgressionStrategy:
    """Skymap Scanner's ``nside:extension`` progression, with its known bugs avoided.

    Round based: once every pixel in flight has finished, for each consecutive pair
    (coarse -> fine) take the coarse pixels whose centres lie within a disc of ``extension``
    coarse-pixel areas around the global best fit, and fit all their children at the fine nside.
    Re-refinement when the best fit moves is kept (it converges: pixel sets are finite). Unlike the
    anchor: the global minimum is NaN-safe, and the best fit's own coarse pixel is always refined
    even when the disc is smaller than a pixel.
    """

    name = "progression"

    def __init__(self, steps: list[NsideStep]) -> None:
        self.steps = steps

    @classmethod
    def from_spec(cls, spec: str, max_nside: int = 1 << 29) -> ProgressionStrategy:
        return cls(parse_progression(spec, max_nside))

    @property
    def nsides(self) -> list[int]:
        return [s.nside for s in self.steps]

    def describe(self) -> str:
        return format_progression(self.steps)

    def refine_pairs(self, best: PixelBest, scanned_nsides: set[int]) -> list[PixelKey]:
        """Children of the discs around ``best`` for every pair whose coarse nside has results."""
        ra, dec = best.radec
        wanted: list[PixelKey] = []
        for coarse, fine in zip(self.steps, self.steps[1:], strict=False):
            if coarse.nside not in scanned_nsides:
                continue
            radius = math.sqrt(fine.extension * px.pixel_area_sr(coarse.nside) / math.pi)
            coarse_pixels = set(px.disc_pixels(coarse.nside, ra, dec, radius).tolist())
            coarse_pixels.add(int(px.radec_pixel(coarse.nside, ra, dec)))
            for cp in sorted(coarse_pixels):
                wanted.extend((fine.nside, int(p)) for p in px.children(coarse.nside, cp, fine.nside))
        return wanted

    def plan(self, view: RefinementView) -> list[PixelKey]:
        if view.pending:
            return []
        if not view.complete:
            first = self.steps[0].nside
            return [(first, p) for p in range(px.npix(first))]
        best = view.best()
        if best is None:  # every pixel failed: nothing sensible to refine around
            return []
        scanned = {nside for nside, _ in view.complete}
        return [k for k in self.refine_pairs(best, scanned) if k not in view.complete]


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


def make_strategy(name: str, nsides: str, max_nside: int = 1 << 29, **options: object) -> Strategy:
    """Build a refinement strategy by name: ``progression`` (nside:extension) or ``contour``."""
    if name == "progression":
        if options:
            raise ValueError(f"the progression strategy takes no options, got {sorted(options)}")
        return ProgressionStrategy.from_spec(nsides, max_nside)
    if name == "contour":
        from skyscan.contour_refinement import ContourStrategy

        return ContourStrategy.from_spec(nsides, max_nside, **options)  # type: ignore[arg-type]
    raise ValueError(f"unknown refinement strategy {name!r}; known: progression, contour")
