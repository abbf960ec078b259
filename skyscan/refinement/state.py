"""The refinement state machine: given the results so far, which pixels to fit next, and when done.

Pure and deterministic. The scan server drives it over RabbitMQ and the local scan drives it over
a process pool: one algorithm, two I/O shells.

* A *strategy* decides which (nside, pixel) pairs to fit, from a read-only view of the state: a
  list of pairs, or for a large step (the whole sky) arrays of pixels per nside.
* :class:`Refinement` expands pixels into per-variation tasks, folds variation results into one
  best result per pixel (NaN-safe: a failed fit never wins), seeds finer pixels from their coarser
  parent's fit, and replays stored results on resume so only missing tasks are published.

Memory: what is planned and what came back is held in columns (numpy arrays, one table per nside),
not as Python objects per pixel, so a whole-sky nside-256 step (786,432 pixels) costs about as
much per pixel as a whole-sky nside-64 one: about 70 bytes a pixel with a six-key fit. ``complete``
and ``pending`` are mapping views over those columns that build a :class:`PixelBest` on access.
"""

from __future__ import annotations

import math
import struct
from collections.abc import ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from dataclasses import dataclass
from itertools import islice
from operator import itemgetter
from typing import Protocol

import healpy as hp
import numpy as np

from skyscan.refinement.fits import FIT_VERTEX_KEYS, PixelBest, PixelKey, VariationResult, best_of
from skyscan.sky import pixels as px
from skyscan.sky.coordinates import equatorial_to_detector

# What Strategy.plan returns: (nside, pixel) pairs, or arrays of pixels per nside (a large step
# handed as arrays never becomes Python objects per pixel).
PlannedPixels = Iterable[PixelKey] | Mapping[int, np.ndarray]


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

    def plan(self, view: RefinementView) -> PlannedPixels:
        """Pixels to fit next: (nside, pixel) pairs or {nside: pixel array}; repeats and pixels
        planned already are dropped by the refinement."""
        ...

    def describe(self) -> str: ...

    def nsides_spec(self) -> str:
        """The nsides in the form ``from_spec`` reads back (what a scan record stores)."""
        ...

    def estimated_pixels(self) -> list[tuple[int, int]]:
        """(nside, pixels) per step: what the strategy expects to fit, before any result (the API
        refuses a scan whose estimate is over its task limits)."""
        ...


# --------------------------------------------------------------------------------------------
# Columnar storage of planned and completed pixels
# --------------------------------------------------------------------------------------------


def _nan_with_payload(payload: int) -> tuple[float, int]:
    bits = 0x7FF8_0000_0000_0000 | payload  # a quiet NaN: copies keep its payload
    return struct.unpack("<d", struct.pack("<q", bits))[0], bits


# Fit cells are float64. Two NaNs with payloads no computation produces mark a value given as None
# and a key the pixel's fit did not have, so a fit dict reads back exactly as it came in (a plain
# NaN stays NaN); both are NaN to numpy, so ``isfinite`` treats them as no value.
_NONE, _NONE_BITS = _nan_with_payload(0x4E6F_6E65)  # "None"
_MISSING, _MISSING_BITS = _nan_with_payload(0x4D69_7373)  # "Miss"

_FAILED = "fit failed"
_CHUNK = 4096  # rows turned into Python objects at a time when a view is iterated


def _cell(value: object) -> float:
    """A fit value as a float64 cell; None, and anything float() refuses, as None."""
    if value is None:
        return _NONE
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return _NONE


def _column_values(fits: list[Mapping[str, float | None]], key: str) -> np.ndarray:
    """One fit key of many pixels as float64 cells (None and absent keys marked)."""
    raw = [f.get(key, _MISSING) for f in fits]
    try:
        values = np.array(raw, dtype=np.float64)  # None becomes a plain NaN: marked below
    except (TypeError, ValueError):
        return np.array([v if v is _MISSING else _cell(v) for v in raw], dtype=np.float64)
    for i in np.flatnonzero(np.isnan(values)).tolist():
        if raw[i] is None:
            values[i] = _NONE
    return values


def _count_dtype(n: int) -> type[np.unsignedinteger]:
    for dtype in (np.uint8, np.uint16, np.uint32):
        if n <= np.iinfo(dtype).max:
            return dtype
    return np.uint64


