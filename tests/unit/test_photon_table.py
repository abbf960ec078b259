"""The packaged photon table: its file, and that it reproduces the simulator it was built from."""

from __future__ import annotations

import math

import numpy as np
import pytest

from skyscan.physics.geometry import shared_data_dir
from skyscan.physics.pandel_model import C_VACUUM_M_PER_NS, COS_CHERENKOV, GEO_FACTOR
from skyscan.physics.photonsim.ice import SPICE_MIE_RELATIVE_PATH, homogeneous_ice, spice_mie
from skyscan.physics.photonsim.muon import detectable_yield_per_m
from skyscan.physics.photonsim.propagate import DOM_RADIUS_M, DomSpheres, Photons, propagate, rotate
from skyscan.physics.photonsim.simulate import angular_acceptance
from skyscan.physics.recos.table_mpe import first_of_n_table
from skyscan.physics.tables.photon_table import (
    PACKAGED_TABLE,
    RHO_EDGES_M,
    T_EDGES_NS,
    TableMissing,
    _smooth_log_rate,
    load_table,
    packaged_path_ice,
)


def test_packaged_table_is_small_finite_and_falls_with_distance() -> None:
    assert PACKAGED_TABLE.stat().st_size < 1_000_000
    table = load_table()
    assert np.isfinite(table.log_rate).all()
    mu = table.expected_pe(np.array([10.0, 30.0, 100.0, 300.0]), np.zeros(4))
    assert np.all(np.diff(mu) < 0)
    # Facing the light (cos eta = +1: photons moving up into the PMT) beats facing away.
    assert (
        table.expected_pe(np.array([20.0]), np.array([1.0]))[0]
        > table.expected_pe(np.array([20.0]), np.array([-1.0]))[0]
    )
    assert "BSD-2" in str(table.meta["license"])


def test_no_light_arrives_before_the_direct_light_near_the_track() -> None:
    """Within 8 m of the track, under 1% of a DOM's expected charge lies more than 1 ns before the
    direct light.

    The histogram has no counts there (direct photons land within +-0.2 ns of t = 0 at these
    distances; farther out, red photons, faster than the 400 nm group velocity the residual assumes,
    come about 0.14 ns per metre early). A spline that extrapolated into those empty bins once put
    most of the light 25 ns early within 5 m of the track.
    """
    table = load_table()
    dt = np.gradient(table.t_ns)
    rate = np.exp(table.log_rate[table.rho_m < 8.0]) * dt
    early = rate[..., table.t_ns < -1.0].sum(axis=-1) / rate.sum(axis=-1)
    worst = np.unravel_index(int(np.argmax(early)), early.shape)
    assert early.max() < 0.01, (table.rho_m[worst[0]], table.cos_eta[worst[1]], float(early.max()))


@pytest.mark.parametrize("rho_m", [1.0, 3.0, 5.0, 10.0])
def test_first_photon_density_of_a_near_dom_peaks_at_the_direct_light(rho_m: float) -> None:
    """Near the track a DOM's light is mostly unscattered: with a 3 ns jitter the density of its
    first photon peaks within 3 ns of the direct time and is 10 times lower 10 ns before it."""
    pdf = first_of_n_table(3.0, None, (1,))
    t = np.linspace(-20.0, 30.0, 201)
    log_f, _ = pdf.lookup(np.zeros(len(t), np.intp), np.full(len(t), rho_m), np.full(len(t), 0.2), t, False)
    assert abs(t[int(np.argmax(log_f))]) <= 3.0
    assert log_f.max() - log_f[np.searchsorted(t, -10.0)] > math.log(10.0)


