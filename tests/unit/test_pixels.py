from __future__ import annotations

import healpy as hp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from skyscan.sky import pixels as px


@given(order=st.integers(0, 6), factor_log=st.integers(1, 3), data=st.data())
def test_children_and_parent_are_inverse(order: int, factor_log: int, data: st.DataObject) -> None:
    nside = 1 << order
    fine = nside << factor_log
    pixel = data.draw(st.integers(0, px.npix(nside) - 1))
    kids = px.children(nside, pixel, fine)
    assert len(kids) == (fine // nside) ** 2
    assert {px.parent(fine, int(k), nside) for k in kids} == {pixel}


def test_pixel_radec_follows_theta_equals_half_pi_minus_dec() -> None:
    ra, dec = px.pixel_radec(8, np.arange(768))
    theta, phi = hp.pix2ang(8, np.arange(768))
    assert np.allclose(dec, np.pi / 2 - theta) and np.allclose(ra, phi)
    assert (px.radec_pixel(8, ra, dec) == np.arange(768)).all()


@pytest.mark.parametrize("bad", [0, 3, 12, -8])
def test_check_nside_rejects_non_powers_of_two(bad: int) -> None:
    with pytest.raises(ValueError, match="power of two"):
        px.check_nside(bad)


def test_uniq_matches_the_nuniq_definition() -> None:
    assert int(px.uniq(1, 0)) == 4 + int(hp.ring2nest(1, 0))
    assert len(set(px.uniq(8, np.arange(768)).tolist()) & set(px.uniq(16, np.arange(3072)).tolist())) == 0
