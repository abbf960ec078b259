"""Layered South Pole ice for photon propagation: SPICE-Mie coefficients per 10 m layer and wavelength.

Source: IceCube's ice table ``Ice_table.mie.i3coords.cos090.08Apr2011.txt`` (icetray-public
``phys-services/resources/ice_tables``, BSD-2-Clause), read from the shared data folder. Its rows,
cross-checked against ``ice_transparency.parquet`` (a test does it): ``ABS`` is the absorption
coefficient a (1/m) and ``SCAT`` the *effective* scattering coefficient b_e = b (1 - g) (1/m), both at
30 wavelengths from 300 nm in 10 nm steps; 1/ABS and 1/SCAT at 400 nm equal the parquet's
absorption and scattering lengths to about 1%. The geometric scattering coefficient used for
propagation is b = b_e / (1 - g) with g the table's mean cosine (0.9). The table's lowest layer
stores lengths instead of coefficients (bedrock, 2800 m); it is replaced by its neighbour.
Tilted layers are not modelled (the table gives the central axis of the detector).

Everything is cumulated along z per wavelength (``cum_scat``, ``cum_abs``), so the optical depth of a
straight step is a difference of two interpolations and a step of given optical depth is one
inverse interpolation, vectorised over photons of different wavelengths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

SPICE_MIE_RELATIVE_PATH = Path("icecube/ice_tables/Ice_table.mie.i3coords.cos090.08Apr2011.txt")
TRANSPARENCY_RELATIVE_PATH = Path("icecube/ice_transparency.parquet")
DETECTOR_DEPTH_OF_Z0_M = 1948.07  # detector z = 1948.07 m - depth
WAVELENGTHS_NM = 300.0 + 10.0 * np.arange(30)

# Photon detection efficiency of a DOM per wavelength: photocathode quantum efficiency times the
# transmission of the glass sphere and gel (cut off below ~320 nm). A generic shape with a 25% peak
# near 390 nm, in the spirit of the published IceCube PMT/DOM curves (not a measured table).
_QE_NODES_NM = np.array([300, 310, 320, 340, 360, 380, 400, 420, 440, 460, 480, 500, 520, 540, 560, 580, 600])
_QE_NODES = np.array(
    [0.0, 0.01, 0.05, 0.17, 0.23, 0.25, 0.245, 0.23, 0.21, 0.18, 0.145, 0.11, 0.08, 0.05, 0.03, 0.015, 0.005]
)


def dom_efficiency(wavelength_nm: np.ndarray) -> np.ndarray:
    return np.interp(wavelength_nm, _QE_NODES_NM, _QE_NODES)


class IceDataMissing(FileNotFoundError):
    """The ice table is not there (the shared data folder is absent)."""


@dataclass(frozen=True, eq=False)
class LayeredIce:
    """Ice coefficients on layer edges ``z_edges`` (n+1, ascending) and wavelengths (n, n_wl)."""

    z_edges: np.ndarray
    absorption: np.ndarray  # a, 1/m, (n_layers, n_wl)
    eff_scattering: np.ndarray  # b_e, 1/m
    mean_cos: np.ndarray  # g
    n_group: np.ndarray  # (n_wl,) group index (depth independent in the table)
    n_phase: np.ndarray
    name: str = "ice"
    # Scattering anisotropy (a systematic variation; SPICE-Mie has none): the scattering coefficient
    # of a photon moving along direction d is b (1 + anisotropy (|d_h|^2 - 2 (d . a)^2)), a the
    # horizontal flow axis at ``flow_azimuth``: 1 - anisotropy along the axis, 1 + across it, 1 vertical.
    anisotropy: float = 0.0
    flow_azimuth: float = 0.0

    @property
    def n_layers(self) -> int:
        return len(self.z_edges) - 1

    @property
    def scattering(self) -> np.ndarray:
        """Geometric scattering coefficient b = b_e / (1 - g), 1/m."""
        return self.eff_scattering / (1.0 - self.mean_cos)

    # -- cumulative optical depth along z, per wavelength ------------------------------------
    def _cumulative(self, coeff: np.ndarray) -> np.ndarray:
        widths = np.diff(self.z_edges)[:, None]
        return np.vstack([np.zeros(coeff.shape[1]), np.cumsum(coeff * widths, axis=0)]).T  # (n_wl, n+1)

    @property
    def cum_scat(self) -> np.ndarray:
        return self._cum("scat")

    @property
    def cum_abs(self) -> np.ndarray:
        return self._cum("abs")

    def _cum(self, which: str) -> np.ndarray:
        cache = self.__dict__.setdefault("_cache", {})
        if which not in cache:
            cache[which] = self._cumulative(self.scattering if which == "scat" else self.absorption)
        return cache[which]  # type: ignore[no-any-return]

    def layer_index(self, z: np.ndarray) -> np.ndarray:
        cache = self.__dict__.setdefault("_cache", {})
        if "uniform" not in cache:
            widths = np.diff(self.z_edges)
            cache["uniform"] = float(widths[0]) if np.allclose(widths, widths[0]) else 0.0
        if cache["uniform"]:  # equal layers (the ice tables): arithmetic, no search
            k = ((z - self.z_edges[0]) * (1.0 / cache["uniform"])).astype(np.int64)
            return np.clip(k, 0, self.n_layers - 1)
        return np.clip(np.searchsorted(self.z_edges, z, side="right") - 1, 0, self.n_layers - 1)

    def cumulative_at(self, cum: np.ndarray, wl: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Cumulative optical depth ``cum[wl]`` at heights z (clamped to the table), vectorised."""
        zc = np.clip(z, self.z_edges[0], self.z_edges[-1])
        k = self.layer_index(zc)
        z0 = self.z_edges[k]
        width = self.z_edges[k + 1] - z0
        flat = wl * cum.shape[1] + k
        c0 = cum.ravel()[flat]
        return c0 + (cum.ravel()[flat + 1] - c0) * (zc - z0) / width

    def z_at_cumulative(self, cum: np.ndarray, wl: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`cumulative_at` for each photon's wavelength (targets clamped)."""
        n_wl, n_edges = cum.shape
        offset = float(cum[:, -1].max()) * 1.0001 + 1.0
        flat = (cum + offset * np.arange(n_wl)[:, None]).ravel()
        z_flat = np.tile(self.z_edges, n_wl)
        clamped = np.clip(target, 0.0, cum[wl, -1])
        return np.interp(clamped + offset * wl, flat, z_flat)

    def scaled(
        self,
        absorption: float = 1.0,
        scattering: float = 1.0,
        anisotropy: float = 0.0,
        flow_azimuth: float = 0.0,
    ) -> LayeredIce:
        """The same ice with every absorption and effective scattering coefficient multiplied, and
        optionally an anisotropy (systematic variations, as IceCube's SnowStorm samples per event)."""
        if not (0.0 < absorption < 10.0 and 0.0 < scattering < 10.0):
            raise ValueError("ice scale factors must be within (0, 10)")
        if not 0.0 <= anisotropy < 0.5:
            raise ValueError("anisotropy must be within [0, 0.5)")
        suffix = (
            f" x anisotropy {anisotropy:.3f} at {math.degrees(flow_azimuth):.0f} deg" if anisotropy else ""
        )
        return LayeredIce(
            z_edges=self.z_edges,
            absorption=self.absorption * absorption,
            eff_scattering=self.eff_scattering * scattering,
            mean_cos=self.mean_cos,
            n_group=self.n_group,
            n_phase=self.n_phase,
            name=f"{self.name} x abs {absorption:.3f} x scat {scattering:.3f}{suffix}",
            anisotropy=float(anisotropy),
            flow_azimuth=float(flow_azimuth),
        )

    def scattering_factor(self, direction: np.ndarray) -> np.ndarray | float:
        """Factor on the scattering coefficient for photons moving along ``direction`` (n, 3)."""
        if not self.anisotropy:
            return 1.0
        ax, ay = math.cos(self.flow_azimuth), math.sin(self.flow_azimuth)
        dx, dy = direction[:, 0], direction[:, 1]
        along = dx * ax + dy * ay
        return 1.0 + self.anisotropy * (dx * dx + dy * dy - 2.0 * along * along)

    # -- depth averages used by the recos -----------------------------------------------------
    def at_400nm(self) -> tuple[np.ndarray, np.ndarray]:
        """(effective scattering, absorption) coefficients per layer at 400 nm."""
        i = int(np.argmin(np.abs(WAVELENGTHS_NM - 400.0)))
        return self.eff_scattering[:, i].copy(), self.absorption[:, i].copy()


def homogeneous_ice(
    eff_scattering_m: float,
    absorption_m: float,
    mean_cos: float = 0.9,
    z_range: tuple[float, float] = (-2000.0, 2000.0),
    wavelength_scaling: LayeredIce | None = None,
    n_group: float = 1.35634,
    n_phase: float = 1.3195,
) -> LayeredIce:
    """Uniform ice with the given lengths at 400 nm (inf: none of that process).

    ``wavelength_scaling`` copies the wavelength dependence (and refractive indices) of a layered
    model's median layer; without it the coefficients do not depend on wavelength.
    """
    n_wl = len(WAVELENGTHS_NM)
    be = 0.0 if math.isinf(eff_scattering_m) else 1.0 / eff_scattering_m
    a = 0.0 if math.isinf(absorption_m) else 1.0 / absorption_m
    rel_b = np.ones(n_wl)
    rel_a = np.ones(n_wl)
    ng = np.full(n_wl, n_group)
    nph = np.full(n_wl, n_phase)
    if wavelength_scaling is not None:
        be400, a400 = wavelength_scaling.at_400nm()
        k = int(np.argsort(be400)[len(be400) // 2])
        i400 = int(np.argmin(np.abs(WAVELENGTHS_NM - 400.0)))
        rel_b = wavelength_scaling.eff_scattering[k] / wavelength_scaling.eff_scattering[k, i400]
        rel_a = wavelength_scaling.absorption[k] / wavelength_scaling.absorption[k, i400]
        ng, nph = wavelength_scaling.n_group.copy(), wavelength_scaling.n_phase.copy()
    return LayeredIce(
        z_edges=np.array(z_range, float),
        absorption=(a * rel_a)[None, :],
        eff_scattering=np.maximum(be * rel_b, 1e-12)[None, :],
        mean_cos=np.full((1, n_wl), mean_cos),
        n_group=ng,
        n_phase=nph,
        name=f"homogeneous(be={eff_scattering_m:g} m, a={absorption_m:g} m)",
    )


def parse_ice_table(path: str | Path) -> LayeredIce:
    """Read an IceCube ice table (``LAYER zlow zhigh`` then ABS/SCAT/COS/N_GROUP/N_PHASE rows)."""
    path = Path(path)
    if not path.is_file():
        raise IceDataMissing(f"ice table not found: {path}")
    layers: list[dict[str, object]] = []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts or parts[0].startswith("#") or parts[0] in ("NLAYER", "NWVL"):
            continue
        try:
            if parts[0] == "LAYER":
                layers.append({"z": (float(parts[1]), float(parts[2]))})
            elif parts[0] in ("ABS", "SCAT", "COS", "N_GROUP", "N_PHASE") and layers:
                layers[-1][parts[0]] = np.array([float(v) for v in parts[1:]])
        except ValueError as err:
            raise ValueError(f"{path}:{line_no}: {err}") from None
    if not layers:
        raise ValueError(f"{path}: no layers")
    layers.sort(key=lambda layer: layer["z"][0])  # type: ignore[index]
    rows = {
        key: np.array([layer[key] for layer in layers])
        for key in ("ABS", "SCAT", "COS", "N_GROUP", "N_PHASE")
    }
    absorption = rows["ABS"]
    # Layers whose ABS row holds lengths (> 1 m) instead of coefficients: take the next layer's.
    bad = np.flatnonzero(absorption.max(axis=1) > 1.0)
    for k in bad:
        nbr = k + 1 if k + 1 < len(layers) else k - 1
        absorption[k] = absorption[nbr]
    z_low = np.array([layer["z"][0] for layer in layers])  # type: ignore[index]
    z_high = np.array([layer["z"][1] for layer in layers])  # type: ignore[index]
    if not np.allclose(z_low[1:], z_high[:-1]):
        raise ValueError(f"{path}: layers are not contiguous")
    return LayeredIce(
        z_edges=np.append(z_low, z_high[-1]),
        absorption=absorption,
        eff_scattering=rows["SCAT"],
        mean_cos=rows["COS"],
        n_group=rows["N_GROUP"].mean(axis=0),
        n_phase=rows["N_PHASE"].mean(axis=0),
        name=path.name,
    )


@lru_cache(maxsize=2)
def spice_mie(data_dir: str | None = None) -> LayeredIce:
    """SPICE-Mie from the shared data folder; :class:`IceDataMissing` names the file when absent."""
    from skyscan.physics.geometry import shared_data_dir

    base = Path(data_dir) if data_dir else shared_data_dir()
    if base is None:
        raise IceDataMissing(
            f"the shared data folder is absent (need {SPICE_MIE_RELATIVE_PATH}); set SKYDRIVER_SHARED_DATA"
        )
    return parse_ice_table(base / SPICE_MIE_RELATIVE_PATH)