def test_smoothing_keeps_a_sharp_direct_peak_at_its_time_and_charge() -> None:
    """A synthetic histogram whose light all arrives in [0, 1) ns then falls by 50 within 1 ns (what
    a DOM 1 m from the track sees) keeps its time integral to 1% and puts nothing before t = -1 ns,
    while a broad row (what a far DOM sees) keeps its shape."""
    # One orientation row: the synthetic rate does not depend on it, and the splines run per row
    # along t and rho, so the table's nine rows would repeat the same work nine times.
    n_rho, n_cos, n_t = len(RHO_EDGES_M) - 1, 1, len(T_EDGES_NS) - 1
    centres = 0.5 * (T_EDGES_NS[1:] + T_EDGES_NS[:-1])
    dt = np.diff(T_EDGES_NS)
    rho = 0.5 * (RHO_EDGES_M[1:] + RHO_EDGES_M[:-1])
    # per-row rate: a direct spike of weight 1 in [0, 1) plus a scattered tail whose share and
    # delay grow with distance; counts ~ 1e5 per row
    tail_share = np.clip(rho / 50.0, 0.02, 0.98)
    tau = 5.0 + rho
    shape = np.where(centres >= 0.0, np.exp(-np.clip(centres, 0, None) / tau[:, None]) / tau[:, None], 0.0)
    rate = tail_share[:, None] * shape + np.where(
        (centres >= 0.0) & (centres < 1.0), 1.0 - tail_share[:, None], 0.0
    )
    rate = np.broadcast_to(rate[:, None, :], (n_rho, n_cos, n_t)) / dt
    counts = np.round(1e5 * rate * dt)
    weight_sum = counts.astype(float)
    norm = rate / np.maximum(counts, 1.0)  # the histogram's PE per ns per count
    smoothed = np.exp(_smooth_log_rate(counts, weight_sum, norm))
    raw_mass = (weight_sum * norm * dt).sum(axis=-1)
    mass = (smoothed * dt).sum(axis=-1)
    assert np.allclose(mass, raw_mass, rtol=0.01)
    early = (smoothed * dt)[..., centres < -1.0].sum(axis=-1) / mass
    assert early.max() < 1e-3
    # the far rows' tail shape survives: the median arrival within 15% of the input's
    for i in (20, 30, 39):
        cdf, cdf_in = np.cumsum(smoothed[i, 0] * dt), np.cumsum(rate[i, 0] * dt)
        median, median_in = (
            centres[np.searchsorted(cdf, cdf[-1] / 2)],
            centres[np.searchsorted(cdf_in, cdf_in[-1] / 2)],
        )
        assert abs(median / median_in - 1) < 0.15, (rho[i], median, median_in)


def test_missing_table_file_is_a_clear_error(tmp_path: object) -> None:
    with pytest.raises(TableMissing, match="build it with bench/build_photon_table.py"):
        load_table(str(tmp_path / "none.npz"))  # type: ignore[operator]


def test_path_ice_scales_follow_the_layers() -> None:
    ice = packaged_path_ice()
    # The dust layer (z ~ -50 m, depth ~2000 m) scatters 3x more than the median; deep clear ice less.
    s_dust, a_dust = ice.scales(np.array([-60.0]), np.array([-40.0]))
    s_clear, _ = ice.scales(np.array([-350.0]), np.array([-330.0]))
    assert s_dust[0] < 0.5 and a_dust[0] < 0.5 and s_clear[0] > 1.5


def test_path_ice_on_equal_layers_interpolates_as_np_interp_does() -> None:
    """The arithmetic layer lookup (equal layers) gives np.interp's values, across the table's ends too."""
    import dataclasses

    ice = packaged_path_ice()
    z = np.random.default_rng(3).uniform(-850.0, 850.0, (7, 300))  # the table spans -855.4 to 854.6 m
    z_b = z + np.random.default_rng(4).uniform(-40.0, 40.0, z.shape)
    uneven = dataclasses.replace(
        ice, z_edges=ice.z_edges * (1.0 + 1e-3 * np.linspace(0.0, 1.0, len(ice.z_edges)))
    )
    for path_ice in (ice, uneven):
        mid, half = 0.5 * (z + z_b), np.maximum(0.5 * np.abs(z - z_b), 0.5)
        lo, hi = mid - half, mid + half
        b_e = (
            np.interp(hi, path_ice.z_edges, path_ice.cum_eff_scattering)
            - np.interp(lo, path_ice.z_edges, path_ice.cum_eff_scattering)
        ) / (2 * half)
        a = (
            np.interp(hi, path_ice.z_edges, path_ice.cum_absorption)
            - np.interp(lo, path_ice.z_edges, path_ice.cum_absorption)
        ) / (2 * half)
        s_scat, s_abs = path_ice.scales(z, z_b)
        np.testing.assert_allclose(s_scat, 1.0 / (b_e * path_ice.ref_eff_scattering_m), rtol=1e-9)
        np.testing.assert_allclose(s_abs, 1.0 / (a * path_ice.ref_absorption_m), rtol=1e-9)


