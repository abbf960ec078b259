"""Skymap Scanner's ``nside:extension`` progression: parsing and the round-based strategy."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from skyscan.refinement.fits import PixelBest, PixelKey
from skyscan.refinement.state import RefinementView, completed_nsides
from skyscan.sky import pixels as px

DEFAULT_PROGRESSION = "8:0,64:12,512:24"


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
    def from_spec(cls, spec: str, max_nside: int = 1 << 29, **options: object) -> ProgressionStrategy:
        if options:
            raise ValueError(f"the progression strategy takes no options, got {sorted(options)}")
        return cls(parse_progression(spec, max_nside))

    @property
    def nsides(self) -> list[int]:
        return [s.nside for s in self.steps]

    def describe(self) -> str:
        return format_progression(self.steps)

    def nsides_spec(self) -> str:
        return format_progression(self.steps)

    def estimated_pixels(self) -> list[tuple[int, int]]:
        """The whole sky at the first step; at each later one the children of the ``extension``
        coarse pixels around the best fit, and of its own (at most the whole sky). A best fit that
        moves refines another disc: the estimate is of one pass."""
        first = self.steps[0].nside
        out = [(first, px.npix(first))]
        for coarse, fine in zip(self.steps, self.steps[1:], strict=False):
            parents = min(px.npix(coarse.nside), fine.extension + 1)
            out.append((fine.nside, min(px.npix(fine.nside), parents * (fine.nside // coarse.nside) ** 2)))
        return out

    def refine_arrays(self, best: PixelBest, scanned_nsides: set[int]) -> dict[int, np.ndarray]:
        """Children of the discs around ``best`` for every pair whose coarse nside has results:
        {fine nside: pixels}, parents in pixel order, each parent's children in pixel order."""
        ra, dec = best.radec
        wanted: dict[int, np.ndarray] = {}
        for coarse, fine in zip(self.steps, self.steps[1:], strict=False):
            if coarse.nside not in scanned_nsides:
                continue
            radius = math.sqrt(fine.extension * px.pixel_area_sr(coarse.nside) / math.pi)
            coarse_pixels = set(px.disc_pixels(coarse.nside, ra, dec, radius).tolist())
            coarse_pixels.add(int(px.radec_pixel(coarse.nside, ra, dec)))
            children = [px.children(coarse.nside, cp, fine.nside) for cp in sorted(coarse_pixels)]
            wanted[fine.nside] = np.concatenate(children)
        return wanted

    def refine_pairs(self, best: PixelBest, scanned_nsides: set[int]) -> list[PixelKey]:
        """:meth:`refine_arrays` as (nside, pixel) pairs."""
        arrays = self.refine_arrays(best, scanned_nsides)
        return [(nside, p) for nside, pixels in arrays.items() for p in pixels.tolist()]

    def plan(self, view: RefinementView) -> dict[int, np.ndarray]:
        """Arrays of pixels per nside (the refinement drops those planned already)."""
        if view.pending:
            return {}
        if not view.complete:
            first = self.steps[0].nside
            return {first: np.arange(px.npix(first), dtype=np.int64)}
        best = view.best()
        if best is None:  # every pixel failed: nothing sensible to refine around
            return {}
        return self.refine_arrays(best, completed_nsides(view.complete))
