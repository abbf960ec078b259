"""Photon tables of an infinite bare muon, built from the photon simulator, B-spline smoothed.

What a table holds: the expected photoelectrons per nanosecond, ``r(rho, cos_eta, t)``, at a DOM at
closest-approach distance rho from the track whose direct Cherenkov photon would arrive with
z-component cos_eta (the orientation variable of the Pandel ``d_eff``), at residual time t after
the direct-light time, per detectable photon emitted per metre of track. Its time integral is
the expected charge shape ``mu(rho, cos_eta)``, and ``r / mu`` the arrival-time PDF.

Build (:func:`build_table`): tracers leave a point of a track in *homogeneous* reference ice
(the SPICE-Mie median layer's lengths at 400 nm, with SPICE's wavelength dependence) on the
Cherenkov cone of their wavelength; because the track is infinite and the ice uniform, every
point of every step is scored as if a DOM sat there (a track-length estimator: the fluence of a
line source is the tracers' path length in an annulus about the axis divided by its area), with
the angular acceptance of a down-facing DOM whose axis makes the given cos_eta with the direct
photon (the remaining azimuth is averaged). The histogram of ln r is smoothed by cubic smoothing
B-splines (``scipy.interpolate.make_smoothing_spline``, weights from the counts, penalty by
generalised cross-validation) along time, then along distance and orientation, and stored
sampled on its grid (float32, about 100 kB).

Depth enters when the table is used: a DOM's ice is the path average of the layered
coefficients between the track and the DOM, and the table is read at the scaled distance and
time ``rho / s``, ``t / s`` with ``s = sqrt(s_scat s_abs)`` the geometric mean of the ratios of
effective scattering and absorption lengths to the reference (the diffusion attenuation length
scales with exactly that mean); densities scale by ``1 / s``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.interpolate import make_smoothing_spline

from skyscan.physics.pandel_model import C_VACUUM_M_PER_NS, COS_CHERENKOV, GEO_FACTOR, SIN_CHERENKOV, clamp
from skyscan.physics.photonsim.ice import LayeredIce, homogeneous_ice
from skyscan.physics.photonsim.propagate import DOM_RADIUS_M, Photons, propagate, rotate
from skyscan.physics.photonsim.simulate import angular_acceptance

TABLE_SCHEMA = "skyscan.photon-table/1"
PACKAGED_TABLE = Path(__file__).with_name("data") / "bare_muon_spice_mie.npz"
RHO_EDGES_M = np.linspace(0.0, math.sqrt(400.0), 41) ** 2
COS_ETA_NODES = np.linspace(-1.0, 1.0, 9)
T_EDGES_NS = np.r_[-30.0, -20.0, -12.0, -6.0, -3.0, -1.0, 0.0, np.geomspace(1.0, 5000.0, 70)]
DETECTOR_Z_RANGE = (-520.0, 530.0)


class TableMissing(FileNotFoundError):
    """No photon table file (build it with ``bench/build_photon_table.py``)."""


@dataclass(frozen=True, eq=False)
class PhotonTable:
    """Smoothed ln r on nodes (rho centres, cos_eta nodes, t centres) plus the ice it refers to."""

    rho_m: np.ndarray
    cos_eta: np.ndarray
    t_ns: np.ndarray
    log_rate: np.ndarray  # (n_rho, n_cos, n_t): ln PE per ns per (detectable photon per m)
    ref_eff_scattering_m: float
    ref_absorption_m: float
    layer_z_edges: np.ndarray  # layered ice at 400 nm, for per-DOM path averages
    layer_eff_scattering: np.ndarray  # 1/m
    layer_absorption: np.ndarray  # 1/m
    meta: dict[str, float | str]

    def to_npz(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path,
            schema=np.array(TABLE_SCHEMA),
            rho_m=self.rho_m.astype(np.float32),
            cos_eta=self.cos_eta.astype(np.float32),
            t_ns=self.t_ns.astype(np.float32),
            log_rate=self.log_rate.astype(np.float32),
            ref=np.array([self.ref_eff_scattering_m, self.ref_absorption_m]),
            layer_z_edges=self.layer_z_edges,
            layer_eff_scattering=self.layer_eff_scattering.astype(np.float32),
            layer_absorption=self.layer_absorption.astype(np.float32),
            meta_keys=np.array(list(self.meta)),
            meta_values=np.array([str(v) for v in self.meta.values()]),
        )

    @classmethod
    def from_npz(cls, path: Path) -> PhotonTable:
        if not path.is_file():
            raise TableMissing(f"photon table not found: {path} (build it with bench/build_photon_table.py)")
        with np.load(path, allow_pickle=False) as f:
            if str(f["schema"]) != TABLE_SCHEMA:
                raise ValueError(f"{path}: not a {TABLE_SCHEMA} file")
            return cls(
                rho_m=f["rho_m"].astype(float),
                cos_eta=f["cos_eta"].astype(float),
                t_ns=f["t_ns"].astype(float),
                log_rate=f["log_rate"].astype(float),
                ref_eff_scattering_m=float(f["ref"][0]),
                ref_absorption_m=float(f["ref"][1]),
                layer_z_edges=f["layer_z_edges"].astype(float),
                layer_eff_scattering=f["layer_eff_scattering"].astype(float),
                layer_absorption=f["layer_absorption"].astype(float),
                meta=dict(zip(f["meta_keys"].tolist(), f["meta_values"].tolist(), strict=True)),
            )

    # -- evaluation (trilinear on the nodes; used by tests and by the loader of the recos) ----
    def log_rate_at(self, rho: np.ndarray, cos_eta: np.ndarray, t: np.ndarray) -> np.ndarray:
        from scipy.interpolate import RegularGridInterpolator

        interp = RegularGridInterpolator(
            (np.sqrt(self.rho_m), self.cos_eta, np.arcsinh(self.t_ns / 5.0)),
            self.log_rate,
            bounds_error=False,
            fill_value=None,
        )
        pts = np.stack(
            np.broadcast_arrays(
                np.sqrt(np.clip(rho, self.rho_m[0], self.rho_m[-1])),
                np.clip(cos_eta, -1.0, 1.0),
                np.arcsinh(np.clip(t, self.t_ns[0], self.t_ns[-1]) / 5.0),
            ),
            axis=-1,
        )
        return interp(pts)

    def expected_pe(self, rho: np.ndarray, cos_eta: np.ndarray) -> np.ndarray:
        """Time integral of r over the table's time range (PE per detectable photon per m)."""
        rho, cos_eta = np.broadcast_arrays(np.asarray(rho, float), np.asarray(cos_eta, float))
        t = self.t_ns
        rate = np.exp(self.log_rate_at(rho[..., None], cos_eta[..., None], t))
        return np.trapezoid(rate, t, axis=-1)


