"""Track geometry and the (Gaussian-convolved) Pandel photon arrival-time PDF, shared by the
simulator and the Pandel recos.

Notation (reco_physics_data.md section 3): a muon arriving from zenith theta and azimuth phi moves
along ``p = -(sin t cos p, sin t sin p, cos t)``; for a DOM at ``r_i`` and a track through ``r0`` at
time ``t0``: ``l = (r_i - r0).p``, ``rho = |(r_i - r0) x p|``, direct arrival time
``t_geo = t0 + (l + rho * GEO_FACTOR) / c``, residual ``t_res = t_hit - t_geo``. The Pandel PDF of
``t_res`` is a Gamma(shape d_eff / lambda, rate 1/tau + c_ice / lambda_a) density. Timing jitter is
a Gaussian convolution; :class:`ConvolvedPandelTable` tabulates ln p_sigma and ln S_sigma on a
regular (d_eff, t_res) grid once per process so a likelihood evaluation is a bilinear lookup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage, special

# IceCube I3Constants.
N_PHASE = 1.3195
N_GROUP = 1.35634
C_VACUUM_M_PER_NS = 0.299792458
C_ICE_M_PER_NS = C_VACUUM_M_PER_NS / N_GROUP
COS_CHERENKOV = 1.0 / N_PHASE
SIN_CHERENKOV = math.sqrt(1.0 - COS_CHERENKOV**2)
TAN_CHERENKOV = SIN_CHERENKOV / COS_CHERENKOV
# Extra path of the direct Cherenkov photon per metre of closest-approach distance, group velocity.
GEO_FACTOR = N_GROUP / SIN_CHERENKOV - 1.0 / TAN_CHERENKOV


@dataclass(frozen=True)
class IceModel:
    """Bulk-ice Pandel parameters (ipdf IceModel / rpdf): lengths in m, tau in ns."""

    name: str
    absorption_m: float
    tau_ns: float
    scattering_m: float  # effective scattering length lambda
    p1: float
    p0_m: float
    pc1_m: float
    pc2_m: float

    @property
    def rate_per_ns(self) -> float:
        """Gamma rate r = 1/tau + c_ice/lambda_a."""
        return 1.0 / self.tau_ns + C_ICE_M_PER_NS / self.absorption_m

    def effective_distance(self, rho: np.ndarray, cos_eta: np.ndarray) -> np.ndarray:
        """d_eff = P1 rho + P0 + Pc1 cos(eta) + Pc2 cos^2(eta): the PMT-orientation-corrected distance."""
        return self.p1 * rho + self.p0_m + self.pc1_m * cos_eta + self.pc2_m * cos_eta * cos_eta


ICE_MODELS: dict[str, IceModel] = {
    "H0": IceModel("H0", 98.0, 596.0, 36.93, 0.9045, 4.249, -6.629, 5.430),
    "H1": IceModel("H1", 98.0, 578.0, 35.04, 0.8682, 3.615, -5.081, 5.015),
    "H2": IceModel("H2", 98.0, 556.7, 33.29, 0.8395, 3.094, -3.946, 4.636),
    "H3": IceModel("H3", 98.0, 542.2, 31.72, 0.8106, 2.683, -3.090, 4.436),
    "H4": IceModel("H4", 98.0, 526.3, 29.94, 0.7790, 2.139, -0.9614, 4.020),
}
DEFAULT_ICE = "H2"


def get_ice_model(name: str) -> IceModel:
    try:
        return ICE_MODELS[name]
    except KeyError:
        raise ValueError(f"unknown ice model {name!r}; known: {', '.join(ICE_MODELS)}") from None


# --------------------------------------------------------------------------------------------
# Directions and track geometry
# --------------------------------------------------------------------------------------------


def travel_direction(zenith: float, azimuth: float) -> np.ndarray:
    """Unit vector the particle moves along (opposite of where it comes from)."""
    st = math.sin(zenith)
    return -np.array([st * math.cos(azimuth), st * math.sin(azimuth), math.cos(zenith)])


def transverse_basis(direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors orthogonal to ``direction`` and to each other (deterministic)."""
    helper = np.array([0.0, 0.0, 1.0]) if abs(direction[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = np.cross(direction, helper)
    u /= np.linalg.norm(u)
    v = np.cross(direction, u)
    return u, v


@dataclass(frozen=True)
class TrackGeometry:
    """Per-DOM quantities of a track hypothesis (arrays of the DOMs' shape)."""

    along: np.ndarray  # l, m
    rho: np.ndarray  # closest-approach distance, m
    cos_eta: np.ndarray  # photon direction z-component at the DOM (+1: travelling up into the PMT face)
    t_geo: np.ndarray  # direct-photon arrival time, ns


def track_geometry(
    positions: np.ndarray, vertex: np.ndarray, t0: float, direction: np.ndarray
) -> TrackGeometry:
    """Geometry of DOMs ``positions`` (n, 3) with respect to the infinite track (vertex, t0, direction)."""
    delta = positions - vertex
    along = delta @ direction
    perp = delta - along[:, None] * direction
    rho = np.linalg.norm(perp, axis=1)
    cos_eta = photon_cos_eta(perp[:, 2], rho, float(direction[2]))
    t_geo = t0 + (along + GEO_FACTOR * rho) / C_VACUUM_M_PER_NS
    return TrackGeometry(along, rho, cos_eta, t_geo)


def clamp(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``np.clip(x, lo, hi)``, the same values (NaN stays NaN) without ``np.clip``'s Python-level
    dispatch, which costs more than the arithmetic on the (hypotheses, DOMs) arrays of a fit."""
    return np.minimum(np.maximum(x, lo), hi)


def log_add_floor(log_l: np.ndarray, log_floor: float) -> np.ndarray:
    """``np.logaddexp(log_l, log_floor)`` to within one ulp (NaN, +inf and -inf as it treats them).

    numpy's logaddexp is a scalar loop; written as max + log1p(exp(-|d|)) it runs on numpy's vector
    exp and log1p, about three times faster on a fit's arrays; it runs for every DOM of every
    hypothesis."""
    return np.maximum(log_l, log_floor) + np.log1p(np.exp(-np.abs(log_l - log_floor)))


def photon_cos_eta(perp_z: np.ndarray, rho: np.ndarray, direction_z: float) -> np.ndarray:
    """z-component of the direct Cherenkov photon's unit direction at the DOM.

    The photon path from the emission point is ``perp + (rho / tan theta_c) p`` of length
    ``rho / sin theta_c``; dividing gives ``sin(theta_c) perp_z / rho + cos(theta_c) p_z``.
    """
    safe_rho = np.maximum(rho, 1e-6)
    return np.clip(SIN_CHERENKOV * perp_z / safe_rho + COS_CHERENKOV * direction_z, -1.0, 1.0)


# --------------------------------------------------------------------------------------------
# Pandel PDF
# --------------------------------------------------------------------------------------------


def pandel_pdf(t: np.ndarray, d_eff: np.ndarray, ice: IceModel) -> np.ndarray:
    """Unconvolved Pandel density of the residual t (ns) at effective distance d_eff (m); 0 for t <= 0."""
    t, d_eff = np.broadcast_arrays(np.asarray(t, float), np.asarray(d_eff, float))
    xi = d_eff / ice.scattering_m
    r = ice.rate_per_ns
    out = np.zeros_like(t)
    pos = t > 0
    tp, xp = t[pos], xi[pos]
    out[pos] = np.exp(xp * math.log(r) + (xp - 1.0) * np.log(tp) - r * tp - special.gammaln(xp))
    return out


def pandel_sf(t: np.ndarray, d_eff: np.ndarray, ice: IceModel) -> np.ndarray:
    """Survival function of the unconvolved Pandel: Q(xi, r t), 1 for t <= 0."""
    t, d_eff = np.broadcast_arrays(np.asarray(t, float), np.asarray(d_eff, float))
    return special.gammaincc(d_eff / ice.scattering_m, ice.rate_per_ns * np.maximum(t, 0.0))


# Gauss-Hermite nodes for the jitter convolution far from t = 0 (the Gamma density is smooth there).
_GH_NODES, _GH_WEIGHTS = np.polynomial.hermite.hermgauss(24)
# Below this residual the closed form (parabolic-cylinder function) is used; above it the
# quadrature, because D_{-xi}(e) overflows for large negative e (t >> sigma): at sigma = 5 ns and
# t = 300 ns e is -60 and D is inf, which made every table entry beyond ~170 ns non-finite. The
# switch sits at 25 sigma (|e| <= 25), at most 300 ns, at least 8 sigma.
_CLOSED_FORM_MAX_T_NS = 300.0


def closed_form_limit_ns(sigma_ns: float) -> float:
    return max(min(_CLOSED_FORM_MAX_T_NS, 25.0 * sigma_ns), 8.0 * sigma_ns)


def convolved_log_pdf(t: np.ndarray, d_eff: np.ndarray, ice: IceModel, sigma_ns: float) -> np.ndarray:
    """ln p_sigma(t | d_eff): Pandel convolved with a Gaussian of width sigma (van Eijndhoven et al. 2007).

    Closed form ``p_sigma = (r s)^xi / (sqrt(2 pi) s) exp(-t^2/2s^2 + e^2/4) D_{-xi}(e)``, ``e = r s - t/s``
    for t < 300 ns; Gauss-Hermite quadrature of the Gamma density over the jitter above.
    """
    t, d_eff = np.broadcast_arrays(np.asarray(t, float), np.asarray(d_eff, float))
    xi = np.maximum(d_eff / ice.scattering_m, 1e-6)
    r = ice.rate_per_ns
    s = float(sigma_ns)
    out = np.empty_like(t)
    near = t < closed_form_limit_ns(s)
    if near.any():
        tn, xn = t[near], xi[near]
        e = r * s - tn / s
        # Far before the light (e >> 1) use D_{-xi}(e) ~ e^{-xi} exp(-e^2/4) to avoid underflow.
        far_early = e > 30.0
        log_d = np.empty_like(e)
        if (~far_early).any():
            d_val, _ = special.pbdv(-xn[~far_early], e[~far_early])
            log_d[~far_early] = np.log(np.maximum(d_val, 1e-300)) + e[~far_early] ** 2 / 4.0
        if far_early.any():
            log_d[far_early] = -xn[far_early] * np.log(e[far_early])
        out[near] = xn * math.log(r * s) - math.log(math.sqrt(2 * math.pi) * s) - tn**2 / (2 * s * s) + log_d
    far = ~near
    if far.any():
        tf, xf = t[far], xi[far]
        shifted = np.maximum(tf[:, None] - math.sqrt(2.0) * s * _GH_NODES[None, :], 1e-300)
        log_terms = (
            xf[:, None] * math.log(r)
            + (xf[:, None] - 1.0) * np.log(shifted)
            - r * shifted
            - special.gammaln(xf)[:, None]
            + np.log(_GH_WEIGHTS / math.sqrt(math.pi))[None, :]
        )
        log_terms = np.where(shifted > 1e-300, log_terms, -np.inf)
        out[far] = special.logsumexp(log_terms, axis=1)
    return out


def convolved_sf_quadrature(t: np.ndarray, d_eff: np.ndarray, ice: IceModel, sigma_ns: float) -> np.ndarray:
    """S_sigma(t) = E[Q(xi, r max(t - sigma Z, 0))] by Gauss-Hermite quadrature (accurate for t >> sigma)."""
    t, d_eff = np.broadcast_arrays(np.asarray(t, float), np.asarray(d_eff, float))
    shifted = np.maximum(t[..., None] - math.sqrt(2.0) * sigma_ns * _GH_NODES, 0.0)
    q = special.gammaincc((d_eff / ice.scattering_m)[..., None], ice.rate_per_ns * shifted)
    return q @ (_GH_WEIGHTS / math.sqrt(math.pi))


# --------------------------------------------------------------------------------------------
# Tabulated convolved Pandel
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ConvolvedPandelTable:
    """ln p_sigma and ln S_sigma on a regular grid: d_eff in [0, d_max] m, t in [t_min, t_max] ns.

    Lookups clip to the grid: beyond ``t_max`` (several microseconds late) or ``d_max`` a hit is
    explained by the noise floor anyway.
    """

    ice: IceModel
    sigma_ns: float
    t_min: float
    t_step: float
    n_t: int
    d_step: float
    n_d: int
    log_pdf: np.ndarray  # (n_d, n_t), flattened lookups use row-major order
    log_sf: np.ndarray

    def lookup(
        self, t_res: np.ndarray, d_eff: np.ndarray, want_sf: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Bilinear interpolation of ln p (and ln S) at arrays of residuals and effective distances."""
        ft = np.clip((t_res - self.t_min) * (1.0 / self.t_step), 0.0, self.n_t - 1.000001)
        # d_eff >= P0 + min orientation term (2.25 m for H2) by construction; the row at d = 0 (a
        # degenerate Gamma) is never interpolated from.
        fd = np.clip(d_eff * (1.0 / self.d_step), 1.0, self.n_d - 1.000001)
        it = ft.astype(np.intp)
        jd = fd.astype(np.intp)
        wt = ft - it
        wd = fd - jd
        idx = jd * self.n_t + it
        flat = self.log_pdf.ravel()
        top = flat[idx] * (1.0 - wt) + flat[idx + 1] * wt
        bottom = flat[idx + self.n_t] * (1.0 - wt) + flat[idx + self.n_t + 1] * wt
        log_p = top + (bottom - top) * wd
        if not want_sf:
            return log_p, None
        flat_s = self.log_sf.ravel()
        top = flat_s[idx] * (1.0 - wt) + flat_s[idx + 1] * wt
        bottom = flat_s[idx + self.n_t] * (1.0 - wt) + flat_s[idx + self.n_t + 1] * wt
        return log_p, top + (bottom - top) * wd


@lru_cache(maxsize=8)
def convolved_pandel_table(
    ice_name: str = DEFAULT_ICE,
    sigma_ns: float = 15.0,
    t_min: float = -250.0,
    t_max: float = 6000.0,
    t_step: float = 2.0,
    d_max: float = 700.0,
    d_step: float = 2.0,
) -> ConvolvedPandelTable:
    """Build (once per process and parameter set) the tabulated convolved Pandel; about 0.5 s."""
    ice = get_ice_model(ice_name)
    t_grid = t_min + t_step * np.arange(int(round((t_max - t_min) / t_step)) + 1)
    d_grid = d_step * np.arange(int(round(d_max / d_step)) + 1)
    xi = np.maximum(d_grid / ice.scattering_m, 1e-6)[:, None]
    r = ice.rate_per_ns
    knot = int(np.searchsorted(t_grid, closed_form_limit_ns(sigma_ns)))
    log_pdf = np.empty((len(d_grid), len(t_grid)))
    d_mesh, t_mesh = np.meshgrid(d_grid, t_grid[:knot], indexing="ij")
    log_pdf[:, :knot] = convolved_log_pdf(t_mesh, d_mesh, ice, sigma_ns)
    # Late residuals: the Gamma density is smooth on the jitter scale there, so a discrete Gaussian
    # filter of the sampled density along t is exact to the grid's accuracy (and 20x faster than
    # quadrature). The margin keeps the filter's reach inside t > 0.
    margin = int(math.ceil(6.0 * sigma_ns / t_step))
    t_late = t_grid[knot - margin :]
    log_gamma = (
        xi * math.log(r) + (xi - 1.0) * np.log(t_late)[None, :] - r * t_late[None, :] - special.gammaln(xi)
    )
    smoothed = ndimage.gaussian_filter1d(
        np.exp(log_gamma), sigma_ns / t_step, axis=1, mode="nearest", truncate=6.0
    )
    log_pdf[:, knot:] = np.log(np.maximum(smoothed[:, margin:], 1e-300))
    # Survival: the tail beyond the grid by quadrature, plus the trapezoid integral of the density
    # from each grid time to the end of the grid.
    tail = convolved_sf_quadrature(np.full(len(d_grid), t_grid[-1]), d_grid, ice, sigma_ns)
    pdf = np.exp(log_pdf)
    segments = 0.5 * (pdf[:, 1:] + pdf[:, :-1]) * t_step
    integral_to_end = np.concatenate(
        [np.cumsum(segments[:, ::-1], axis=1)[:, ::-1], np.zeros((len(d_grid), 1))], 1
    )
    sf = np.minimum(integral_to_end + tail[:, None], 1.0)
    log_sf = np.log(np.maximum(sf, 1e-300))
    return ConvolvedPandelTable(
        ice=ice,
        sigma_ns=float(sigma_ns),
        t_min=float(t_min),
        t_step=float(t_step),
        n_t=len(t_grid),
        d_step=float(d_step),
        n_d=len(d_grid),
        log_pdf=np.ascontiguousarray(log_pdf),
        log_sf=np.ascontiguousarray(log_sf),
    )
