"""A progressive pandel-mpe scan through the REST API gives the same best fit as scan-local."""

from __future__ import annotations

import pytest

from skydriver_api.local_scan import run_local_scan
from skyscan.physics.simulate import simulate_track
from skyscan.records.spec import ScanSpec
from tests.conftest import LiveApi

NSIDES = "8:0,32:6"


def test_api_scan_matches_local_scan(shared_api: LiveApi) -> None:
    event = simulate_track(zenith=1.9, azimuth=4.1, energy_gev=3e4, seed=11, run_id=3, event_id=11)
    local = run_local_scan(event, ScanSpec(reco="pandel-mpe", nsides=NSIDES), processes=1)
    with shared_api.client() as client:
        scan_id = client.submit(
            {"event": event.to_json_dict(), "reco": "pandel-mpe", "nsides": NSIDES, "workers": 2}
        )["scan_id"]
        status = client.wait(scan_id, timeout_s=600)
        assert status["state"] == "completed", shared_api.scan_logs(scan_id)
        remote = client.result(scan_id).json()
    assert remote["n_pixels"] == local["n_pixels"]
    assert (remote["best_fit"]["nside"], remote["best_fit"]["pixel"]) == (
        local["best_fit"]["nside"],
        local["best_fit"]["pixel"],
    )
    assert remote["best_fit"]["llh"] == pytest.approx(local["best_fit"]["llh"], rel=1e-9)
    assert remote["best_fit"]["ra_deg"] == pytest.approx(local["best_fit"]["ra_deg"])
    assert remote["truth"]["offset_deg"] == pytest.approx(local["truth"]["offset_deg"])
    assert remote["truth"]["delta_2llh"] == pytest.approx(local["truth"]["delta_2llh"], abs=1e-6)
    assert remote["truth"]["offset_deg"] < 3.0
