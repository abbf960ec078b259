"""In-ice detector geometry: DOM positions, dark-noise rates and efficiencies as numpy arrays.

Two sources:

* :func:`load_geometry_csv` reads a DOM table (``string,om,x_m,y_m,z_m,noise_rate_hz,
  relative_efficiency``), e.g. the IC86 table converted from IceCube's GCD (77 dead DOMs carry
  efficiency 0);
* :func:`icecube_like_geometry` builds an IceCube-like array in code (strings on a 125 m
  triangular grid inside a hexagon, 60 DOMs 17 m apart), so the simulator, the tests and the demo
  need no data files.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

GEOMETRY_COLUMNS = ("string", "om", "x_m", "y_m", "z_m", "noise_rate_hz", "relative_efficiency")
IC86_RELATIVE_PATH = Path("icecube/ic86_geometry.csv")


class GeometryError(ValueError):
    """A geometry table is malformed (the message names the line)."""


@dataclass(frozen=True, eq=False)
class Geometry:
    """One row per DOM; arrays share the row order. Positions in metres, detector frame."""

    string: np.ndarray  # int
    om: np.ndarray  # int
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    noise_rate_hz: np.ndarray
    efficiency: np.ndarray  # relative DOM efficiency; 0 marks a dead DOM
    name: str = "geometry"
    _index: dict[tuple[int, int], int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        n = len(self.string)
        for attr in ("om", "x", "y", "z", "noise_rate_hz", "efficiency"):
            if len(getattr(self, attr)) != n:
                raise GeometryError(f"column {attr} has {len(getattr(self, attr))} rows, expected {n}")
        index = {(int(s), int(o)): i for i, (s, o) in enumerate(zip(self.string, self.om, strict=True))}
        if len(index) != n:
            raise GeometryError("duplicate (string, om) keys")
        self._index.update(index)

    def __len__(self) -> int:
        return len(self.string)

    @cached_property
    def positions(self) -> np.ndarray:
        """(n, 3) array of DOM positions."""
        return np.stack([self.x, self.y, self.z], axis=1)

    @cached_property
    def live(self) -> np.ndarray:
        """Boolean mask of DOMs that record light (efficiency > 0)."""
        return self.efficiency > 0

    def index_of(self, string: int, om: int) -> int:
        """Row of the DOM (string, om); KeyError when the geometry has no such DOM."""
        return self._index[(int(string), int(om))]

    def lookup(self, strings: np.ndarray, oms: np.ndarray) -> np.ndarray:
        """Rows of many DOMs at once; -1 where a key is unknown."""
        return np.fromiter(
            (self._index.get((int(s), int(o)), -1) for s, o in zip(strings, oms, strict=True)),
            int,
            len(strings),
        )

    def position(self, string: int, om: int) -> tuple[float, float, float]:
        i = self.index_of(string, om)
        return float(self.x[i]), float(self.y[i]), float(self.z[i])


def load_geometry_csv(path: str | Path) -> Geometry:
    """Read a DOM table CSV with the columns of :data:`GEOMETRY_COLUMNS` (header required)."""
    path = Path(path)
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in GEOMETRY_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise GeometryError(f"{path}: missing columns {', '.join(missing)}")
        rows: list[tuple[int, int, float, float, float, float, float]] = []
        for line_no, row in enumerate(reader, start=2):
            try:
                values = (
                    int(row["string"]),
                    int(row["om"]),
                    float(row["x_m"]),
                    float(row["y_m"]),
                    float(row["z_m"]),
                    float(row["noise_rate_hz"]),
                    float(row["relative_efficiency"]),
                )
            except (TypeError, ValueError) as err:
                raise GeometryError(f"{path}:{line_no}: {err}") from None
            if not all(math.isfinite(v) for v in values[2:]):
                raise GeometryError(f"{path}:{line_no}: non-finite value")
            rows.append(values)
    if not rows:
        raise GeometryError(f"{path}: no DOMs")
    cols = list(zip(*rows, strict=True))
    return Geometry(
        string=np.asarray(cols[0], int),
        om=np.asarray(cols[1], int),
        x=np.asarray(cols[2], float),
        y=np.asarray(cols[3], float),
        z=np.asarray(cols[4], float),
        noise_rate_hz=np.asarray(cols[5], float),
        efficiency=np.asarray(cols[6], float),
        name=path.name,
    )


def shared_data_dir() -> Path | None:
    """The reference-data folder: ``$SKYDRIVER_SHARED_DATA``, else ``../shared/data`` next to the checkout.

    The data are never part of the repository; callers skip (tests) or ask for a path when absent.
    """
    env = os.environ.get("SKYDRIVER_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates += [
        Path(__file__).resolve().parents[3] / "shared" / "data",  # ../shared next to the checkout
        Path.cwd().parent / "shared" / "data",
    ]
    return next((c for c in candidates if c.is_dir()), None)


def find_default_geometry() -> Path | None:
    """The shared IC86 table if it is present, else None."""
    base = shared_data_dir()
    if base is None or not (base / IC86_RELATIVE_PATH).is_file():
        return None
    return base / IC86_RELATIVE_PATH


def hexagon_grid(spacing_m: float, rings: int) -> np.ndarray:
    """(x, y) of the points of a triangular grid inside a hexagon of ``rings`` rings (1 + 3r(r+1) points)."""
    points = []
    for q in range(-rings, rings + 1):
        for r in range(max(-rings, -q - rings), min(rings, -q + rings) + 1):
            # Axial hexagon coordinates -> Cartesian: neighbours are exactly ``spacing_m`` apart.
            points.append((spacing_m * (q + r / 2.0), spacing_m * r * math.sqrt(3.0) / 2.0))
    return np.asarray(points, float)


def icecube_like_geometry(
    n_strings: int = 80,
    spacing_m: float = 125.0,
    doms_per_string: int = 60,
    dom_spacing_m: float = 17.0,
    top_z_m: float = 500.0,
    noise_rate_hz: tuple[float, float] = (500.0, 800.0),
    seed: int = 0,
) -> Geometry:
    """An IceCube-like in-ice array: the ``n_strings`` grid points closest to the centre of a triangular grid.

    Noise rates are drawn uniformly in ``noise_rate_hz`` with a fixed seed, every DOM is live with
    efficiency 1. Strings are numbered from 1 by distance to the centre, DOMs from 1 at the top.
    """
    if not 1 <= n_strings <= 400:
        raise ValueError("n_strings must be within [1, 400]")
    rings = 1
    while 1 + 3 * rings * (rings + 1) < n_strings:
        rings += 1
    grid = hexagon_grid(spacing_m, rings + 1)
    # Order by radius then angle so the choice of the outermost strings is deterministic.
    order = np.lexsort(
        (np.arctan2(grid[:, 1], grid[:, 0]).round(9), np.hypot(grid[:, 0], grid[:, 1]).round(6))
    )
    xy = grid[order[:n_strings]]
    rng = np.random.default_rng(seed)
    n = n_strings * doms_per_string
    string = np.repeat(np.arange(1, n_strings + 1), doms_per_string)
    om = np.tile(np.arange(1, doms_per_string + 1), n_strings)
    z = top_z_m - dom_spacing_m * (om - 1)
    return Geometry(
        string=string,
        om=om,
        x=np.repeat(xy[:, 0], doms_per_string),
        y=np.repeat(xy[:, 1], doms_per_string),
        z=z.astype(float),
        noise_rate_hz=rng.uniform(*noise_rate_hz, size=n),
        efficiency=np.ones(n),
        name=f"icecube-like-{n_strings}",
    )
