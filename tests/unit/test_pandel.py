"""The Pandel PDF, its tabulated Gaussian convolution and the pandel-spe / pandel-mpe recos."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate

from skyscan.physics.cleaning import rt_neighbour_counts, seeded_rt_cleaning
from skyscan.physics.event import parse_event
from skyscan.physics.pandel_model import (
    C_VACUUM_M_PER_NS,
    GEO_FACTOR,
    convolved_log_pdf,
    convolved_pandel_table,
    get_ice_model,
    log_add_floor,
    pandel_pdf,
    pandel_sf,
    track_geometry,
    transverse_basis,
    travel_direction,
)
from skyscan.physics.recos.base import RecoUnsuitable
from skyscan.physics.recos.evaluate import fit_direction
from skyscan.physics.recos.pandel import PandelPrepared
from skyscan.physics.recos.registry import get_reco
from skyscan.physics.simulate import simulate_track
from skyscan.wire import Direction, Vertex

H2 = get_ice_model("H2")
ZENITH, AZIMUTH = 1.1, 3.9


@pytest.fixture(scope="module")
def event():  # type: ignore[no-untyped-def]
    return simulate_track(ZENITH, AZIMUTH, 3e4, seed=11)


def direction(zenith: float, azimuth: float) -> Direction:
    return Direction(ra=0.0, dec=0.0, zenith=zenith, azimuth=azimuth)


def offset_direction(zenith: float, azimuth: float, angle: float, towards: float) -> tuple[float, float]:
    """A direction ``angle`` radians away from (zenith, azimuth), rotated by ``towards`` around it."""
    src = np.array(
        [math.sin(zenith) * math.cos(azimuth), math.sin(zenith) * math.sin(azimuth), math.cos(zenith)]
    )
    helper = np.array([0.0, 0.0, 1.0]) if abs(src[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e1 = np.cross(src, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(src, e1)
    out = math.cos(angle) * src + math.sin(angle) * (math.cos(towards) * e1 + math.sin(towards) * e2)
    return math.acos(float(np.clip(out[2], -1, 1))), math.atan2(out[1], out[0]) % (2 * math.pi)


# -- the PDF ---------------------------------------------------------------------------------


def test_pandel_reference_values() -> None:
    """Values from reco_physics_data.md section 3.2 (H2, scipy gamma)."""
    pdf = pandel_pdf(np.array([20.0, 100.0, 300.0]), np.array([10.0, 50.0, 100.0]), H2)
    sf = pandel_sf(np.array([20.0, 100.0, 300.0]), np.array([10.0, 50.0, 100.0]), H2)
    assert pdf == pytest.approx([7.255148e-3, 1.937098e-3, 8.851200e-4], rel=1e-5)
    assert sf == pytest.approx([0.4857641, 0.8474910, 0.8766597], rel=1e-5)
    assert pandel_pdf(np.array([-1.0, 0.0]), np.array([10.0, 10.0]), H2).tolist() == [0.0, 0.0]
    assert H2.rate_per_ns == pytest.approx(4.05171e-3, rel=1e-5)


def test_convolved_reference_values_and_table() -> None:
    """Closed form and table against reco_physics_data.md section 3.3 (H2, sigma 15 ns)."""
    t = np.array([0.0, 20.0, 100.0, -20.0])
    d = np.array([10.0, 10.0, 50.0, 100.0])
    expected = [1.298357e-2, 1.048976e-2, 1.926118e-3, 2.391729e-7]
    assert np.exp(convolved_log_pdf(t, d, H2, 15.0)) == pytest.approx(expected, rel=1e-5)
    table = convolved_pandel_table("H2", 15.0)
    log_p, _ = table.lookup(t, d)
    assert np.exp(log_p) == pytest.approx(expected, rel=2e-3)


def test_convolved_pdf_matches_brute_force_far_from_zero() -> None:
    for t, d in ((450.0, 80.0), (1200.0, 250.0), (3000.0, 400.0)):
        xi, r, s = d / H2.scattering_m, H2.rate_per_ns, 15.0
        brute = integrate.quad(
            lambda x, t=t, xi=xi, r=r, s=s: (
                math.exp(
                    xi * math.log(r)
                    + (xi - 1) * math.log(x)
                    - r * x
                    - math.lgamma(xi)
                    - (t - x) ** 2 / (2 * s * s)
                )
                / (math.sqrt(2 * math.pi) * s)
            ),
            t - 10 * s,
            t + 10 * s,
        )[0]
        assert math.exp(float(convolved_log_pdf(np.array([t]), np.array([d]), H2, s)[0])) == pytest.approx(
            brute, rel=1e-4
        )


def test_table_is_normalised_and_survival_is_consistent() -> None:
    table = convolved_pandel_table("H2", 15.0)
    for j in (2, 10, 50):  # d_eff 4, 20, 100 m: the grid holds essentially all the probability
        assert np.exp(table.log_pdf[j]).sum() * table.t_step == pytest.approx(1.0, abs=2e-3)
        sf = np.exp(table.log_sf[j])
        assert sf[0] == pytest.approx(1.0, abs=1e-4)
        assert (np.diff(sf) <= 1e-12).all()


@settings(max_examples=40, deadline=None)
@given(st.floats(-200.0, 5500.0), st.floats(2.25, 600.0))
def test_table_interpolation_accuracy(t: float, d: float) -> None:
    table = convolved_pandel_table("H2", 15.0)
    exact = float(convolved_log_pdf(np.array([t]), np.array([d]), H2, 15.0)[0])
    looked, _ = table.lookup(np.array([t]), np.array([d]))
    if exact > -25.0:  # below the noise floor the likelihood does not care
        # Worst case ~0.06 at d_eff ~ 3 m, where ln Gamma(xi) curves fastest; typically 1e-4.
        assert float(looked[0]) == pytest.approx(exact, abs=0.07)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(st.floats(-800.0, 50.0), st.sampled_from([math.inf, -math.inf, math.nan])),
        min_size=1,
        max_size=40,
    ),
    st.floats(-40.0, 0.0),
)
def test_log_add_floor_is_numpys_logaddexp(values: list[float], log_floor: float) -> None:
    """The fit's noise floor term equals np.logaddexp to one ulp, and treats NaN and infinities alike."""
    log_l = np.array(values)
    ours = log_add_floor(log_l, log_floor)
    with np.errstate(invalid="ignore"):  # numpy's own warns on NaN
        numpys = np.logaddexp(log_l, log_floor)
    assert np.array_equal(np.isnan(ours), np.isnan(numpys))
    finite = np.isfinite(numpys)
    assert np.array_equal(ours[~finite & ~np.isnan(numpys)], numpys[~finite & ~np.isnan(numpys)])
    assert np.all(np.abs(ours[finite] - numpys[finite]) <= 2 * np.spacing(np.abs(numpys[finite])))
    assert np.all(ours[np.isfinite(log_l)] >= log_floor)


