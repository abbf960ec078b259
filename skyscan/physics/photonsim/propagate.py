"""Photon transport through layered ice, vectorised over photons.

Each tracked photon ("tracer") has a position, direction, time and wavelength bin. One iteration
moves every live tracer to its next scattering point: the step's scattering optical depth is drawn
from Exp(1) and turned into a length through the layered coefficients (exactly, by inverting the
cumulative optical depth along z); absorption uses an optical depth drawn once at birth, spent
layer by layer; the photon moves at the group velocity c / n_group(lambda); at the new point it
scatters with the Henyey-Greenstein phase function (mean cosine g of its layer). Steps are capped
(``max_step_m``) so DOM candidates can be found from a 2D cell grid of strings; a capped step
does not scatter (exponential free paths are memoryless, so this is exact).

DOMs are spheres (optionally oversized, as IceCube's photon propagators do for speed); a tracer
whose step crosses a sphere stops there and is recorded as a hit with its time and direction.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from skyscan.physics.photonsim.ice import LayeredIce

C_VACUUM_M_PER_NS = 0.299792458
DOM_RADIUS_M = 0.1651  # 13" glass sphere


@dataclass
class Photons:
    """Tracer states: arrays of one row per photon."""

    pos: np.ndarray  # (n, 3) m
    dir: np.ndarray  # (n, 3) unit vectors
    time: np.ndarray  # ns
    wl: np.ndarray  # wavelength bin (int)

    def __len__(self) -> int:
        return len(self.time)


@dataclass
class Hits:
    """One row per tracer that reached a DOM sphere."""

    photon: np.ndarray  # tracer index
    dom: np.ndarray  # DOM row
    time: np.ndarray  # ns at the sphere surface
    dir_z: np.ndarray  # z-component of the photon direction (+1: moving up into a down-facing PMT)
    wl: np.ndarray


@dataclass
class Propagated:
    hits: Hits
    final_pos: np.ndarray  # where each tracer ended (absorbed, hit, left, or at t_max)
    final_time: np.ndarray
    absorbed: np.ndarray  # bool per tracer
    n_steps: int


@dataclass(frozen=True, eq=False)
class DomSpheres:
    """DOM spheres grouped by string, with a cell grid of candidate strings for fast hit tests."""

    positions: np.ndarray  # (m, 3)
    radius_m: float
    max_step_m: float
    cell_m: float = 20.0
    # derived
    string_xy: np.ndarray = field(init=False)
    sorted_keys: np.ndarray = field(init=False)
    sorted_rows: np.ndarray = field(init=False)
    grid_origin: np.ndarray = field(init=False)
    grid_shape: tuple[int, int] = field(init=False)
    cell_strings: np.ndarray = field(init=False)

    _Z_OFFSET = 5000.0
    _KEY_STRIDE = 20000.0

    def __post_init__(self) -> None:
        xy = np.round(self.positions[:, :2], 2)
        string_xy, string_of_dom = np.unique(xy, axis=0, return_inverse=True)
        string_of_dom = string_of_dom.ravel()
        keys = string_of_dom * self._KEY_STRIDE + self.positions[:, 2] + self._Z_OFFSET
        order = np.argsort(keys, kind="stable")
        reach = self.radius_m + self.max_step_m + self.cell_m * math.sqrt(0.5)
        lo = string_xy.min(axis=0) - reach
        hi = string_xy.max(axis=0) + reach
        shape = (int(math.ceil((hi[0] - lo[0]) / self.cell_m)), int(math.ceil((hi[1] - lo[1]) / self.cell_m)))
        cx = lo[0] + self.cell_m * (np.arange(shape[0]) + 0.5)
        cy = lo[1] + self.cell_m * (np.arange(shape[1]) + 0.5)
        gx, gy = np.meshgrid(cx, cy, indexing="ij")
        centres = np.stack([gx.ravel(), gy.ravel()], axis=1)
        d2 = ((centres[:, None, :] - string_xy[None, :, :]) ** 2).sum(axis=2)
        near = d2 <= reach**2
        width = max(1, int(near.sum(axis=1).max()))
        cell_strings = np.full((len(centres), width), -1, dtype=np.int64)
        for c in np.flatnonzero(near.any(axis=1)):
            found = np.flatnonzero(near[c])
            cell_strings[c, : len(found)] = found
        object.__setattr__(self, "string_xy", string_xy)
        object.__setattr__(self, "sorted_keys", keys[order])
        object.__setattr__(self, "sorted_rows", order)
        object.__setattr__(self, "grid_origin", lo)
        object.__setattr__(self, "grid_shape", shape)
        object.__setattr__(self, "cell_strings", cell_strings)

    def first_hit(
        self, p0: np.ndarray, d: np.ndarray, length: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For straight steps (p0, d, length): (step index, DOM row, distance) of the first sphere crossed."""
        empty = np.zeros(0, np.int64)
        ij = np.floor((p0[:, :2] - self.grid_origin) / self.cell_m).astype(np.int64)
        inside = (
            (ij[:, 0] >= 0)
            & (ij[:, 0] < self.grid_shape[0])
            & (ij[:, 1] >= 0)
            & (ij[:, 1] < self.grid_shape[1])
        )
        steps = np.flatnonzero(inside)
        if steps.size == 0:
            return empty, empty, np.zeros(0)
        cands = self.cell_strings[ij[steps, 0] * self.grid_shape[1] + ij[steps, 1]]  # (k, width)
        seg = np.repeat(steps, cands.shape[1])
        strings = cands.ravel()
        keep = strings >= 0
        seg, strings = seg[keep], strings[keep]
        if seg.size == 0:
            return empty, empty, np.zeros(0)
        # Closest approach of the step's xy projection to the string axis.
        rel = p0[seg, :2] - self.string_xy[strings]
        dxy = d[seg, :2]
        dd = (dxy * dxy).sum(axis=1)
        u = np.clip(-(rel * dxy).sum(axis=1) / np.maximum(dd, 1e-18), 0.0, length[seg])
        closest = rel + u[:, None] * dxy
        near = (closest * closest).sum(axis=1) <= self.radius_m**2
        seg, strings = seg[near], strings[near]
        if seg.size == 0:
            return empty, empty, np.zeros(0)
        z0 = p0[seg, 2]
        z1 = z0 + length[seg] * d[seg, 2]
        base = strings * self._KEY_STRIDE + self._Z_OFFSET
        lo = np.searchsorted(self.sorted_keys, base + np.minimum(z0, z1) - self.radius_m)
        hi = np.searchsorted(self.sorted_keys, base + np.maximum(z0, z1) + self.radius_m, side="right")
        counts = hi - lo
        pair = np.repeat(np.arange(len(seg)), counts)
        if pair.size == 0:
            return empty, empty, np.zeros(0)
        starts = np.cumsum(counts) - counts
        rows = self.sorted_rows[lo[pair] + (np.arange(len(pair)) - starts[pair])]
        s = seg[pair]
        oc = self.positions[rows] - p0[s]
        b = (oc * d[s]).sum(axis=1)
        c2 = (oc * oc).sum(axis=1) - self.radius_m**2
        disc = b * b - c2
        u_hit = np.where(c2 <= 0.0, 0.0, b - np.sqrt(np.maximum(disc, 0.0)))
        ok = (disc >= 0.0) & (u_hit >= 0.0) & (u_hit <= length[s])
        s, rows, u_hit = s[ok], rows[ok], u_hit[ok]
        if s.size == 0:
            return empty, empty, np.zeros(0)
        order = np.lexsort((u_hit, s))
        s, rows, u_hit = s[order], rows[order], u_hit[order]
        first = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
        return s[first], rows[first], u_hit[first]