def test_table_reproduces_the_simulator_in_the_reference_ice() -> None:
    """Tolerance: expected charge within 15% at 15 m and 30% at 40 m, median residual within 15% (or 3 ns).

    The simulator tracks photons of a vertical muon in the homogeneous reference ice the table was
    built in, to oversized DOM spheres at 15 m and 40 m; the table is the smoothed histogram of an
    independent run, so this checks normalisation, scoring and smoothing end to end. The looser
    charge tolerance at 40 m is the table's orientation approximation: it averages the DOM axis's
    azimuth about the direct photon, and a vertical track is the least average orientation there is.
    Deterministic (fixed seeds).
    """
    base = shared_data_dir()
    if base is None or not (base / SPICE_MIE_RELATIVE_PATH).is_file():
        pytest.skip(f"shared data file missing: ../shared/data/{SPICE_MIE_RELATIVE_PATH}")
    table = load_table()
    ice = homogeneous_ice(table.ref_eff_scattering_m, table.ref_absorption_m, wavelength_scaling=spice_mie())
    _, wl_weights = detectable_yield_per_m(ice)
    rng = np.random.default_rng(7)
    n, length, radius = 100_000, 600.0, 2.0
    wl = rng.choice(len(wl_weights), size=n, p=wl_weights)
    dirs = rotate(np.tile([0.0, 0.0, 1.0], (n, 1)), 1.0 / ice.n_phase[wl], rng.uniform(0, 2 * math.pi, n))
    s = rng.uniform(-length / 2, length / 2, n)
    pos = np.zeros((n, 3))
    pos[:, 2] = s
    photons = Photons(pos, dirs, s / C_VACUUM_M_PER_NS, wl.astype(np.int64))
    phi = np.linspace(0, 2 * math.pi, 8, endpoint=False)
    z = np.linspace(-60.0, 60.0, 7)
    doms, rhos, tolerance = [], (15.0, 40.0), {15.0: 0.15, 40.0: 0.30}
    for rho in rhos:
        for p in phi:
            for zz in z:
                doms.append((rho * math.cos(p), rho * math.sin(p), zz))
    doms_arr = np.array(doms)
    spheres = DomSpheres(doms_arr, radius, max_step_m=15.0)

    def region(p: np.ndarray) -> np.ndarray:
        return np.hypot(p[:, 0], p[:, 1]) < 120.0

    hits = propagate(photons, ice, rng, doms=spheres, t_max_ns=4000.0, region=region).hits
    d = doms_arr[hits.dom]
    r = np.hypot(d[:, 0], d[:, 1])
    weight = angular_acceptance(hits.dir_z)
    residual = (
        hits.time
        + (2 / 3) * radius / (C_VACUUM_M_PER_NS / 1.3546)
        - (d[:, 2] + GEO_FACTOR * r) / C_VACUUM_M_PER_NS
    )
    per_m = n / length
    area_ratio = (radius / DOM_RADIUS_M) ** 2
    for rho in rhos:
        mine = np.isclose(r, rho)
        n_doms = len(phi) * len(z)
        simulated = float(weight[mine].sum())
        # A vertical up-going muon: the direct photon's z-component is cos(theta_c) for every DOM.
        expected = (
            n_doms
            * per_m
            * area_ratio
            * float(table.expected_pe(np.array([rho]), np.array([COS_CHERENKOV]))[0])
        )
        assert abs(simulated / expected - 1) < tolerance[rho], (rho, simulated, expected)
        t_nodes = table.t_ns
        rate = np.exp(
            table.log_rate_at(np.full(len(t_nodes), rho), np.full(len(t_nodes), COS_CHERENKOV), t_nodes)
        )
        cdf = np.cumsum(rate * np.gradient(t_nodes))
        table_median = float(np.interp(0.5 * cdf[-1], cdf, t_nodes))
        order = np.argsort(residual[mine])
        cum = np.cumsum(weight[mine][order])
        sim_median = float(residual[mine][order][np.searchsorted(cum, 0.5 * cum[-1])])
        assert abs(sim_median - table_median) < max(3.0, 0.15 * table_median), (rho, sim_median, table_median)