def test_track_geometry_hand_case() -> None:
    down = travel_direction(0.0, 0.0)  # from the zenith: travels straight down
    assert down == pytest.approx([0.0, 0.0, -1.0])
    geo = track_geometry(np.array([[10.0, 0.0, -20.0]]), np.zeros(3), 0.0, down)
    assert geo.along[0] == pytest.approx(20.0) and geo.rho[0] == pytest.approx(10.0)
    assert geo.t_geo[0] == pytest.approx((20.0 + 10.0 * GEO_FACTOR) / C_VACUUM_M_PER_NS)
    # The photon reaches the DOM travelling downwards at the Cherenkov angle: cos(eta) = -cos(theta_c).
    assert geo.cos_eta[0] == pytest.approx(-1.0 / 1.3195, abs=1e-9)


# -- the recos -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pandel-spe", "pandel-mpe"])
def test_truth_beats_far_away_directions(event, name: str) -> None:  # type: ignore[no-untyped-def]
    reco = get_reco(name)
    prepared = reco.prepare(event)
    at_truth = reco.fit(prepared, direction(ZENITH, AZIMUTH), 0, None)
    assert not at_truth.failed
    assert {"X", "Y", "Z", "T", "E_tot", "E_in"} <= set(at_truth.params)
    assert math.isnan(at_truth.params["E_in"]) and at_truth.params["E_tot"] > 0
    for angle in (math.radians(5), math.radians(20), math.radians(90)):
        for towards in (0.0, 2.0, 4.0):
            far = reco.fit(prepared, direction(*offset_direction(ZENITH, AZIMUTH, angle, towards)), 0, None)
            assert far.llh > at_truth.llh + 5.0, (angle, towards)


