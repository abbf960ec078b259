"""table-mpe, table-spe and pandel-layered: physics sanity, determinism, NaN safety; calibrated level sets;
the truth fit's seeds; the sigma_ns range of the Pandel table."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from skyscan.physics.pandel_model import convolved_pandel_table
from skyscan.physics.recos import calibration
from skyscan.physics.recos.evaluate import fit_direction
from skyscan.physics.recos.registry import RECOS, get_reco
from skyscan.physics.simulate import simulate_track
from skyscan.refinement.drive import llh_at_truth, truth_vertex
from skyscan.skymap.contours import LevelCalibration, LevelSet, calibrate_levels, resolve_levels
from skyscan.wire import Direction, Vertex

ZENITH, AZIMUTH = 1.1, 3.9
NEW_RECOS = ("table-mpe", "table-spe", "pandel-layered")


@pytest.fixture(scope="module")
def event():  # type: ignore[no-untyped-def]
    return simulate_track(ZENITH, AZIMUTH, 3e4, seed=11)


def direction(zenith: float, azimuth: float) -> Direction:
    return Direction.model_construct(ra=0.0, dec=0.0, zenith=zenith, azimuth=azimuth)


@pytest.mark.parametrize("sigma", [1.0, 2.0, 3.0, 5.0, 7.0, 10.0, 30.0, 100.0])
def test_pandel_table_is_finite_for_every_allowed_jitter(sigma: float) -> None:
    table = convolved_pandel_table("H2", sigma)
    assert np.isfinite(table.log_pdf).all() and np.isfinite(table.log_sf).all()


def test_pandel_mpe_with_a_5ns_jitter_gives_a_finite_likelihood(event) -> None:  # type: ignore[no-untyped-def]
    reco = get_reco("pandel-mpe", {"sigma_ns": 5.0})
    assert math.isfinite(fit_direction(reco, reco.prepare(event), direction(ZENITH, AZIMUTH)).llh)


@pytest.mark.parametrize("name", NEW_RECOS)
def test_new_recos_are_registered_and_prefer_the_truth(event, name: str) -> None:  # type: ignore[no-untyped-def]
    assert name in RECOS
    reco = get_reco(name)
    prepared = reco.prepare(event)
    at_truth = fit_direction(reco, prepared, direction(ZENITH, AZIMUTH)).llh
    far = [
        fit_direction(reco, prepared, direction(ZENITH + dz, AZIMUTH + da)).llh
        for dz, da in ((0.3, 0), (0, 0.4), (-0.4, 0.2))
    ]
    # The toy simulator's ice is bulk (H2), which the layered reco does not assume: a smaller margin.
    margin = 1.0 if name == "pandel-layered" else 5.0
    assert math.isfinite(at_truth) and all(at_truth < f - margin for f in far)


@pytest.mark.parametrize("name", NEW_RECOS)
def test_new_recos_are_deterministic_and_nan_safe(event, name: str) -> None:  # type: ignore[no-untyped-def]
    reco = get_reco(name)
    prepared = reco.prepare(event)
    seed = Vertex(x=10.0, y=-5.0, z=3.0, t=10_000.0)
    a = reco.fit(prepared, direction(1.0, 4.0), 0, seed)
    b = reco.fit(prepared, direction(1.0, 4.0), 0, seed)
    assert a.llh == b.llh and a.params == b.params and not a.failed
    for bad in (direction(math.nan, 1.0), direction(1.0, math.inf)):
        out = reco.fit(prepared, bad, 0, None)
        assert out.failed and math.isnan(out.llh)
    assert reco.fit(prepared, direction(1.0, 1.0), 7, None).failed  # variation out of range
    nan_seed = reco.fit(
        prepared, direction(1.0, 4.0), 0, Vertex.model_construct(x=math.nan, y=0.0, z=0.0, t=math.nan)
    )
    assert not nan_seed.failed and math.isfinite(nan_seed.llh)


def test_table_mpe_options_are_validated() -> None:
    with pytest.raises(ValueError, match="jitter_ns"):
        get_reco("table-mpe", {"jitter_ns": -1.0})
    with pytest.raises(ValueError, match="charge_weight"):
        get_reco("table-mpe", {"charge_weight": 50.0})
    with pytest.raises(ValueError, match="has no sigma_ns"):
        get_reco("table-mpe", {"sigma_ns": 5.0})
    with pytest.raises(ValueError, match="bad options"):
        get_reco("table-mpe", {"no_such_option": 1})


def test_table_spe_is_table_mpe_with_one_photon_per_dom(event) -> None:  # type: ignore[no-untyped-def]
    """table-spe tabulates only the first photon's density; it must be exactly table-mpe's N = 1."""
    spe, mpe = get_reco("table-spe"), get_reco("table-mpe")
    mpe_one = get_reco("table-mpe", {"max_photons": 1})
    spe_prep, one_prep, mpe_prep = spe.prepare(event), mpe_one.prepare(event), mpe.prepare(event)
    assert spe_prep.table.photon_nodes == (1,) and (spe_prep.extra["node"] == 0).all()
    first_photon = spe_prep.table.log_density
    assert np.array_equal(first_photon, one_prep.table.log_density[: first_photon.shape[0]])
    for zenith, azimuth in ((ZENITH, AZIMUTH), (1.4, 3.5)):
        d = direction(zenith, azimuth)
        a = fit_direction(spe, spe_prep, d)
        assert a.llh == fit_direction(mpe_one, one_prep, d).llh
        assert math.isfinite(a.llh) and a.llh != fit_direction(mpe, mpe_prep, d).llh  # N > 1 does count


def test_table_spe_refuses_the_photon_count_options() -> None:
    for option in ("max_photons", "bright_photons", "charge_weight"):
        with pytest.raises(ValueError, match=f"table-spe has no {option}"):
            get_reco("table-spe", {option: 2})
    with pytest.raises(ValueError, match="has no sigma_ns"):
        get_reco("table-spe", {"sigma_ns": 5.0})
    assert get_reco("table-spe", {"jitter_ns": 5.0}).jitter_ns == 5.0  # type: ignore[attr-defined]


def test_table_mpe_charge_term_changes_the_likelihood(event) -> None:  # type: ignore[no-untyped-def]
    plain, charged = get_reco("table-mpe"), get_reco("table-mpe", {"charge_weight": 1.0})
    d = direction(ZENITH, AZIMUTH)
    a = fit_direction(plain, plain.prepare(event), d).llh
    b = fit_direction(charged, charged.prepare(event), d).llh
    assert math.isfinite(b) and a != b


# -- the truth fit ---------------------------------------------------------------------------------


def test_truth_fit_uses_the_true_vertex_and_never_does_worse_than_one_seed(event) -> None:  # type: ignore[no-untyped-def]
    from skyscan.refinement.fits import VariationResult
    from skyscan.refinement.state import Refinement
    from skyscan.refinement.strategies import make_strategy

    vertex = truth_vertex(event)
    assert vertex is not None and vertex.t == float(event.metadata["vertex_t"])  # type: ignore[arg-type]
    reco = get_reco("pandel-mpe")
    prepared = reco.prepare(event)
    truth = direction(ZENITH, AZIMUTH)
    # A best pixel whose vertex is 150 m off: a truth fit seeded only there may land worse.
    bad = Vertex(x=vertex.x + 150.0, y=vertex.y - 100.0, z=vertex.z, t=vertex.t)
    refinement = Refinement(make_strategy("progression", "1:0"), 1, event.mjd)
    refinement.next_tasks()
    refinement.record(
        VariationResult(1, 0, 0, 0.0, {"X": bad.x, "Y": bad.y, "Z": bad.z, "T": bad.t}, False, None)
    )
    best = llh_at_truth(reco, prepared, event, refinement)
    assert best is not None
    assert best <= fit_direction(reco, prepared, truth, bad).llh
    assert best <= fit_direction(reco, prepared, truth, vertex).llh
    assert best <= fit_direction(reco, prepared, truth, None).llh


# -- calibrated level sets ---------------------------------------------------------------------------


def test_level_calibration_fits_scales_and_round_trips() -> None:
    rng = np.random.default_rng(3)
    n_doms = rng.integers(30, 400, 400)
    charge = 10 * n_doms * rng.uniform(0.5, 2, 400)
    # 2dLLH at the truth: chi2(2) scaled by n_doms / 100 (a model error that grows with the DOMs).
    delta = rng.chisquare(2, 400) * (n_doms / 100.0)
    cal = calibrate_levels("toy-sim", delta, n_doms, charge)
    assert cal.slope_doms == pytest.approx(1.0, abs=0.4)  # the 0.1 floor steepens it a little
    levels = cal.level_set(200, 2000.0).levels
    assert levels[0.9] == pytest.approx(4.61 * 2, rel=0.3) and levels[0.5] < levels[0.9]
    inside = np.mean(
        [
            d < cal.level_set(int(n), float(q)).levels[0.9]
            for d, n, q in zip(delta, n_doms, charge, strict=True)
        ]
    )
    assert 0.86 <= inside <= 0.94
    again = LevelCalibration.from_json_dict(json.loads(json.dumps(cal.to_json_dict())))
    assert again == cal
    name, resolved = resolve_levels(cal.level_set(100, 1000.0))
    assert name == "toy-sim" and set(resolved) == {0.5, 0.9}
    with pytest.raises(ValueError, match="at least 10"):
        calibrate_levels("x", np.ones(3), np.ones(3), np.ones(3))


def test_scan_level_set_prefers_the_request_then_the_reco_calibration(event, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(calibration, "CALIBRATION_DIR", tmp_path)
    calibration.load_calibration.cache_clear()
    assert calibration.scan_level_set("icecube-sim", "pandel-mpe", None, event) == "icecube-sim"
    assert calibration.scan_level_set(None, "pandel-mpe", None, event) == "wilks"  # no calibration yet
    cal = LevelCalibration("pandel-mpe-sim", {0.5: math.log(3.0), 0.9: math.log(9.0)}, 0.0, 0.0, 50)
    calibration.save_calibration("pandel-mpe", cal)
    chosen = calibration.scan_level_set(None, "pandel-mpe", None, event)
    assert isinstance(chosen, LevelSet) and chosen.levels == {0.5: 3.0, 0.9: 9.0}
    # Calibrations hold for the default options only.
    assert calibration.scan_level_set(None, "pandel-mpe", {"noise_floor": 1e-5}, event) == "wilks"
    assert calibration.scan_level_set(None, "dummy", None, event) == "wilks"
    calibration.load_calibration.cache_clear()


@pytest.mark.parametrize("name", ["table-spe", "table-mpe", "pandel-mpe", "pandel-spe", "pandel-layered"])
def test_shipped_calibrations_are_the_recos_default(event, name: str) -> None:  # type: ignore[no-untyped-def]
    calibration.load_calibration.cache_clear()
    cal = calibration.load_calibration(name)
    assert cal is not None and cal.n_events >= 40
    chosen = calibration.scan_level_set(None, name, None, event)
    assert isinstance(chosen, LevelSet) and chosen.name == f"{name}-sim"
    assert 0 < chosen.levels[0.5] < chosen.levels[0.9]
