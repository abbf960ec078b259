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
from collections.abc import Iterable

import healpy as hp
import numpy as np

from skyscan.refinement.fits import PixelBest, PixelKey
from skyscan.refinement.state import RefinementView, completed_key_at, completed_since
from skyscan.sky import pixels as px
from skyscan.skymap.contours import level_for

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
    follows_level_set = True  # make_strategy sets ``level`` from the scan's level set

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
        # incremental view of the completed pixels: {nside: {pixel: llh}} (NaN for failed)
        self._seen_view: int | None = None
        self._seen_n = 0
        self._seen_last: PixelKey | None = None
        self._values: dict[int, dict[int, float]] = {}
        self._level_best: dict[int, tuple[float, int]] = {}
        self._array_cache: dict[int, tuple[int, np.ndarray, np.ndarray]] = {}
        self._done_parents: dict[int, set[int]] = {}
        self._memo: dict[tuple[object, ...], list[int]] = {}

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

    def nsides_spec(self) -> str:
        return ",".join(map(str, self._nsides))

    def describe(self) -> str:
        return (
            f"{','.join(map(str, self._nsides))} level={self.level:g} margin={self.margin:g} "
            f"max_pixels_per_step={self.max_pixels_per_step} predictive={self.predictive_threshold:g} "
            f"dilate={self.dilate}"
        )

    def estimated_pixels(self) -> list[tuple[int, int]]:
        """The whole sky at the first nside, at most ``max_pixels_per_step`` at each finer one."""
        first, *finer = self._nsides
        return [(first, px.npix(first))] + [(n, min(px.npix(n), self.max_pixels_per_step)) for n in finer]

    # -- planning ------------------------------------------------------------------------------
    def plan(self, view: RefinementView) -> list[PixelKey]:
        complete, pending = view.complete, view.pending
        if not complete and not pending:
            first = self._nsides[0]
            return [(first, p) for p in range(px.npix(first))]
        if self.predictive_threshold >= 1.0 and pending:
            return []
        self._absorb(view)
        pend: dict[int, list[int]] = {}
        for nside, pixel in pending:
            pend.setdefault(nside, []).append(pixel)
        ready = []
        for nside in self._nsides:
            done = len(self._values.get(nside, ()))
            total = done + len(pend.get(nside, ()))
            ready.append(done > 0 and done >= self.predictive_threshold * total - 1e-9)
        best = self._best(ready)
        if best is None:
            return []
        out: list[PixelKey] = []
        for i in range(len(self._nsides) - 1):
            if ready[i]:
                out.extend(self._plan_step(i, ready, best, pend.get(self._nsides[i + 1], [])))
        return out

    def _plan_step(
        self, i: int, ready: list[bool], best: tuple[int, int, float], pending_fine: list[int]
    ) -> list[PixelKey]:
        """Children at nside i+1 of the parents to refine that are not planned yet, within the cap."""
        coarse, fine = self._nsides[i], self._nsides[i + 1]
        done_parents = self._done_parents.setdefault(i, set())
        parents = [p for p in self._parents(i, ready, best) if p not in done_parents]
        if not parents:
            return []
        planned = np.union1d(self._arrays(fine)[0], np.asarray(pending_fine, dtype=np.int64))
        factor = fine // coarse
        shift = 2 * (factor.bit_length() - 1)
        nest = np.asarray(hp.ring2nest(coarse, np.asarray(parents, dtype=np.int64)), dtype=np.int64)
        kids_nest = (nest[:, None] << shift) + np.arange(factor * factor, dtype=np.int64)
        kids = np.asarray(hp.nest2ring(fine, kids_nest), dtype=np.int64).reshape(kids_nest.shape)
        fresh = ~np.isin(kids, planned)
        n_fresh = fresh.sum(axis=1)
        budget = self.max_pixels_per_step - planned.size
        out: list[PixelKey] = []
        for row, parent in enumerate(parents):
            if n_fresh[row] == 0:
                done_parents.add(parent)
                continue
            if n_fresh[row] > budget:
                break
            budget -= int(n_fresh[row])
            out.extend((fine, int(k)) for k in kids[row][fresh[row]])
        return out

    def _absorb(self, view: RefinementView) -> None:
        """Fold newly completed pixels into ``_values`` (the mapping only grows within a scan)."""
        complete = view.complete
        n = len(complete)
        stale = self._seen_view != id(view) or n < self._seen_n
        if not stale and self._seen_n:
            stale = completed_key_at(complete, self._seen_n - 1) != self._seen_last
        if stale:
            self._values = {}
            self._level_best = {}
            self._array_cache = {}
            self._done_parents = {}
            self._memo = {}
            self._seen_n = 0
            self._seen_view = id(view)
        for key, pb in completed_since(complete, self._seen_n):
            nside, pixel = key
            llh = _llh(pb)
            self._values.setdefault(nside, {})[pixel] = llh
            if math.isfinite(llh):
                cur = self._level_best.get(nside)
                if cur is None or (llh, pixel) < cur:
                    self._level_best[nside] = (llh, pixel)
            self._seen_last = key
        self._seen_n = n

    def _arrays(self, nside: int) -> tuple[np.ndarray, np.ndarray]:
        """Fitted pixels of an nside, sorted, and their -lnL (NaN for failed fits)."""
        vals = self._values.get(nside, {})
        cached = self._array_cache.get(nside)
        if cached is not None and cached[0] == len(vals):
            return cached[1], cached[2]
        pix = np.fromiter(vals.keys(), np.int64, len(vals))
        llh = np.fromiter(vals.values(), float, len(vals))
        order = np.argsort(pix)
        self._array_cache[nside] = (len(vals), pix[order], llh[order])
        return pix[order], llh[order]

    def _best(self, ready: list[bool]) -> tuple[int, int, float] | None:
        """Best fit (nside, pixel, llh) over the nsides in use; ties prefer the finer nside."""
        best: tuple[float, int, int] | None = None
        for nside, ok in zip(self._nsides, ready, strict=True):
            level_best = self._level_best.get(nside) if ok else None
            if level_best is not None and (best is None or (level_best[0], -nside, level_best[1]) < best):
                best = (level_best[0], -nside, level_best[1])
        return None if best is None else (-best[1], best[2], best[0])

    def _parents(self, i: int, ready: list[bool], best: tuple[int, int, float]) -> list[int]:
        """Pixels at nside i to refine, in priority order (lowest -lnL first, then pixel index).

        * A: pixels not refined yet whose own 2*dLLH is within the cut, grown by ``_dilate``;
        * B: parents of the unfitted neighbours (at the next nside) of fitted pixels there that lie
          within the cut: the region reaches the edge of the refined area, so the area grows;
        * C: the pixel holding the best fit.
        B parents are ranked by the -lnL of the fine pixel that asked for them.
        """
        coarse, fine = self._nsides[i], self._nsides[i + 1]
        n_fine = len(self._values.get(fine, ())) if ready[i + 1] else 0
        key = (i, best, len(self._values.get(coarse, ())), n_fine)
        cached = self._memo.get(key)
        if cached is not None:
            return cached  # type: ignore[return-value]
        if len(self._memo) > 256:
            self._memo.clear()
        llh_best = best[2]
        cut = self.level + self.margin
        pix_c, llh_c = self._arrays(coarse)
        pix_f, llh_f = self._arrays(fine) if n_fine else (np.empty(0, np.int64), np.empty(0))
        ts_c = 2 * (llh_c - llh_best)
        ts_f = 2 * (llh_f - llh_best)
        # A, grown
        refined = _parents_of(fine, pix_f, coarse)
        with np.errstate(invalid="ignore"):
            a_mask = np.isfinite(ts_c) & (ts_c <= cut) & ~np.isin(pix_c, refined)
        sel = self._dilate(coarse, pix_c[a_mask], pix_c, ts_c, cut)
        sel_rank = _lookup(pix_c, llh_c, sel, np.inf)
        groups = [(sel, np.where(np.isnan(sel_rank), np.inf, sel_rank))]
        # B: the region touches fine pixels never fitted
        with np.errstate(invalid="ignore"):
            in_f = np.isfinite(ts_f) & (ts_f <= cut)
        if in_f.any():
            nbrs = np.asarray(hp.get_all_neighbours(fine, pix_f[in_f]))  # (8, m)
            trigger = np.broadcast_to(llh_f[in_f], nbrs.shape)
            missing = (nbrs >= 0) & ~np.isin(nbrs, pix_f)
            if missing.any():
                groups.append((_parents_of(fine, nbrs[missing], coarse, unique=False), trigger[missing]))
        # C: the best fit's pixel
        b_nside, b_pixel, b_llh = best
        if b_nside >= coarse:
            c = _parents_of(b_nside, np.array([b_pixel], dtype=np.int64), coarse)
        else:
            ra, dec = px.pixel_radec(b_nside, b_pixel)
            c = np.array([int(px.radec_pixel(coarse, ra, dec))], dtype=np.int64)
        groups.append((c, np.array([b_llh])))
        allpix = np.concatenate([g[0] for g in groups])
        allrank = np.concatenate([g[1] for g in groups])
        order = np.lexsort((allrank, allpix))  # by pixel, then rank: first of each pixel is its min
        allpix, allrank = allpix[order], allrank[order]
        first = np.concatenate([[True], allpix[1:] != allpix[:-1]]) if allpix.size else np.zeros(0, bool)
        upix, urank = allpix[first], allrank[first]
        ordered = [int(p) for p in upix[np.lexsort((upix, urank))]]
        self._memo[key] = ordered
        return ordered

    def _dilate(self, nside: int, sel: np.ndarray, pix: np.ndarray, ts: np.ndarray, cut: float) -> np.ndarray:
        """Add neighbours the region may reach into.

        A neighbour P of a selected pixel n is added when P has no fit at this nside, or when the
        linear interpolation between the two centres crosses the cut before the shared edge:
        (ts_n + ts_P) / 2 <= cut, with ts_n capped at the cut.
        """
        sel = np.unique(sel)
        for _ in range(self.dilate):
            if sel.size == 0:
                break
            ts_sel = np.minimum(_lookup(pix, ts, sel, cut), cut)
            nbrs = np.asarray(hp.get_all_neighbours(nside, sel))  # (8, m)
            limit = np.broadcast_to(2 * cut - ts_sel, nbrs.shape)
            ts_n = _lookup(pix, ts, np.where(nbrs >= 0, nbrs, 0), np.nan)
            with np.errstate(invalid="ignore"):
                take = (nbrs >= 0) & (~np.isfinite(ts_n) | (ts_n <= limit))
            grown = np.union1d(sel, nbrs[take])
            if grown.size == sel.size:
                break
            sel = grown
        return sel


def _lookup(pix: np.ndarray, values: np.ndarray, query: np.ndarray, missing: float) -> np.ndarray:
    """values[pix == query] for sorted ``pix``; ``missing`` where a pixel is absent."""
    if pix.size == 0:
        return np.full(np.shape(query), missing)
    pos = np.clip(np.searchsorted(pix, query), 0, pix.size - 1)
    return np.where(pix[pos] == query, values[pos], missing)


def _parents_of(nside: int, pixels: np.ndarray, coarse: int, unique: bool = True) -> np.ndarray:
    """RING parents at ``coarse`` of RING pixels at ``nside``."""
    pixels = np.asarray(pixels, dtype=np.int64)
    if pixels.size == 0:
        return np.empty(0, dtype=np.int64)
    shift = 2 * ((nside // coarse).bit_length() - 1)
    nest = np.asarray(hp.ring2nest(nside, pixels), dtype=np.int64) >> shift
    out = np.asarray(hp.nest2ring(coarse, nest), dtype=np.int64)
    return np.unique(out) if unique else out


def _llh(pb: PixelBest) -> float:
    return math.nan if pb.failed else float(pb.llh)


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
