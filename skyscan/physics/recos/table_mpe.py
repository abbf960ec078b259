"""``table-mpe``: a photon-table MPE track likelihood in the spirit of IceCube's SplineMPE.

Per hit DOM i (first pulse after cleaning, residual t_i, closest-approach distance rho_i,
orientation cos_eta_i, charge q_i):

* ice per DOM: the layered coefficients averaged along the direct photon's path give the scale
  ``s_i`` (:class:`skyscan.physics.tables.photon_table.PathIce`); the table is read at
  ``rho_i / s_i`` and ``t_i / s_i``;
* timing: the *first of N* density of the table's arrival-time PDF p, ``N p S^(N-1)``, convolved
  once with a Gaussian jitter (``jitter_ns``) -- the jitter acts on the first photon, not on every
  photon before taking the earliest (the defect of ``pandel-mpe``'s product form). N is the DOM's
  charge rounded to photons, at most ``max_photons``; "bright" DOMs (charge above
  ``bright_factor`` times the median charge of hit DOMs) are capped at ``bright_photons``, since
  their photon count is least trustworthy (saturation, late pulses, the shared timing errors of
  one DOM); N is read at the nearest of 16 tabulated counts from 1 to 200 (17 log-spaced, rounded);
* charge: the Poisson probability of q_i given that the DOM was hit,
  ``q ln mu - mu - ln(1 - e^-mu)``, with ``mu_i = A m(rho_i/s_i, cos_eta_i) / s_i`` from the table
  and the light yield A profiled per hypothesis (``A = sum q / sum m`` over the DOMs used);
  bright and saturated (``saturation_pe``) DOMs are left out of it, and ``charge_weight`` scales it;
* ``L_i = f_N(t_i) / s_i + eps`` and ``llh = -sum ln L_i - charge term``.

The fit machinery (anchor, time scan, batched pattern search, variations, bounds) is the Pandel
recos' (:class:`skyscan.physics.recos.pandel.PandelTrackReco`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import ClassVar

import numpy as np
from scipy import ndimage

from skyscan.physics.event import Event
from skyscan.physics.pandel_model import SIN_CHERENKOV, clamp
from skyscan.physics.recos.pandel import PandelPrepared, PandelTrackReco
from skyscan.physics.tables.photon_table import PathIce, load_table

ALL_PHOTON_NODES: tuple[int, ...] = tuple(int(n) for n in np.unique(np.round(np.geomspace(1.0, 200.0, 17))))
_T_SCALE_NS = 5.0  # time axis u = asinh(t / 5 ns): sub-ns steps near the direct light, ~t/10 late
_N_U = 120
_FINE_STEP_NS = 0.5


@dataclass(frozen=True, eq=False)
class FirstOfNTable:
    """ln of the jittered first-of-N density on a regular (sqrt rho, cos_eta, u) grid, per N node."""

    sqrt_rho0: float
    sqrt_rho_step: float
    n_rho: int
    cos_step: float
    n_cos: int
    u0: float
    u_step: float
    n_u: int
    log_density: np.ndarray  # (n_photon_nodes, n_rho, n_cos, n_u) flattened row-major
    log_mu: np.ndarray  # (n_rho, n_cos): ln expected PE per detectable photon per m
    path_ice: PathIce
    jitter_ns: float
    photon_nodes: tuple[int, ...]  # the photon counts N tabulated, one block of log_density each

    def lookup(
        self, node: np.ndarray, rho: np.ndarray, cos_eta: np.ndarray, t: np.ndarray, want_mu: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(ln f_N(t), ln m) by trilinear (bilinear for m) interpolation; ``node`` per DOM.
        ``want_mu=False`` skips m (None), which a timing-only likelihood does not read."""
        fr = clamp((np.sqrt(rho) - self.sqrt_rho0) / self.sqrt_rho_step, 0.0, self.n_rho - 1.000001)
        fc = clamp((cos_eta + 1.0) / self.cos_step, 0.0, self.n_cos - 1.000001)
        fu = clamp((np.arcsinh(t / _T_SCALE_NS) - self.u0) / self.u_step, 0.0, self.n_u - 1.000001)
        ir, ic, iu = fr.astype(np.intp), fc.astype(np.intp), fu.astype(np.intp)
        wr, wc, wu = fr - ir, fc - ic, fu - iu
        keep_u = 1.0 - wu
        base = ((node * self.n_rho + ir) * self.n_cos + ic) * self.n_u + iu
        flat = self.log_density.ravel()
        s_c = self.n_u
        s_r = self.n_cos * self.n_u

        def along_u(b: np.ndarray) -> np.ndarray:
            return flat[b] * keep_u + flat[b + 1] * wu

        def along_c(b: np.ndarray) -> np.ndarray:
            lo = along_u(b)
            return lo + (along_u(b + s_c) - lo) * wc

        lo = along_c(base)
        log_f = lo + (along_c(base + s_r) - lo) * wr
        if not want_mu:
            return log_f, None
        mu = self.log_mu.ravel()
        m_base = ir * self.n_cos + ic
        m_lo = mu[m_base] * (1.0 - wc) + mu[m_base + 1] * wc
        m_hi = mu[m_base + self.n_cos] * (1.0 - wc) + mu[m_base + self.n_cos + 1] * wc
        return log_f, m_lo + (m_hi - m_lo) * wr