def test_fitted_vertex_lies_on_the_true_track(event) -> None:  # type: ignore[no-untyped-def]
    reco = get_reco("pandel-mpe")
    result = reco.fit(reco.prepare(event), direction(ZENITH, AZIMUTH), 0, None)
    meta = event.metadata
    truth = np.array([meta["vertex_x"], meta["vertex_y"], meta["vertex_z"]], float)
    fitted = np.array([result.params[k] for k in ("X", "Y", "Z")])
    track = travel_direction(ZENITH, AZIMUTH)
    delta = fitted - truth
    transverse = np.linalg.norm(delta - (delta @ track) * track)
    assert transverse < 10.0
    # The fitted time is the truth time carried along the track to the fitted point.
    expected_t = float(meta["vertex_t"]) + (delta @ track) / C_VACUUM_M_PER_NS  # type: ignore[arg-type]
    assert result.params["T"] == pytest.approx(expected_t, abs=15.0)


def test_fit_is_deterministic_and_seed_and_variations_agree(event) -> None:  # type: ignore[no-untyped-def]
    reco = get_reco("pandel-spe", {"variations": 4, "variation_radius_m": 30.0})
    assert reco.n_variations() == 4
    prepared = reco.prepare(event)
    d = direction(ZENITH + 0.01, AZIMUTH)
    first = reco.fit(prepared, d, 0, None)
    assert reco.fit(prepared, d, 0, None) == first
    llhs = [reco.fit(prepared, d, v, None).llh for v in range(4)]
    assert max(llhs) - min(llhs) < 1.0  # every seed finds the same minimum on this clean event
    seed = Vertex(x=first.params["X"], y=first.params["Y"], z=first.params["Z"], t=first.params["T"])
    assert reco.fit(prepared, d, 0, seed).llh <= first.llh + 0.05
    best = fit_direction(reco, prepared, d)
    assert best.llh == pytest.approx(min(llhs))


@pytest.mark.parametrize("name", ["pandel-spe", "pandel-mpe", "pandel-layered", "table-mpe", "table-spe"])
def test_the_whole_track_likelihood_is_the_fits_at_its_vertex(event, name: str) -> None:  # type: ignore[no-untyped-def]
    """``track_neg_llh`` (one whole track, no vertex fit: for replaying other fitters) gives the fit's
    -lnL at the fitted vertex, the same for any point of the same track, and more off it."""
    reco = get_reco(name)
    prepared = reco.prepare(event)
    zenith, azimuth = ZENITH + 0.02, AZIMUTH
    fit = reco.fit(prepared, direction(zenith, azimuth), 0, None)
    position = np.array([fit.params[k] for k in ("X", "Y", "Z")])
    time = fit.params["T"]
    assert reco.track_neg_llh(prepared, zenith, azimuth, position, time) == pytest.approx(fit.llh, rel=1e-9)
    track = travel_direction(zenith, azimuth)
    along = 80.0  # m further along the same track, reached 80 m / c later
    later = reco.track_neg_llh(
        prepared, zenith, azimuth, position + along * track, time + along / C_VACUUM_M_PER_NS
    )
    assert later == pytest.approx(fit.llh, rel=1e-9)
    u, v = transverse_basis(track)
    for off in (position + 20.0 * u, position - 20.0 * v):
        assert reco.track_neg_llh(prepared, zenith, azimuth, off, time) > fit.llh + 1.0
    assert reco.track_neg_llh(prepared, zenith, azimuth, position, time + 30.0) > fit.llh + 1.0


def test_nan_safety(event) -> None:  # type: ignore[no-untyped-def]
    reco = get_reco("pandel-mpe")
    prepared = reco.prepare(event)
    nan_direction = Direction.model_construct(ra=0.0, dec=0.0, zenith=math.nan, azimuth=1.0)
    bad = reco.fit(prepared, nan_direction, 0, None)
    assert bad.failed and math.isnan(bad.llh) and bad.status == "failed" and bad.error
    out_of_range = reco.fit(prepared, direction(1.0, 1.0), 5, None)
    assert out_of_range.failed and "variation" in (out_of_range.error or "")
    nan_seed = reco.fit(
        prepared, direction(1.0, 1.0), 0, Vertex.model_construct(x=math.nan, y=0.0, z=0.0, t=math.nan)
    )
    assert not nan_seed.failed  # a NaN seed falls back to the event seed
    broken = PandelPrepared(**{**prepared.__dict__, "times": prepared.times * math.nan})
    result = reco.fit(broken, direction(1.0, 1.0), 0, None)
    assert result.failed and math.isnan(result.llh)


