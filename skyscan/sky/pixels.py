"""HEALPix helpers: RING-ordered pixels in equatorial coordinates (theta = pi/2 - dec, phi = RA)."""

from __future__ import annotations

import healpy as hp
import numpy as np

MAX_ORDER = 29


def is_power_of_two(n: int) -> bool:
    return n >= 1 and (n & (n - 1)) == 0


def check_nside(nside: int, max_nside: int = 1 << MAX_ORDER) -> None:
    if not isinstance(nside, int) or isinstance(nside, bool):
        raise ValueError(f"nside must be an integer, got {nside!r}")
    if not is_power_of_two(nside):
        raise ValueError(f"nside {nside} is not a power of two")
    if nside > max_nside:
        raise ValueError(f"nside {nside} exceeds the maximum {max_nside}")


def npix(nside: int) -> int:
    return 12 * nside * nside


def pixel_radec(nside: int, pixels: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
    """Centre (RA, Dec) in radians of RING pixels."""
    theta, phi = hp.pix2ang(nside, pixels)
    return np.asarray(phi, float), np.pi / 2 - np.asarray(theta, float)


def radec_pixel(nside: int, ra: np.ndarray | float, dec: np.ndarray | float) -> np.ndarray:
    return np.asarray(hp.ang2pix(nside, np.pi / 2 - np.asarray(dec), np.asarray(ra)))


def pixel_area_sr(nside: int) -> float:
    return 4 * np.pi / npix(nside)


def children(nside: int, pixel: int, fine_nside: int) -> np.ndarray:
    """RING indices at ``fine_nside`` of every sub-pixel of a RING pixel (NESTED bit shift)."""
    if fine_nside < nside or fine_nside % nside:
        raise ValueError(f"{fine_nside} is not a refinement of {nside}")
    factor = fine_nside // nside
    shift = 2 * (factor.bit_length() - 1)
    nest = int(hp.ring2nest(nside, pixel))
    fine_nest = (nest << shift) + np.arange(factor * factor)
    return np.sort(np.asarray(hp.nest2ring(fine_nside, fine_nest), dtype=np.int64))


def parent(nside: int, pixel: int, coarse_nside: int) -> int:
    """RING index at ``coarse_nside`` of the pixel that contains a RING pixel."""
    factor = nside // coarse_nside
    shift = 2 * (factor.bit_length() - 1)
    return int(hp.nest2ring(coarse_nside, int(hp.ring2nest(nside, pixel)) >> shift))


def disc_pixels(nside: int, ra: float, dec: float, radius: float) -> np.ndarray:
    """RING pixels whose centres lie within ``radius`` (radians) of (ra, dec)."""
    vec = hp.ang2vec(np.pi / 2 - dec, ra)
    return np.sort(np.asarray(hp.query_disc(nside, vec, radius, inclusive=False), dtype=np.int64))


def uniq(nside: int, pixel: np.ndarray | int) -> np.ndarray:
    """NUNIQ index (4 nside^2 + NESTED pixel) of RING pixels, as multi-order maps use."""
    return 4 * nside * nside + np.asarray(hp.ring2nest(nside, pixel), dtype=np.int64)