@lru_cache(maxsize=4)
def first_of_n_table(
    jitter_ns: float, table_path: str | None = None, photon_nodes: tuple[int, ...] = ALL_PHOTON_NODES
) -> FirstOfNTable:
    """Build (once per process) the jittered first-of-N densities from the packaged photon table
    (about 1.1 s, plus 0.2 s per photon count)."""
    table = load_table(table_path)
    sqrt_rho = np.linspace(math.sqrt(table.rho_m[0]), math.sqrt(table.rho_m[-1]), 40)
    cos_nodes = np.linspace(-1.0, 1.0, 9)
    t_fine = np.arange(table.t_ns[0], table.t_ns[-1] + _FINE_STEP_NS, _FINE_STEP_NS)
    u_nodes = np.linspace(
        np.arcsinh(table.t_ns[0] / _T_SCALE_NS), np.arcsinh(table.t_ns[-1] / _T_SCALE_NS), _N_U
    )
    t_nodes = _T_SCALE_NS * np.sinh(u_nodes)
    rr, cc = np.meshgrid(sqrt_rho**2, cos_nodes, indexing="ij")
    rate = np.exp(table.log_rate_at(rr[..., None], cc[..., None], t_fine))  # (n_rho, n_cos, n_fine)
    mu = np.trapezoid(rate, t_fine, axis=-1)
    pdf = rate / mu[..., None]
    cdf = np.concatenate(
        [
            np.zeros(pdf.shape[:2] + (1,)),
            np.cumsum(0.5 * (pdf[..., 1:] + pdf[..., :-1]) * _FINE_STEP_NS, axis=-1),
        ],
        axis=-1,
    )
    survival = np.clip(1.0 - cdf / cdf[..., -1:], 0.0, 1.0)
    out = np.empty((len(photon_nodes), len(sqrt_rho), len(cos_nodes), _N_U))
    sigma_bins = jitter_ns / _FINE_STEP_NS
    for k, n in enumerate(photon_nodes):
        density = n * pdf * survival ** (n - 1)
        if sigma_bins > 0:
            density = ndimage.gaussian_filter1d(density, sigma_bins, axis=-1, mode="constant", truncate=6.0)
        sampled = np.empty(density.shape[:2] + (_N_U,))
        for i in range(density.shape[0]):
            for j in range(density.shape[1]):
                sampled[i, j] = np.interp(t_nodes, t_fine, density[i, j])
        out[k] = np.log(np.maximum(sampled, 1e-300))
    return FirstOfNTable(
        sqrt_rho0=float(sqrt_rho[0]),
        sqrt_rho_step=float(sqrt_rho[1] - sqrt_rho[0]),
        n_rho=len(sqrt_rho),
        cos_step=float(cos_nodes[1] - cos_nodes[0]),
        n_cos=len(cos_nodes),
        u0=float(u_nodes[0]),
        u_step=float(u_nodes[1] - u_nodes[0]),
        n_u=_N_U,
        log_density=np.ascontiguousarray(np.maximum(out, -700.0)),
        log_mu=np.log(np.maximum(mu, 1e-300)),
        path_ice=PathIce.from_table(table),
        jitter_ns=float(jitter_ns),
        photon_nodes=tuple(photon_nodes),
    )


