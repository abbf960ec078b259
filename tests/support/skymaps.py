"""Synthetic likelihood skymaps for the skymap-product tests: known shapes, driven like a scan."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from skyscan.physics.event import Event, parse_event
from skyscan.refinement.fits import PixelBest, PixelKey, VariationResult
from skyscan.refinement.state import Refinement, Strategy
from skyscan.sky import pixels as px
from skyscan.skymap.assembly import build_result

LlhFunc = Callable[[np.ndarray, np.ndarray], np.ndarray]
FIT = {"X": 10.0, "Y": -20.0, "Z": 30.0, "T": 1000.0, "E_tot": 5000.0, "E_in": math.nan}


def unit(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)


def gaussian_llh(
    ra0: float, dec0: float, sigma_x_deg: float, sigma_y_deg: float | None = None, angle_deg: float = 0.0
) -> LlhFunc:
    """-lnL = 100 + (x^2/sx^2 + y^2/sy^2)/2 in the gnomonic plane about (ra0, dec0), axes rotated.

    2*dLLH is then a chi-square with 2 dof: the region 2*dLLH <= q is an ellipse of area
    pi * sx * sy * q (flat-sky; exact on the gnomonic plane, negligible difference for small sigma).
    """
    sx = math.radians(sigma_x_deg)
    sy = math.radians(sigma_y_deg if sigma_y_deg is not None else sigma_x_deg)
    c0 = unit(np.array(ra0), np.array(dec0))
    east = np.array([-math.sin(ra0), math.cos(ra0), 0.0])
    north = np.cross(c0, east)
    ca, sa = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))

    def f(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        v = unit(np.asarray(ra, float), np.asarray(dec, float))
        z = v @ c0
        with np.errstate(divide="ignore", invalid="ignore"):
            xi, eta = (v @ east) / z, (v @ north) / z
        u, w = ca * xi + sa * eta, -sa * xi + ca * eta
        out = 100.0 + 0.5 * (u * u / (sx * sx) + w * w / (sy * sy))
        return np.where(z > 0, out, 100.0 + 0.5 * 1e6)

    return f


def ellipse_area_deg2(sigma_x_deg: float, sigma_y_deg: float, level: float) -> float:
    return math.pi * sigma_x_deg * sigma_y_deg * level


def cap_area_deg2(sigma_deg: float, level: float) -> float:
    """Exact area on the sphere of the circular region (gnomonic radius sigma * sqrt(level))."""
    r = math.atan(math.radians(sigma_deg) * math.sqrt(level))
    return 2 * math.pi * (1 - math.cos(r)) * (180 / math.pi) ** 2


def drive(
    strategy: Strategy, f: LlhFunc, order_seed: int | None = None, fail: set[PixelKey] | None = None
) -> Refinement:
    """Run a refinement to the end. With ``order_seed`` results come back shuffled, a third at a time."""
    ref = Refinement(strategy, 1, 60000.0)
    rng = np.random.default_rng(order_seed) if order_seed is not None else None
    inflight: list[Any] = []
    while True:
        inflight.extend(ref.next_tasks())
        if not inflight:
            assert ref.finished
            return ref
        if rng is None:
            batch, inflight = inflight, []
        else:
            rng.shuffle(inflight)  # type: ignore[arg-type]
            cut = max(1, len(inflight) // 3)
            batch, inflight = inflight[:cut], inflight[cut:]
        values = f(np.array([t.ra for t in batch]), np.array([t.dec for t in batch]))
        for t, v in zip(batch, values, strict=True):
            failed = fail is not None and (t.nside, t.pixel) in fail
            ref.record(
                VariationResult(t.nside, t.pixel, 0, math.nan if failed else float(v), dict(FIT), failed)
            )


def full_map(nside: int, f: LlhFunc, pixels: np.ndarray | None = None) -> dict[PixelKey, PixelBest]:
    pix = np.arange(px.npix(nside)) if pixels is None else np.asarray(pixels)
    ra, dec = px.pixel_radec(nside, pix)
    llh = f(ra, dec)
    return {
        (nside, int(p)): PixelBest(nside, int(p), float(v), 0, dict(FIT), False)
        for p, v in zip(pix, llh, strict=True)
    }


def make_event(
    truth: tuple[float, float] | None = (1.0, 2.0), is_real: bool = False, run_id: int = 123456
) -> Event:
    data: dict[str, Any] = {
        "schema": "skydriver.event/1",
        "run_id": run_id,
        "event_id": 42,
        "mjd": 60000.5,
        "event_type": "neutrino",
        "is_real_event": is_real,
        "pulses": [{"x": 0.0, "y": 0.0, "z": 0.0, "time": 0.0, "charge": 1.0}],
    }
    if truth is not None:
        data["truth"] = {"zenith": truth[0], "azimuth": truth[1]}
    return parse_event(data)


def make_doc(
    complete: Mapping[PixelKey, PixelBest], event: Event, nsides: list[int], **kwargs: Any
) -> dict[str, Any]:
    return build_result(
        scan_id="scan0001",
        event=event,
        reco="synthetic",
        strategy="test",
        nsides=nsides,
        complete=complete,
        finished=True,
        **kwargs,
    )