def henyey_greenstein_cos(g: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF sample of the HG phase function's cos(theta) for uniform u."""
    g = np.asarray(g, float)
    small = np.abs(g) < 1e-6
    gs = np.where(small, 0.5, g)
    frac = (1.0 - gs * gs) / (1.0 - gs + 2.0 * gs * u)
    cos_hg = (1.0 + gs * gs - frac * frac) / (2.0 * gs)
    return np.clip(np.where(small, 2.0 * u - 1.0, cos_hg), -1.0, 1.0)


def rotate(d: np.ndarray, cos_t: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Turn unit vectors ``d`` by polar angle arccos(cos_t) and azimuth phi about themselves."""
    sin_t = np.sqrt(np.maximum(0.0, 1.0 - cos_t * cos_t))
    cp, sp = np.cos(phi), np.sin(phi)
    dx, dy, dz = d[:, 0], d[:, 1], d[:, 2]
    s = np.sqrt(np.maximum(0.0, 1.0 - dz * dz))
    polar = s < 1e-6
    s_safe = np.where(polar, 1.0, s)
    nx = sin_t * (dx * dz * cp - dy * sp) / s_safe + dx * cos_t
    ny = sin_t * (dy * dz * cp + dx * sp) / s_safe + dy * cos_t
    nz = -sin_t * cp * s + dz * cos_t
    sign = np.where(dz >= 0.0, 1.0, -1.0)
    nx = np.where(polar, sin_t * cp, nx)
    ny = np.where(polar, sin_t * sp, ny)
    nz = np.where(polar, sign * cos_t, nz)
    out = np.stack([nx, ny, nz], axis=1)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


StepCallback = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], None]


def propagate(
    photons: Photons,
    ice: LayeredIce,
    rng: np.random.Generator,
    doms: DomSpheres | None = None,
    t_max_ns: float = 6000.0,
    max_step_m: float = 15.0,
    region: Callable[[np.ndarray], np.ndarray] | None = None,
    on_step: StepCallback | None = None,
    max_iterations: int = 100_000,
) -> Propagated:
    """Track every photon until it is absorbed, hits a DOM, leaves ``region`` or reaches ``t_max_ns``.

    ``t_max_ns`` is absolute (photon times are absolute). ``on_step(pos, dir, time, length, speed,
    ids)`` sees every straight step before it is taken (the table builder scores along them).
    """
    if doms is not None and doms.max_step_m < max_step_m:
        raise ValueError("the DOM grid was built for shorter steps than max_step_m")
    n_total = len(photons)
    cum_s, cum_a = ice.cum_scat, ice.cum_abs
    scat, absorb, gcos = ice.scattering, ice.absorption, ice.mean_cos
    speed_of_wl = C_VACUUM_M_PER_NS / ice.n_group

    ids = np.arange(n_total)
    pos = photons.pos.astype(float).copy()
    direction = photons.dir.astype(float).copy()
    time = photons.time.astype(float).copy()
    wl = photons.wl.astype(np.int64).copy()
    tau_abs = rng.exponential(size=n_total)
    final_pos = pos.copy()
    final_time = time.copy()
    absorbed_all = np.zeros(n_total, bool)
    hit_parts: list[tuple[np.ndarray, ...]] = []
    iterations = 0
    while len(ids) and iterations < max_iterations:
        iterations += 1
        n = len(ids)
        z0 = pos[:, 2]
        dz = direction[:, 2]
        layer = ice.layer_index(z0)
        tau_s = rng.exponential(size=n) / ice.scattering_factor(direction)
        flat = np.abs(dz) < 1e-4
        dz_safe = np.where(flat, 1.0, dz)
        target = ice.cumulative_at(cum_s, wl, z0) + tau_s * dz
        length = (ice.z_at_cumulative(cum_s, wl, target) - z0) / dz_safe
        length = np.where(flat, tau_s / np.maximum(scat[layer, wl], 1e-12), length)
        length = np.maximum(length, 0.0)
        capped = length > max_step_m
        length = np.minimum(length, max_step_m)
        # Absorption along the step (exact layer by layer, except for nearly horizontal steps).
        z1 = z0 + length * dz
        abs_depth = (ice.cumulative_at(cum_a, wl, z1) - ice.cumulative_at(cum_a, wl, z0)) / dz_safe
        abs_depth = np.where(flat, absorb[layer, wl] * length, np.abs(abs_depth))
        absorbed = abs_depth >= tau_abs
        length = np.where(absorbed, length * tau_abs / np.maximum(abs_depth, 1e-300), length)
        tau_abs = tau_abs - abs_depth
        speed = speed_of_wl[wl]
        timed_out = time + length / speed >= t_max_ns
        length = np.where(timed_out, np.maximum(t_max_ns - time, 0.0) * speed, length)
        stopped = absorbed | timed_out
        if on_step is not None:
            on_step(pos, direction, time, length, speed, ids)
        hit = np.zeros(n, bool)
        if doms is not None:
            seg, rows, u = doms.first_hit(pos, direction, length)
            if seg.size:
                hit[seg] = True
                hit_parts.append(
                    (ids[seg], rows, time[seg] + u / speed[seg], direction[seg, 2].copy(), wl[seg].copy())
                )
                length[seg] = u
        pos = pos + length[:, None] * direction
        time = time + length / speed
        done = stopped | hit
        if region is not None:
            done |= ~region(pos)
        absorbed_all[ids[absorbed & ~hit]] = True
        if done.any():
            final_pos[ids[done]] = pos[done]
            final_time[ids[done]] = time[done]
        turn = ~done & ~capped
        if turn.any():
            k = np.flatnonzero(turn)
            g = gcos[ice.layer_index(pos[k, 2]), wl[k]]
            cos_t = henyey_greenstein_cos(g, rng.uniform(size=len(k)))
            direction[k] = rotate(direction[k], cos_t, rng.uniform(0.0, 2 * math.pi, len(k)))
        live = ~done
        ids, pos, direction, time, wl, tau_abs = (
            ids[live],
            pos[live],
            direction[live],
            time[live],
            wl[live],
            tau_abs[live],
        )
    if len(ids):
        final_pos[ids] = pos
        final_time[ids] = time
    if hit_parts:
        cols = [np.concatenate(c) for c in zip(*hit_parts, strict=True)]
        hits = Hits(*cols)
    else:
        hits = Hits(
            np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0, np.int64)
        )
    return Propagated(hits, final_pos, final_time, absorbed_all, iterations)