class TableMPE(PandelTrackReco):
    name: ClassVar[str] = "table-mpe"
    description: ClassVar[str] = (
        "Photon-table MPE track likelihood (layered ice per DOM, jittered first-of-N timing, charge term)."
    )
    use_charge: ClassVar[bool] = True
    photon_nodes: ClassVar[tuple[int, ...]] = ALL_PHOTON_NODES

    def __init__(
        self,
        jitter_ns: float = 3.0,
        noise_floor: float = 1e-6,
        max_photons: int = 20,
        bright_factor: float = 10.0,
        bright_photons: int = 5,
        saturation_pe: float = 1000.0,
        charge_weight: float = 0.0,
        **options: object,
    ) -> None:
        unused = {"sigma_ns", "ice_model"} & set(options)
        if unused:
            raise ValueError(f"table-mpe has no {', '.join(sorted(unused))} (its timing jitter is jitter_ns)")
        super().__init__(noise_floor=noise_floor, max_photons=max_photons, **options)  # type: ignore[arg-type]
        if not 0.0 <= jitter_ns <= 50.0:
            raise ValueError("jitter_ns must be within [0, 50]")
        if not 1.0 <= bright_factor <= 1e4 or not 1 <= int(bright_photons) <= 10000:
            raise ValueError("bright_factor must be within [1, 1e4] and bright_photons within [1, 10000]")
        if not saturation_pe > 0 or not 0.0 <= charge_weight <= 10.0:
            raise ValueError("saturation_pe must be positive and charge_weight within [0, 10]")
        self.jitter_ns = float(jitter_ns)
        self.bright_factor = float(bright_factor)
        self.bright_photons = int(bright_photons)
        self.saturation_pe = float(saturation_pe)
        self.charge_weight = float(charge_weight)

    def _pdf_table(self) -> FirstOfNTable:
        return first_of_n_table(self.jitter_ns, None, self.photon_nodes)

    def prepare(self, event: Event) -> PandelPrepared:
        prep = super().prepare(event)
        q = prep.charges
        bright = q > self.bright_factor * float(np.median(q))
        photons = np.clip(np.round(q), 1, self.max_photons)
        photons = np.where(bright, np.minimum(photons, self.bright_photons), photons)
        nodes = np.log(np.asarray(prep.table.photon_nodes, dtype=float))
        node = np.abs(nodes[None, :] - np.log(photons)[:, None]).argmin(axis=1)
        in_charge = (~bright & (q < self.saturation_pe)).astype(float) * self.charge_weight
        return replace(prep, extra={"node": node.astype(np.intp), "charge_weight": in_charge})

    def _dom_terms(
        self, prep: PandelPrepared, rho: np.ndarray, cos_eta: np.ndarray, t_res: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | float]:
        table: FirstOfNTable = prep.table
        z_dom = prep.positions[:, 2][None, :]
        z_emit = z_dom - (rho / SIN_CHERENKOV) * cos_eta
        s_scat, s_abs = table.path_ice.scales(z_dom, z_emit)
        scale = np.sqrt(s_scat * s_abs)
        w = prep.extra["charge_weight"]
        with_charge = bool(w.any())
        log_f, log_m = table.lookup(prep.extra["node"], rho / scale, cos_eta, t_res / scale, with_charge)
        log_scale = np.log(scale)
        log_l = log_f - log_scale
        if log_m is None:
            return log_l, 0.0
        m = np.exp(log_m - log_scale)
        q = prep.charges
        amplitude = (w * q).sum() / np.maximum((w * m).sum(axis=1, keepdims=True), 1e-300)
        mu = np.maximum(amplitude * m, 1e-12)
        charge_ll = q * np.log(mu) - mu - np.log(-np.expm1(-mu))
        return log_l, -(w * charge_ll).sum(axis=1)