def _parents(nside: int, pixels: np.ndarray, coarse: int) -> np.ndarray:
    """RING parents at ``coarse`` of RING pixels at ``nside`` (NESTED bit shift)."""
    shift = 2 * ((nside // coarse).bit_length() - 1)
    nest = np.asarray(hp.ring2nest(nside, pixels), dtype=np.int64) >> shift
    return np.asarray(hp.nest2ring(coarse, nest), dtype=np.int64)


class _PixelTable:
    """The planned pixels of one nside, one row each in the order they were planned.

    Columns: the pixel, the variations still outstanding (0: complete) and, once complete, the best
    llh (NaN when every variation failed: ``failed`` is that, not a column of its own), the best
    variation and one float64 column per fit key (added when a result brings a new key). Columns
    grow by half their size when full; a step handed as one array is allocated exactly.
    """

    MIN_ROWS = 256
    # Pixel -> row. A dict entry costs about 100 bytes (hash slot, key and value objects); a dense
    # int32 index costs 4 bytes per pixel of the sphere (-1: not planned) however few are planned.
    # So a dict while the nside holds at most 1/16 of the sphere (small steps: at most 100 bytes a
    # planned pixel), the dense index beyond (at most 64 bytes a planned pixel at the switch, 4 for
    # a whole-sky step). Lookups of one pixel are O(1) both ways: the server checks every result.
    DENSE_FRACTION = 16

    def __init__(self, nside: int, number: int, count_dtype: type[np.unsignedinteger]) -> None:
        self.nside = nside
        self.number = number  # its place in the refinement's list of tables
        self.npix = px.npix(nside)
        self.size = 0
        self.n_complete = 0
        self.pixel = np.empty(0, np.int32 if self.npix <= np.iinfo(np.int32).max else np.int64)
        self.outstanding = np.empty(0, count_dtype)
        self.variation = np.empty(0, count_dtype)
        self.llh = np.empty(0, np.float64)
        self.fit: dict[str, np.ndarray] = {}
        self.errors: dict[int, str] = {}  # row -> error, failed pixels only
        self._error_text: dict[str, str] = {}  # one copy of each distinct error string
        self._rows: dict[int, int] = {}
        self._dense: np.ndarray | None = None

    # -- lookup -------------------------------------------------------------------------------
    def row_of(self, pixel: int) -> int:
        """Row of a planned pixel, -1 when it is not planned."""
        if self._dense is None:
            return self._rows.get(pixel, -1)
        return self._dense.item(pixel) if 0 <= pixel < self.npix else -1  # type: ignore[no-any-return]

    def rows_of(self, pixels: np.ndarray) -> np.ndarray:
        """Rows of many pixels (int64, -1 where not planned or off the sphere)."""
        out = np.full(pixels.shape, -1, dtype=np.int64)
        if self.size == 0 or pixels.size == 0:
            return out
        if self._dense is not None:
            inside = (pixels >= 0) & (pixels < self.npix)
            out[inside] = self._dense[pixels[inside]]
            return out
        get = self._rows.get
        return np.fromiter((get(p, -1) for p in pixels.tolist()), np.int64, pixels.size)

    # -- growth -------------------------------------------------------------------------------
    def append(self, pixels: np.ndarray, outstanding: int) -> np.ndarray:
        """Plan pixels (unique, on the sphere, not planned yet); returns their rows."""
        n = int(pixels.size)
        start, stop = self.size, self.size + n
        if stop > len(self.llh):
            self._grow(min(self.npix, max(stop, len(self.llh) * 3 // 2, self.MIN_ROWS)))
        rows = np.arange(start, stop, dtype=np.int64)
        self.pixel[start:stop] = pixels
        self.outstanding[start:stop] = outstanding
        if self._dense is None and stop > self.npix // self.DENSE_FRACTION:
            # dense before adding, so a whole-sky step never goes through the dict
            dense = np.full(self.npix, -1, dtype=np.int32 if self.npix <= 2**31 else np.int64)
            dense[self.pixel[:start]] = np.arange(start, dtype=dense.dtype)
            self._dense, self._rows = dense, {}
        if self._dense is not None:
            self._dense[pixels] = rows
        else:
            self._rows.update(zip(pixels.tolist(), rows.tolist(), strict=True))
        self.size = stop
        return rows

    def _grow(self, capacity: int) -> None:
        def grown(column: np.ndarray, fill: float) -> np.ndarray:
            out = np.empty(capacity, dtype=column.dtype)
            out[: self.size] = column[: self.size]
            out[self.size :] = fill
            return out

        self.pixel = grown(self.pixel, -1)
        self.outstanding = grown(self.outstanding, 0)
        self.variation = grown(self.variation, 0)
        self.llh = grown(self.llh, math.nan)
        self.fit = {k: grown(col, _MISSING) for k, col in self.fit.items()}

    def _column(self, key: str) -> np.ndarray:
        col = self.fit.get(key)
        if col is None:
            col = self.fit[key] = np.full(len(self.llh), _MISSING, dtype=np.float64)
        return col

    # -- completion -----------------------------------------------------------------------------
    def complete(
        self,
        rows: list[int],
        llh: list[float],
        variation: list[int],
        fits: list[Mapping[str, float | None]],
        errors: list[str | None],
    ) -> None:
        """Store the best of completed pixels (llh NaN and an error for failed ones)."""
        if len(rows) <= 4:  # one result at a time (record): scalar writes cost less than arrays
            columns = self.fit
            for row, value, var, fit in zip(rows, llh, variation, fits, strict=True):
                self.outstanding[row] = 0
                self.llh[row] = value
                self.variation[row] = var
                for key, cell in fit.items():
                    col = columns.get(key)
                    if col is None:
                        col = self._column(key)
                    col[row] = _NONE if cell is None else _cell(cell)
        else:
            index = np.asarray(rows, dtype=np.int64)
            self.outstanding[index] = 0
            self.llh[index] = np.asarray(llh, dtype=np.float64)
            self.variation[index] = np.asarray(variation, dtype=np.int64)
            keys = set().union(*fits)
            if not keys.issubset(self.fit):  # new columns, first seen first: the read-back order
                for key in dict.fromkeys(k for f in fits for k in f):
                    self._column(key)
            order = [k for k in self.fit if k in keys]
            try:  # the common case, every fit with every key: one 2-D conversion in C
                block = np.array(list(map(itemgetter(*order), fits)), dtype=np.float64)
            except (KeyError, TypeError, ValueError):
                for key in order:
                    self.fit[key][index] = _column_values(fits, key)
            else:
                block = block.reshape(len(fits), len(order))
                for j, key in enumerate(order):
                    values = block[:, j]
                    for i in np.flatnonzero(np.isnan(values)).tolist():
                        if fits[i][key] is None:  # None became a plain NaN
                            values[i] = _NONE
                    self.fit[key][index] = values
        for row, error in zip(rows, errors, strict=True):
            if error is not None:
                self.errors[row] = self._error_text.setdefault(error, error)
        self.n_complete += len(rows)

    # -- read back ------------------------------------------------------------------------------
    def best(self, row: int) -> PixelBest:
        llh = self.llh.item(row)
        fit: dict[str, float | None] = {}
        for key, col in self.fit.items():
            value = col.item(row)
            if value != value:  # NaN: maybe a marker
                bits = struct.unpack("<q", struct.pack("<d", value))[0]
                if bits == _MISSING_BITS:
                    continue
                fit[key] = None if bits == _NONE_BITS else value
            else:
                fit[key] = value
        failed = llh != llh
        error = self.errors.get(row) if failed else None
        return PixelBest(self.nside, self.pixel.item(row), llh, self.variation.item(row), fit, failed, error)

    def bests(self, rows: np.ndarray) -> list[PixelBest]:
        """:meth:`best` of many rows, a column at a time."""
        fits: list[dict[str, float | None]] = [{} for _ in range(rows.size)]
        for key, col in self.fit.items():
            cells = col[rows]
            values = cells.tolist()
            nan = np.isnan(cells)
            if not nan.any():
                for fit, value in zip(fits, values, strict=True):
                    fit[key] = value
                continue
            bits = cells.view(np.int64)
            missing = (bits == _MISSING_BITS).tolist()
            none = (bits == _NONE_BITS).tolist()
            for fit, value, m, n in zip(fits, values, missing, none, strict=True):
                if not m:
                    fit[key] = None if n else value
        out = []
        for row, pixel, llh, var, fit in zip(
            rows.tolist(),
            self.pixel[rows].tolist(),
            self.llh[rows].tolist(),
            self.variation[rows].tolist(),
            fits,
            strict=True,
        ):
            failed = llh != llh
            error = self.errors.get(row) if failed else None
            out.append(PixelBest(self.nside, pixel, llh, var, fit, failed, error))
        return out


class CompleteView(Mapping[PixelKey, PixelBest]):
    """The completed pixels of a :class:`Refinement`, in the order they completed.

    A view over its columns: each :class:`PixelBest` is built when it is asked for (so two reads
    give equal objects, not the same one).
    """

    __slots__ = ("_ref",)

    def __init__(self, refinement: Refinement) -> None:
        self._ref = refinement

    def __len__(self) -> int:
        return self._ref._n_done

    def __contains__(self, key: object) -> bool:
        found = self._ref._locate(key)
        return found is not None and bool(found[0].outstanding[found[1]] == 0)

    def __getitem__(self, key: PixelKey) -> PixelBest:
        found = self._ref._locate(key)
        if found is None or found[0].outstanding[found[1]] != 0:
            raise KeyError(key)
        return found[0].best(found[1])

    def __iter__(self) -> Iterator[PixelKey]:
        for table, rows in self._ref._done_runs(0):
            nside = table.nside
            yield from ((nside, p) for p in table.pixel[rows].tolist())

    def __repr__(self) -> str:
        return f"<CompleteView of {len(self)} pixels>"

    def keys(self) -> KeysView[PixelKey]:
        return KeysView(self)

    def items(self) -> ItemsView[PixelKey, PixelBest]:
        return _CompleteItems(self)

    def values(self) -> ValuesView[PixelBest]:
        return _CompleteValues(self)

    def items_from(self, start: int) -> Iterator[tuple[PixelKey, PixelBest]]:
        """(key, best) of the pixels completed after the first ``start``, in completion order."""
        for table, rows in self._ref._done_runs(start):
            yield from ((pb.key, pb) for pb in table.bests(rows))

    def key_at(self, index: int) -> PixelKey:
        """Key of the pixel that completed ``index``-th (from 0)."""
        if not 0 <= index < len(self):
            raise IndexError(index)
        table = self._ref._table_list[int(self._ref._done_table[index])]
        return (table.nside, table.pixel.item(int(self._ref._done_row[index])))

    def nsides(self) -> set[int]:
        """The nsides with at least one completed pixel."""
        return {t.nside for t in self._ref._table_list if t.n_complete}


class _CompleteItems(ItemsView[PixelKey, PixelBest]):
    def __iter__(self) -> Iterator[tuple[PixelKey, PixelBest]]:
        return self._mapping.items_from(0)  # type: ignore[attr-defined,no-any-return]


class _CompleteValues(ValuesView[PixelBest]):
    def __iter__(self) -> Iterator[PixelBest]:
        return (pb for _, pb in self._mapping.items_from(0))  # type: ignore[attr-defined]


class PendingView(Mapping[PixelKey, int]):
    """Planned pixels with variations outstanding -> how many; nside by nside, in planning order."""

    __slots__ = ("_ref",)

    def __init__(self, refinement: Refinement) -> None:
        self._ref = refinement

    def __len__(self) -> int:
        return self._ref._n_pending

    def __contains__(self, key: object) -> bool:
        found = self._ref._locate(key)
        return found is not None and bool(found[0].outstanding[found[1]] != 0)

    def __getitem__(self, key: PixelKey) -> int:
        found = self._ref._locate(key)
        if found is None or found[0].outstanding[found[1]] == 0:
            raise KeyError(key)
        return found[0].outstanding.item(found[1])

    def __iter__(self) -> Iterator[PixelKey]:
        for table in list(self._ref._table_list):
            nside = table.nside
            rows = np.flatnonzero(table.outstanding[: table.size])
            yield from ((nside, p) for p in table.pixel[rows].tolist())

    def __repr__(self) -> str:
        return f"<PendingView of {len(self)} pixels>"


def completed_nsides(complete: Mapping[PixelKey, PixelBest]) -> set[int]:
    """The nsides with a completed pixel (without visiting every pixel of a :class:`CompleteView`)."""
    if isinstance(complete, CompleteView):
        return complete.nsides()
    return {nside for nside, _ in complete}


def completed_since(
    complete: Mapping[PixelKey, PixelBest], start: int
) -> Iterator[tuple[PixelKey, PixelBest]]:
    """Items after the first ``start`` in iteration order (completion order for a CompleteView,
    whose earlier pixels are then not built at all)."""
    if isinstance(complete, CompleteView):
        return complete.items_from(start)
    return islice(complete.items(), start, None)


def completed_key_at(complete: Mapping[PixelKey, PixelBest], index: int) -> PixelKey | None:
    """The ``index``-th key in iteration order, None past the end."""
    if isinstance(complete, CompleteView):
        return complete.key_at(index) if 0 <= index < len(complete) else None
    return next(islice(complete, index, None), None)


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


# A completed pixel on its way into its table: (table, row, llh, variation, fit, error).
_Completion = tuple[_PixelTable, int, float, int, Mapping[str, float | None], str | None]


class Refinement:
    """Holds what was sent and what came back; asks the strategy for more until it is done."""

    def __init__(self, strategy: Strategy, n_variations: int, mjd: float) -> None:
        if n_variations < 1:
            raise ValueError("a reco needs at least one variation")
        self.strategy = strategy
        self.n_variations = n_variations
        self.mjd = mjd
        self._count_dtype = _count_dtype(n_variations)
        self._tables: dict[int, _PixelTable] = {}
        self._table_list: list[_PixelTable] = []  # position = the table's number in _done_table
        # completion order, so ``complete`` iterates as the dict it replaces did (the contour
        # strategy reads only what completed since its last plan): table number and row
        self._done_table = np.empty(0, np.uint8)
        self._done_row = np.empty(0, np.int32)  # rows < 2**31: more would not fit in memory anyway
        self._n_done = 0
        self._n_pending = 0
        # results of pixels not complete yet: variations in flight, or stored results on resume
        self._known: dict[PixelKey, dict[int, VariationResult]] = {}
        self._best: PixelBest | None = None
        self._complete_view = CompleteView(self)
        self._pending_view = PendingView(self)
        self.progress: dict[int, NsideProgress] = {n: NsideProgress() for n in strategy.nsides}
        self.finished = False

    # -- RefinementView -----------------------------------------------------------------------
    @property
    def complete(self) -> Mapping[PixelKey, PixelBest]:
        return self._complete_view

    @property
    def pending(self) -> Mapping[PixelKey, int]:
        return self._pending_view

    def best(self) -> PixelBest | None:
        return self._best

    def is_open(self, nside: int, pixel: int, variation: int) -> bool:
        """Whether a result for this task is still expected (planned and not answered yet)."""
        found = self._locate((nside, pixel))
        if found is None or found[0].outstanding[found[1]] == 0:
            return False
        known = self._known.get((nside, pixel))
        return known is None or variation not in known

    def _progress(self, nside: int) -> NsideProgress:
        prog = self.progress.get(nside)
        if prog is None:
            prog = self.progress[nside] = NsideProgress()
        return prog

    # -- tables -------------------------------------------------------------------------------
    def _table(self, nside: int) -> _PixelTable:
        table = self._tables.get(nside)
        if table is None:
            px.check_nside(nside)
            if len(self._table_list) > np.iinfo(self._done_table.dtype).max:
                raise ValueError("too many nsides")
            table = self._tables[nside] = _PixelTable(nside, len(self._table_list), self._count_dtype)
            self._table_list.append(table)
        return table

    def _locate(self, key: object) -> tuple[_PixelTable, int] | None:
        """(table, row) of a planned pixel, None for anything else."""
        try:
            nside, pixel = key  # type: ignore[misc]
            table = self._tables.get(nside)
            row = -1 if table is None else table.row_of(int(pixel))
        except (TypeError, ValueError):
            return None
        return None if row < 0 else (table, row)  # type: ignore[return-value]

    def _done_runs(self, start: int) -> Iterator[tuple[_PixelTable, np.ndarray]]:
        """(table, rows) runs of the pixels completed after the first ``start``, in order."""
        stop = self._n_done
        for lo in range(max(0, start), stop, _CHUNK):
            hi = min(stop, lo + _CHUNK)
            tables = self._done_table[lo:hi]
            rows = self._done_row[lo:hi].astype(np.int64)
            cuts = [0, *(np.flatnonzero(tables[1:] != tables[:-1]) + 1).tolist(), hi - lo]
            for a, b in zip(cuts, cuts[1:], strict=False):
                yield self._table_list[int(tables[a])], rows[a:b]

    # -- inputs --------------------------------------------------------------------------------
    def restore(self, results: Iterable[VariationResult]) -> None:
        """Load results stored by an earlier run (resume); call :meth:`next_tasks` afterwards.

        Results of pixels already planned are recorded; of others they wait for the plan. A
        variation out of range (never sent by this state) is ignored.
        """
        for r in results:
            if not 0 <= r.variation < self.n_variations:
                continue
            key = (r.nside, r.pixel)
            if self._locate(key) is not None:
                self.record(r)
            else:
                self._known.setdefault(key, {}).setdefault(r.variation, r)

    def record(self, result: VariationResult) -> bool:
        """Take one result. Returns False for a duplicate or a task this state never sent."""
        return self.record_many((result,))[0]

    def record_many(self, results: Iterable[VariationResult]) -> list[bool]:
        """Take many results (a flush of the server's). For each, in order, whether it was taken:
        False for a duplicate (of an earlier result or of one before it in ``results``) or for a
        task this state never sent, as :meth:`record` would say one by one."""
        results = results if isinstance(results, list) else list(results)
        if len(results) >= 16 and self.n_variations == 1 and not self._known:
            return self._record_whole(results)
        taken = [False] * len(results)
        completions: list[_Completion] = []
        n = self.n_variations
        tables = self._tables
        known_by_key = self._known
        for i, r in enumerate(results):
            table = tables.get(r.nside)
            if table is None or not 0 <= r.variation < n:
                continue
            try:
                row = table.row_of(int(r.pixel))
            except (TypeError, ValueError):
                continue
            if row < 0:
                continue
            left = table.outstanding.item(row)
            if left == 0:
                continue  # complete already
            key = (r.nside, r.pixel)
            known = known_by_key.get(key)
            if known is not None and r.variation in known:
                continue
            taken[i] = True
            self._progress(r.nside).tasks_done += 1
            table.outstanding[row] = left - 1  # now: a duplicate later in this flush is refused
            if left > 1:
                if known is None:
                    known = known_by_key[key] = {}
                known[r.variation] = r
            elif known:
                known[r.variation] = r
                del known_by_key[key]
                completions.append(self._fold(table, row, list(known.values())))
            else:
                completions.append(self._only(table, row, r))
        if completions:
            self._store(completions)
        return taken

    def _record_whole(self, results: list[VariationResult]) -> list[bool]:
        """:meth:`record_many` of one-variation results when nothing is known of pending pixels:
        every result taken completes its pixel, so which are taken is decided on arrays."""
        m = len(results)
        nsides = np.fromiter((r.nside for r in results), np.int64, m)
        pixels = np.fromiter((r.pixel for r in results), np.int64, m)
        variations = np.fromiter((r.variation for r in results), np.int64, m)
        taken = np.zeros(m, dtype=bool)
        rows = np.full(m, -1, dtype=np.int64)
        for nside in np.unique(nsides).tolist():
            table = self._tables.get(nside)
            if table is None:
                continue
            at = np.flatnonzero((nsides == nside) & (variations == 0))
            found = table.rows_of(pixels[at])
            at, found = at[found >= 0], found[found >= 0]
            is_open = table.outstanding[found] > 0
            at, found = at[is_open], found[is_open]
            _, first = np.unique(found, return_index=True)  # a pixel twice in the flush: the first
            first.sort()
            taken[at[first]] = True
            rows[at[first]] = found[first]
            self._progress(nside).tasks_done += int(first.size)
        tables = self._tables
        completions = [
            self._only(tables[results[i].nside], row, results[i])
            for i, row in zip(np.flatnonzero(taken).tolist(), rows[taken].tolist(), strict=True)
        ]
        if completions:
            self._store(completions)
        return taken.tolist()  # type: ignore[no-any-return]

    @staticmethod
    def _only(table: _PixelTable, row: int, r: VariationResult) -> _Completion:
        """The completion of a pixel by its only result (:func:`best_of` of one)."""
        if not r.failed and math.isfinite(r.llh):
            return (table, row, float(r.llh), r.variation, r.fit, None)
        return (table, row, math.nan, r.variation, r.fit, r.error or _FAILED)

    @staticmethod
    def _fold(table: _PixelTable, row: int, results: list[VariationResult]) -> _Completion:
        pb = best_of(results)
        return (table, row, pb.llh, pb.variation, pb.fit, pb.error)

    def _store(self, completions: list[_Completion]) -> None:
        """Write completed pixels into their tables, in order; progress and the best fit follow."""
        n = len(completions)
        self._n_pending -= n
        need = self._n_done + n
        if need > len(self._done_row):
            capacity = max(need, len(self._done_row) * 3 // 2, 1024)
            for name in ("_done_table", "_done_row"):
                old = getattr(self, name)
                new = np.zeros(capacity, dtype=old.dtype)
                new[: self._n_done] = old[: self._n_done]
                setattr(self, name, new)
        if n == 1:  # one result at a time (record): no lists
            self._done_table[self._n_done] = completions[0][0].number
            self._done_row[self._n_done] = completions[0][1]
            by_table = {0: completions}
        else:
            self._done_table[self._n_done : need] = [c[0].number for c in completions]
            self._done_row[self._n_done : need] = [c[1] for c in completions]
            by_table = {}
            for c in completions:
                by_table.setdefault(c[0].number, []).append(c)
        self._n_done = need
        best = self._best
        best_rank = None if best is None else (best.llh, -best.nside, best.pixel)
        for group in by_table.values():
            table = group[0][0]
            rows = [c[1] for c in group]
            llh = [c[2] for c in group]
            table.complete(rows, llh, [c[3] for c in group], [c[4] for c in group], [c[5] for c in group])
            prog = self._progress(table.nside)
            prog.pixels_done += len(group)
            ok = [(value, row) for value, row in zip(llh, rows, strict=True) if value == value]
            prog.pixels_failed += len(group) - len(ok)
            if ok:  # the lowest llh, then the finer nside, then the lower pixel, as before
                value, pixel, row = min((v, table.pixel.item(r), r) for v, r in ok)
                rank = (value, -table.nside, pixel)
                if best_rank is None or rank < best_rank:
                    best_rank, best = rank, table.best(row)
        self._best = best

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
            planned_any = False
            for nside, pixels in _plan_arrays(self.strategy.plan(self)):
                table = self._table(nside)
                if pixels.size and (int(pixels.min()) < 0 or int(pixels.max()) >= table.npix):
                    raise ValueError(f"the strategy planned pixels outside nside {nside}")
                pixels = pixels[table.rows_of(pixels) < 0]  # planned already (pending or complete)
                if pixels.size:
                    planned_any = True
                    groups.extend(self._add(table, pixels))
            if not planned_any or groups:
                break
        plan = TaskPlan(self, groups)
        if not plan and not self._pending_view:
            self.finished = True
        return plan

    def _add(self, table: _PixelTable, pixels: np.ndarray) -> list[tuple[int, np.ndarray, tuple[int, ...]]]:
        """Plan new pixels of one nside; their task groups (nside, pixels, missing variations)."""
        n, nside = self.n_variations, table.nside
        rows = table.append(pixels, n)
        self._n_pending += int(pixels.size)
        prog = self._progress(nside)
        prog.tasks_sent += n * int(pixels.size)
        everything = tuple(range(n))
        stored = [p for (ns, p) in self._known if ns == nside] if self._known else []
        has = np.isin(pixels, np.asarray(stored, dtype=np.int64)) if stored else None
        pixels = pixels.astype(table.pixel.dtype)  # the plan holds them until published: int32 mostly
        if has is None or not has.any():
            return [(nside, pixels, everything)]
        # resume: pixels with stored results are published for their missing variations only
        partial: dict[tuple[int, ...], list[int]] = {}
        completions: list[_Completion] = []
        for i in np.flatnonzero(has).tolist():
            pixel, row = int(pixels[i]), int(rows[i])
            known = self._known[(nside, pixel)]
            missing = tuple(v for v in everything if v not in known)
            prog.tasks_done += n - len(missing)
            if missing:
                table.outstanding[row] = len(missing)
                partial.setdefault(missing, []).append(pixel)
            else:
                del self._known[(nside, pixel)]
                completions.append(self._fold(table, row, list(known.values())))
        if completions:
            self._store(completions)
        groups = [(nside, pixels[~has], everything)] if not has.all() else []
        groups.extend((nside, np.asarray(p, dtype=np.int64), v) for v, p in partial.items())
        return groups

    def _specs(self, nside: int, pixels: np.ndarray, variations: tuple[int, ...]) -> list[TaskSpec]:
        ra, dec = px.pixel_radec(nside, pixels)
        zen, az = equatorial_to_detector(ra, dec, self.mjd)
        seeds = self._seeds(nside, pixels)
        specs = []
        for p, r, d, z, a, seed in zip(
            pixels.tolist(),
            np.asarray(ra, float).tolist(),
            np.asarray(dec, float).tolist(),
            np.asarray(zen, float).tolist(),
            np.asarray(az, float).tolist(),
            seeds,
            strict=True,
        ):
            specs.extend(TaskSpec(nside, p, v, r, d, z, a, seed) for v in variations)
        return specs

    def seed_for(self, key: PixelKey) -> dict[str, float] | None:
        """Vertex seed from the nearest coarser completed pixel containing this one."""
        return self._seeds(key[0], np.array([key[1]], dtype=np.int64))[0]

    def _seeds(self, nside: int, pixels: np.ndarray) -> list[dict[str, float] | None]:
        """:meth:`seed_for` of many pixels of one nside, a coarser nside at a time."""
        seeds: list[dict[str, float] | None] = [None] * int(pixels.size)
        todo = np.arange(pixels.size)
        for coarse in sorted((n for n in self.strategy.nsides if n < nside), reverse=True):
            table = self._tables.get(coarse)
            if not todo.size:
                break
            if table is None or not table.n_complete:
                continue
            columns = [table.fit.get(k) for k in FIT_VERTEX_KEYS]
            if any(c is None for c in columns):
                continue
            rows = table.rows_of(_parents(nside, pixels[todo], coarse))
            at = np.maximum(rows, 0)
            values = np.stack([c[at] for c in columns], axis=1)  # type: ignore[index]
            # a completed parent that did not fail and has a finite vertex (None/absent are NaN)
            ok = (rows >= 0) & (table.outstanding[at] == 0) & np.isfinite(table.llh[at])
            ok &= np.isfinite(values).all(axis=1)
            for i, vertex in zip(todo[ok].tolist(), values[ok].tolist(), strict=True):
                seeds[i] = dict(zip(("x", "y", "z", "t"), vertex, strict=True))
            todo = todo[~ok]
        return seeds

    def progress_dict(self) -> dict[str, dict[str, int]]:
        return {str(n): vars(p).copy() for n, p in sorted(self.progress.items())}


def _plan_arrays(planned: PlannedPixels) -> list[tuple[int, np.ndarray]]:
    """A strategy's plan as (nside, int64 pixels) with repeats dropped, first occurrences in order."""
    if isinstance(planned, Mapping):
        items = [(int(n), np.asarray(p).ravel()) for n, p in planned.items()]
    else:
        by_nside: dict[int, list[int]] = {}
        for nside, pixel in planned:
            by_nside.setdefault(int(nside), []).append(pixel)
        items = [(n, np.asarray(p)) for n, p in by_nside.items()]
    out = []
    for nside, pixels in items:
        if pixels.size == 0:
            continue
        if pixels.dtype.kind not in "iu":
            raise ValueError(f"the strategy planned non-integer pixels at nside {nside}")
        pixels = pixels.astype(np.int64, copy=False)
        if pixels.size > 1:
            _, first = np.unique(pixels, return_index=True)
            if first.size < pixels.size:
                pixels = pixels[np.sort(first)]
        out.append((nside, pixels))
    return out


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