def test_unsuitable_event_and_bad_options() -> None:
    tiny = parse_event(
        {
            "schema": "skydriver.event/1",
            "run_id": 1,
            "event_id": 1,
            "mjd": 60000.0,
            "event_type": "t",
            "is_real_event": False,
            "pulses": [
                {"x": 0.0, "y": 0.0, "z": float(z), "time": 100.0 + z, "charge": 1.0} for z in (0, 17, 34)
            ],
        }
    )
    reco = get_reco("pandel-spe", {"pulse_cleaning": "none"})
    with pytest.raises(RecoUnsuitable, match="at least 5"):
        reco.check_event(tiny)
    for options in (
        {"sigma_ns": 0.0},
        {"ice_model": "H9"},
        {"variations": 0},
        {"pulse_cleaning": "magic"},
        {"no_such_option": 1},
    ):
        with pytest.raises(ValueError):
            get_reco("pandel-mpe", options)


def test_cleaning_modes_keep_the_light(event) -> None:  # type: ignore[no-untyped-def]
    n_doms = {}
    for mode in ("none", "srt", "hlc"):
        n_doms[mode] = len(get_reco("pandel-spe", {"pulse_cleaning": mode}).prepare(event).times)
    # Cleaning drops isolated noise DOMs but keeps the bulk of the light.
    assert n_doms["hlc"] <= n_doms["srt"] < n_doms["none"]
    assert n_doms["srt"] > 0.6 * n_doms["none"]


# -- pulse cleaning --------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 400), st.integers(0, 2**31 - 1))
def test_rt_counts_match_brute_force(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    pos = rng.uniform(-400, 400, (n, 3))
    times = rng.uniform(0, 8000, n)
    ids = rng.integers(0, max(1, n // 2), n)
    among = rng.uniform(size=n) < 0.6
    counts = rt_neighbour_counts(pos, times, ids, among, 150.0, 1000.0)
    d2 = ((pos[:, None] - pos[None]) ** 2).sum(axis=2)
    close = (d2 <= 150.0**2) & (np.abs(times[:, None] - times[None]) <= 1000.0) & (ids[:, None] != ids[None])
    assert np.array_equal(counts, (close & among[None, :]).sum(axis=1))


def test_seeded_rt_drops_isolated_noise_and_keeps_the_track() -> None:
    # A vertical line of causally connected HLC hits plus far, late, isolated noise.
    z = np.arange(10) * 17.0
    track_pos = np.stack([np.zeros(10), np.zeros(10), z], axis=1)
    noise_pos = np.array([[600.0, 0.0, 0.0], [0.0, 700.0, 50.0]])
    pos = np.vstack([track_pos, noise_pos])
    times = np.r_[1000.0 + z / 0.3, 9000.0, 200.0]
    ids = np.arange(12)
    hlc = np.r_[np.ones(10, bool), False, False]
    kept = seeded_rt_cleaning(pos, times, ids, hlc)
    assert kept[:10].all() and not kept[10:].any()
    # Without HLC flags the core is every pulse with two RT neighbours: the same answer here.
    assert np.array_equal(seeded_rt_cleaning(pos, times, ids, None), kept)


def test_seeded_rt_on_a_very_large_event_uses_early_pulses(monkeypatch: pytest.MonkeyPatch) -> None:
    import skyscan.physics.cleaning as cleaning

    monkeypatch.setattr(cleaning, "MANY_PULSES", 50)
    z = np.arange(10) * 17.0
    # Ten DOMs on a line, each with a first hit from the track and 9 later pulses.
    pos = np.repeat(np.stack([np.zeros(10), np.zeros(10), z], axis=1), 10, axis=0)
    ids = np.repeat(np.arange(10), 10)
    times = np.repeat(1000.0 + z / 0.3, 10) + np.tile(np.arange(10) * 100.0, 10)
    pos = np.vstack([pos, [[900.0, 0.0, 0.0]]])
    ids = np.r_[ids, 99]
    times = np.r_[times, 5000.0]
    kept = cleaning.seeded_rt_cleaning(pos, times, ids, None)
    assert kept[:100].all() and not kept[100]
