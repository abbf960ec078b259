"""Contour-driven refinement: resolve the 90% region at the finest nside, and little else.

After the coarse all-sky nside, each step refines (fits every child at the next nside of) the
pixels that may hold part of the region ``2*dLLH <= level + margin``:

* pixels whose own 2*dLLH is within the level plus the margin and that were not refined yet (a
  refined pixel is judged by its children instead), grown by ``dilate`` rings of neighbours where
  the linear interpolation between centres says the region may cross into them;
* where fitted pixels of the next nside lie within the cut and have a neighbour that was never
  fitted there, the parent of that neighbour: the region reaches the edge of the refined area, so
  the area grows until the region and the ring of pixels around it are fitted at every nside;
* the pixel holding the best fit.

Steps go nside by nside down to the finest; ``max_pixels_per_step`` caps the pixels at each finer
nside (parents are taken in order of their -lnL, whole parents only). ``2*dLLH`` is relative to
the best fit among the nsides whose results are used.

Rounds: with ``predictive_threshold`` 1 (default) a plan is made only when nothing is in flight,
so the pixel set does not depend on the order results arrive in. Below 1, an nside's results are
used as soon as that fraction of its planned pixels is done, so the next nside starts before the
current one is complete; later calls add what the rest of the results ask for. Either way ``plan``
is a deterministic function of the results so far.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from itertools import islice

import healpy as hp
import numpy as np

from skyscan import pixels as px
from skyscan.contours import level_for
from skyscan.refinement import PixelBest, PixelKey, RefinementView

DEFAULT_NSIDES = "8,16,32,64,128,256,512"
DEFAULT_MARGIN = 1.0
DEFAULT_MAX_PIXELS_PER_STEP = 12_288


def parse_nsides(spec: str | Iterable[int | str], max_nside: int = 1 << 29) -> list[int]:
    """``"8,16,32"``; ``nside:extension`` items are accepted and their extensions ignored."""
    items = [s for s in spec.replace(" ", ",").split(",") if s] if isinstance(spec, str) else list(spec)
    if not items:
        raise ValueError("the nside list is empty")
    nsides: list[int] = []
    for item in items:
        head = str(item).partition(":")[0]
        try:
            nside = int(head)
        except ValueError:
            raise ValueError(f"nside {item!r} is not an integer") from None
        px.check_nside(nside, max_nside)
        if nsides and nside <= nsides[-1]:
            raise ValueError(f"nsides must increase strictly: {nsides[-1]} then {nside}")
        nsides.append(nside)
    return nsides


class ContourStrategy:
    name = "contour"

    def __init__(
        self,
        nsides: list[int],
        level: float = 4.61,
        margin: float = DEFAULT_MARGIN,
        max_pixels_per_step: int = DEFAULT_MAX_PIXELS_PER_STEP,
        predictive_threshold: float = 1.0,
        dilate: int = 1,
    ) -> None:
        if not nsides:
            raise ValueError("the contour strategy needs at least one nside")
        if not (math.isfinite(level) and level > 0):
            raise ValueError(f"level must be a positive 2*dLLH, got {level}")
        if not (math.isfinite(margin) and margin >= 0):
            raise ValueError(f"margin must be >= 0, got {margin}")
        if max_pixels_per_step < 1:
            raise ValueError("max_pixels_per_step must be at least 1")
        if not 0.1 <= predictive_threshold <= 1.0:
            raise ValueError(f"predictive_threshold must be within [0.1, 1], got {predictive_threshold}")
        if not 0 <= dilate <= 8:
            raise ValueError(f"dilate must be within [0, 8], got {dilate}")
        self._nsides = list(nsides)
        self.level = float(level)
        self.margin = float(margin)
        self.max_pixels_per_step = int(max_pixels_per_step)
        self.predictive_threshold = float(predictive_threshold)
        self.dilate = int(dilate)
        self.full_dilation = False
        # incremental view of the completed pixels: {nside: {pixel: llh}} (NaN for failed)
        self._seen_view: int | None = None
        self._seen_n = 0
        self._seen_last: PixelKey | None = None
        self._values: dict[int, dict[int, float]] = {}
        self._memo: dict[tuple[object, ...], object] = {}

    @classmethod
    def from_spec(cls, nsides: str, max_nside: int = 1 << 29, **options: object) -> ContourStrategy:
        """Options: ``level`` (2*dLLH, or a level-set name such as ``wilks``/``icecube-sim``: its
        90% level), ``margin``, ``max_pixels_per_step``, ``predictive_threshold`` (alias
        ``predictive``), ``dilate``."""
        opts = dict(options)
        kwargs: dict[str, float | int] = {}
        if "predictive" in opts:
            if "predictive_threshold" in opts:
                raise ValueError("give either predictive or predictive_threshold")
            opts["predictive_threshold"] = opts.pop("predictive")
        if "level" in opts:
            level = opts.pop("level")
            if isinstance(level, str):
                try:
                    kwargs["level"] = float(level)
                except ValueError:
                    kwargs["level"] = level_for(level, 0.9)
            else:
                kwargs["level"] = _as_float("level", level)
        for key in ("margin", "predictive_threshold"):
            if key in opts:
                kwargs[key] = _as_float(key, opts.pop(key))
        for key in ("max_pixels_per_step", "dilate"):
            if key in opts:
                kwargs[key] = _as_int(key, opts.pop(key))
        if opts:
            raise ValueError(
                f"unknown contour-strategy options {sorted(opts)}; known: level, margin, "
                "max_pixels_per_step, predictive_threshold, dilate"
            )
        return cls(parse_nsides(nsides, max_nside), **kwargs)  # type: ignore[arg-type]

    @property
    def nsides(self) -> list[int]:
        return list(self._nsides)

    def describe(self) -> str:
        return (
            f"{','.join(map(str, self._nsides))} level={self.level:g} margin={self.margin:g} "
            f"max_pixels_per_step={self.max_pixels_per_step} predictive={self.predictive_threshold:g} "
            f"dilate={self.dilate}"
        )

    # -- planning ------------------------------------------------------------------------------
    def plan(self, view: RefinementView) -> list[PixelKey]:
        complete, pending = view.complete, view.pending
        if not complete and not pending:
            first = self._nsides[0]
            return [(first, p) for p in range(px.npix(first))]
        if self.predictive_threshold >= 1.0 and pending:
            return []
        self._absorb(view)
        pend = Counter(k[0] for k in pending)
        ready = []
        for nside in self._nsides:
            done = len(self._values.get(nside, ()))
            total = done + pend.get(nside, 0)
            ready.append(done > 0 and done >= self.predictive_threshold * total - 1e-9)
        best = self._best(ready)
        if best is None:
            return []
        out: list[PixelKey] = []
        for i in range(len(self._nsides) - 1):
            if not ready[i]:
                continue
            fine = self._nsides[i + 1]
            planned_fine = len(self._values.get(fine, ())) + pend.get(fine, 0)
            for parent in self._parents(i, ready, best):
                kids = px.children(self._nsides[i], parent, fine)
                fresh = [
                    (fine, int(k))
                    for k in kids
                    if (fine, int(k)) not in complete and (fine, int(k)) not in pending
                ]
                if not fresh:
                    continue
                if planned_fine + len(fresh) > self.max_pixels_per_step:
                    break
                planned_fine += len(fresh)
                out.extend(fresh)
        return out

    def _absorb(self, view: RefinementView) -> None:
        """Fold newly completed pixels into ``_values`` (the mapping only grows within a scan)."""
        complete = view.complete
        n = len(complete)
        stale = self._seen_view != id(view) or n < self._seen_n
        if not stale and self._seen_n:
            last = next(islice(complete, self._seen_n - 1, None), None)
            stale = last != self._seen_last
        if stale:
            self._values = {}
            self._memo = {}
            self._seen_n = 0
            self._seen_view = id(view)
        for key, pb in islice(complete.items(), self._seen_n, None):
            self._values.setdefault(key[0], {})[key[1]] = _llh(pb)
            self._seen_last = key
        self._seen_n = n

    def _best(self, ready: list[bool]) -> tuple[int, int, float] | None:
        key = ("best", tuple(ready), tuple(len(self._values.get(n, ())) for n in self._nsides))
        if key in self._memo:
            return self._memo[key]  # type: ignore[return-value]
        best: tuple[float, int, int] | None = None
        for nside, ok in zip(self._nsides, ready, strict=True):
            if not ok:
                continue
            for pixel, llh in self._values.get(nside, {}).items():
                if math.isfinite(llh) and (best is None or (llh, -nside, pixel) < best):
                    best = (llh, -nside, pixel)
        out = None if best is None else (-best[1], best[2], best[0])
        self._memo[key] = out  # type: ignore[assignment]
        return out

    def _parents(self, i: int, ready: list[bool], best: tuple[int, int, float]) -> list[int]:
        """Pixels at nside i to refine, in priority order (lowest -lnL first, then pixel index).

        * A: pixels not refined yet whose own 2*dLLH is within the cut, grown by ``_dilate``;
        * B: parents of the unfitted neighbours (at the next nside) of fitted pixels there that lie
          within the cut: the region reaches the edge of the refined area, so the area grows;
        * C: the pixel holding the best fit.
        B parents are ranked by the -lnL of the fine pixel that asked for them.
        """
        key = (i, tuple(ready), best, tuple(len(self._values.get(n, ())) for n in self._nsides))
        if len(self._memo) > 256:
            self._memo.clear()
        cached = self._memo.get(key)
        if cached is not None:
            return cached  # type: ignore[return-value]
        coarse, fine = self._nsides[i], self._nsides[i + 1]
        llh_best = best[2]
        cut = self.level + self.margin
        own = self._values.get(coarse, {})
        fine_vals = self._values.get(fine, {}) if ready[i + 1] else {}
        fine_done: set[int] = set()
        if fine_vals:
            fine_done = _ancestors(fine, np.fromiter(fine_vals, np.int64, len(fine_vals)), coarse)
        a = {
            p for p, v in own.items() if p not in fine_done and math.isfinite(v) and 2 * (v - llh_best) <= cut
        }
        selected = set(self._dilate(coarse, np.array(sorted(a), dtype=np.int64), own, llh_best, cut).tolist())
        rank: dict[int, float] = {p: _sort_llh(own.get(p)) for p in selected}
        # B: grow where the region touches fine pixels that were never fitted
        inside = [(p, v) for p, v in fine_vals.items() if math.isfinite(v) and 2 * (v - llh_best) <= cut]
        if inside:
            pix = np.array([p for p, _ in inside], dtype=np.int64)
            nbrs = np.asarray(hp.get_all_neighbours(fine, pix))
            shift = 2 * ((fine // coarse).bit_length() - 1)
            for j, (_, v) in enumerate(inside):
                missing = [q for q in nbrs[:, j].tolist() if q >= 0 and q not in fine_vals]
                if not missing:
                    continue
                nest = np.asarray(hp.ring2nest(fine, missing), dtype=np.int64) >> shift
                for parent in np.asarray(hp.nest2ring(coarse, nest)).tolist():
                    selected.add(int(parent))
                    rank[int(parent)] = min(rank.get(int(parent), math.inf), v)
        # C: the best fit's pixel
        b_nside, b_pixel, b_llh = best
        if b_nside >= coarse:
            c = next(iter(_ancestors(b_nside, np.array([b_pixel]), coarse)))
        else:
            ra, dec = px.pixel_radec(b_nside, b_pixel)
            c = int(px.radec_pixel(coarse, ra, dec))
        selected.add(c)
        rank[c] = min(rank.get(c, math.inf), b_llh)
        ordered = sorted(selected, key=lambda p: (rank.get(p, math.inf), p))
        self._memo[key] = ordered  # type: ignore[assignment]
        return ordered

    def _dilate(
        self, nside: int, arr: np.ndarray, own: dict[int, float], llh_best: float, cut: float
    ) -> np.ndarray:
        """Add neighbours the region may reach into.

        A neighbour P of a selected pixel n is added when P has no fit at this nside, or when the
        linear interpolation between the two centres crosses the cut before the shared edge:
        (ts_n + ts_P) / 2 <= cut, with ts_n capped at the cut (a pixel selected through its
        children may carry a stale coarse value).
        """
        for _ in range(self.dilate):
            if arr.size == 0:
                break
            inside = set(arr.tolist())
            nbrs = np.asarray(hp.get_all_neighbours(nside, arr))
            added: set[int] = set()
            for j, n in enumerate(arr.tolist()):
                v_n = own.get(n)
                ts_n = 2 * (v_n - llh_best) if v_n is not None and math.isfinite(v_n) else cut
                limit = 2 * cut - min(ts_n, cut)
                for p in nbrs[:, j].tolist():
                    if p < 0 or p in inside or p in added:
                        continue
                    v_p = own.get(p)
                    if (
                        self.full_dilation
                        or v_p is None
                        or not math.isfinite(v_p)
                        or 2 * (v_p - llh_best) <= limit
                    ):
                        added.add(p)
            if not added:
                break
            arr = np.union1d(arr, np.fromiter(added, np.int64, len(added)))
        return arr


def _ancestors(nside: int, pixels: np.ndarray, coarse: int) -> set[int]:
    shift = 2 * ((nside // coarse).bit_length() - 1)
    nest = np.asarray(hp.ring2nest(nside, pixels), dtype=np.int64) >> shift
    return {int(p) for p in np.unique(np.asarray(hp.nest2ring(coarse, nest), dtype=np.int64))}


def _llh(pb: PixelBest) -> float:
    return math.nan if pb.failed else float(pb.llh)


def _sort_llh(value: float | None) -> float:
    return value if value is not None and math.isfinite(value) else math.inf


def _as_float(name: str, value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None


def _as_int(name: str, value: object) -> int:
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if not f.is_integer():
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return int(f)


__all__ = ["ContourStrategy", "parse_nsides"]