def reference_lengths(layered: LayeredIce) -> tuple[float, float]:
    """Median effective scattering and absorption lengths (400 nm) of the layers the detector spans."""
    be, a = layered.at_400nm()
    centres = 0.5 * (layered.z_edges[1:] + layered.z_edges[:-1])
    inside = (centres >= DETECTOR_Z_RANGE[0]) & (centres <= DETECTOR_Z_RANGE[1])
    return float(np.median(1.0 / be[inside])), float(np.median(1.0 / a[inside]))


def _smooth_log_rate(counts: np.ndarray, weight_sum: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """ln of the rate histogram, smoothed by cubic smoothing splines along t, then rho and cos_eta."""
    n_rho, n_cos, n_t = weight_sum.shape
    raw_rate = weight_sum * norm
    with np.errstate(divide="ignore"):
        log_raw = np.log(raw_rate)
    floor = np.nanmin(np.where(np.isfinite(log_raw), log_raw, np.nan)) - 2.0
    u_t = np.arcsinh(0.5 * (T_EDGES_NS[1:] + T_EDGES_NS[:-1]) / 5.0)
    out = np.full_like(log_raw, floor)
    for i in range(n_rho):
        for j in range(n_cos):
            # No light arrives before the direct light: the empty bins before a row's first count
            # stay at the floor. Fitted too, they let the spline carry the steep fall after a near
            # DOM's direct peak back into negative times (most of the light 25 ns early at 1 m).
            first = int(np.argmax(counts[i, j] > 0))
            y = np.where(np.isfinite(log_raw[i, j]), log_raw[i, j], floor)[first:]
            w = np.sqrt(counts[i, j, first:]) + 1e-3  # ln of a Poisson count has variance ~ 1/n
            out[i, j, first:] = make_smoothing_spline(u_t[first:], y, w=w / w.mean())(u_t[first:])
    u_rho = np.sqrt(0.5 * (RHO_EDGES_M[1:] + RHO_EDGES_M[:-1]))
    for j in range(n_cos):
        for k in range(n_t):
            out[:, j, k] = make_smoothing_spline(u_rho, out[:, j, k])(u_rho)
    # Orientation: nine nodes are too few for a GCV spline; a light binomial filter instead.
    out = ndimage.convolve1d(out, np.array([0.25, 0.5, 0.25]), axis=1, mode="nearest")
    # Smoothing must not move charge: where a row is well measured (>= 1e4 scored points, under 1%
    # statistical error), its time integral is put back to the histogram's. A near DOM's direct
    # peak is narrower than the spline can follow, and it loses up to a third of its charge there.
    dt = np.diff(T_EDGES_NS)
    raw_mass = (raw_rate * dt).sum(axis=-1)
    smooth_mass = (np.exp(out) * dt).sum(axis=-1)
    measured = (counts.sum(axis=-1) >= 1e4) & (raw_mass > 0)
    correction = np.zeros_like(raw_mass)
    correction[measured] = np.log(raw_mass[measured] / smooth_mass[measured])
    return out + correction[..., None]


def build_table(
    layered: LayeredIce, n_tracers: int = 1_000_000, seed: int = 1, chunk: int = 250_000
) -> PhotonTable:
    """Simulate and score ``n_tracers`` photons of an infinite bare muon in the reference ice."""
    started = time.process_time()
    ref_be, ref_a = reference_lengths(layered)
    ice = homogeneous_ice(ref_be, ref_a, wavelength_scaling=layered)
    from skyscan.physics.photonsim.muon import detectable_yield_per_m

    _, wl_weights = detectable_yield_per_m(ice)
    rng = np.random.default_rng(seed)
    n_rho, n_cos, n_t = len(RHO_EDGES_M) - 1, len(COS_ETA_NODES), len(T_EDGES_NS) - 1
    weight_sum = np.zeros(n_rho * n_cos * n_t)
    counts = np.zeros(n_rho * n_cos * n_t)
    cos_j = COS_ETA_NODES
    sin_j = np.sqrt(1.0 - cos_j**2)

    def score(
        pos: np.ndarray, d: np.ndarray, t: np.ndarray, length: np.ndarray, speed: np.ndarray, _: np.ndarray
    ) -> None:
        # Two random points per step, each carrying half its length (unbiased track-length estimate).
        for _k in range(2):
            u = rng.uniform(size=len(t)) * length
            p = pos + u[:, None] * d
            rho = np.hypot(p[:, 0], p[:, 1])
            i_rho = np.searchsorted(RHO_EDGES_M, rho, side="right") - 1
            t_res = t + u / speed - p[:, 2] / C_VACUUM_M_PER_NS - GEO_FACTOR * rho / C_VACUUM_M_PER_NS
            i_t = np.searchsorted(T_EDGES_NS, t_res, side="right") - 1
            ok = (i_rho >= 0) & (i_rho < n_rho) & (i_t >= 0) & (i_t < n_t) & (rho > 1e-6)
            if not ok.any():
                continue
            p, dd, rho, i_rho, i_t, w = p[ok], d[ok], rho[ok], i_rho[ok], i_t[ok], 0.5 * length[ok]
            e_rad = p[:, :2] / rho[:, None]
            d_rad = dd[:, 0] * e_rad[:, 0] + dd[:, 1] * e_rad[:, 1]
            d_az = -dd[:, 0] * e_rad[:, 1] + dd[:, 1] * e_rad[:, 0]
            d_long = dd[:, 2]
            # Direct photon d0 = (rad sin_c, 0, long cos_c); e1 = (rad cos_c, 0, long -sin_c), e2 = az.
            along_d0 = d_rad * SIN_CHERENKOV + d_long * COS_CHERENKOV
            along_e1 = d_rad * COS_CHERENKOV - d_long * SIN_CHERENKOV
            psi = rng.uniform(0.0, 2 * math.pi, (len(w), len(cos_j)))
            cos_inc = cos_j * along_d0[:, None] + sin_j * (
                np.cos(psi) * along_e1[:, None] + np.sin(psi) * d_az[:, None]
            )
            acc = angular_acceptance(cos_inc)
            flat = ((i_rho[:, None] * n_cos + np.arange(n_cos)) * n_t + i_t[:, None]).ravel()
            weight_sum[:] += np.bincount(flat, weights=(acc * w[:, None]).ravel(), minlength=weight_sum.size)
            counts[:] += np.bincount(flat, minlength=counts.size)

    for start in range(0, n_tracers, chunk):
        n = min(chunk, n_tracers - start)
        wl = rng.choice(len(wl_weights), size=n, p=wl_weights)
        cos_c = 1.0 / ice.n_phase[wl]
        dirs = rotate(np.tile([0.0, 0.0, 1.0], (n, 1)), cos_c, rng.uniform(0.0, 2 * math.pi, n))
        photons = Photons(np.zeros((n, 3)), dirs, np.zeros(n), wl.astype(np.int64))

        def region(p: np.ndarray) -> np.ndarray:
            return np.hypot(p[:, 0], p[:, 1]) < RHO_EDGES_M[-1] + 50.0

        propagate(photons, ice, rng, t_max_ns=6000.0, region=region, on_step=score)

    area = math.pi * (RHO_EDGES_M[1:] ** 2 - RHO_EDGES_M[:-1] ** 2)
    dt = np.diff(T_EDGES_NS)
    norm = (math.pi * DOM_RADIUS_M**2 / n_tracers) / (area[:, None, None] * dt[None, None, :])
    shape = (n_rho, n_cos, n_t)
    log_rate = _smooth_log_rate(
        counts.reshape(shape), weight_sum.reshape(shape), np.broadcast_to(norm, shape)
    )
    be400, a400 = layered.at_400nm()
    return PhotonTable(
        rho_m=0.5 * (RHO_EDGES_M[1:] + RHO_EDGES_M[:-1]),
        cos_eta=COS_ETA_NODES.copy(),
        t_ns=0.5 * (T_EDGES_NS[1:] + T_EDGES_NS[:-1]),
        log_rate=log_rate,
        ref_eff_scattering_m=ref_be,
        ref_absorption_m=ref_a,
        layer_z_edges=layered.z_edges.copy(),
        layer_eff_scattering=be400,
        layer_absorption=a400,
        meta={
            "source": layered.name,
            "tracers": n_tracers,
            "seed": seed,
            "cpu_s": round(time.process_time() - started, 1),
            "license": "derived from IceCube SPICE-Mie (icetray-public, BSD-2-Clause)",
        },
    )


@lru_cache(maxsize=2)
def load_table(path: str | None = None) -> PhotonTable:
    """The packaged table (or ``path``), read once per process."""
    return PhotonTable.from_npz(Path(path) if path else PACKAGED_TABLE)


@dataclass(frozen=True, eq=False)
class PathIce:
    """Layered ice at 400 nm, averaged along straight photon paths (for per-DOM effective lengths)."""

    z_edges: np.ndarray
    cum_eff_scattering: np.ndarray  # cumulative b_e dz on the edges
    cum_absorption: np.ndarray
    ref_eff_scattering_m: float
    ref_absorption_m: float

    @classmethod
    def from_table(cls, table: PhotonTable) -> PathIce:
        widths = np.diff(table.layer_z_edges)
        return cls(
            z_edges=table.layer_z_edges,
            cum_eff_scattering=np.r_[0.0, np.cumsum(table.layer_eff_scattering * widths)],
            cum_absorption=np.r_[0.0, np.cumsum(table.layer_absorption * widths)],
            ref_eff_scattering_m=table.ref_eff_scattering_m,
            ref_absorption_m=table.ref_absorption_m,
        )

    @cached_property
    def _uniform_width(self) -> float:
        """The layer width when all layers are equal, else 0."""
        widths = np.diff(self.z_edges)
        return float(widths[0]) if np.allclose(widths, widths[0]) else 0.0

    @cached_property
    def _layer_steps(self) -> tuple[np.ndarray, np.ndarray]:
        """Both cumulative sums' rise across each layer (the same differences, computed once)."""
        return np.diff(self.cum_eff_scattering), np.diff(self.cum_absorption)

    def _cumulative_at(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Both cumulative sums at heights z (clamped to the table), linear between edges.

        On equal layers (the packaged table) the layer is found arithmetically and shared by both
        sums: the same values as ``np.interp`` at a quarter of its binary searches, which dominated
        a fit's per-DOM ice (it runs for every hypothesis of every fit).
        """
        edges = self.z_edges
        width = self._uniform_width
        if not width:
            return (np.interp(z, edges, self.cum_eff_scattering), np.interp(z, edges, self.cum_absorption))
        n_layers = len(edges) - 1
        f = clamp((z - edges[0]) * (1.0 / width), 0.0, n_layers)
        k = np.minimum(f.astype(np.intp), n_layers - 1)
        w = f - k
        ds, da = self._layer_steps
        return self.cum_eff_scattering[k] + ds[k] * w, self.cum_absorption[k] + da[k] * w

    def scales(self, z_a: np.ndarray, z_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Effective-scattering and absorption lengths between heights z_a and z_b, over the reference.

        Mean coefficients over [z_a, z_b], widened to at least 1 m (a horizontal path sees its layer).
        Both ends are looked up in one call (a fit calls this for every stencil of every pixel).
        """
        mid = 0.5 * (z_a + z_b)
        half = np.maximum(0.5 * np.abs(z_a - z_b), 0.5)
        ends = np.empty((2, *np.shape(mid)))
        np.add(mid, half, out=ends[0])
        np.subtract(mid, half, out=ends[1])
        s, a = self._cumulative_at(ends)
        span = 2.0 * half
        b_e = (s[0] - s[1]) / span
        a_mean = (a[0] - a[1]) / span
        return 1.0 / (b_e * self.ref_eff_scattering_m), 1.0 / (a_mean * self.ref_absorption_m)


@lru_cache(maxsize=1)
def packaged_path_ice() -> PathIce:
    return PathIce.from_table(load_table())
