"""How a flush of the scan server's results becomes one stored bundle (pure; no database)."""

from __future__ import annotations

import datetime as dt

import pytest

from skyinfra.store.pixel_results import PixelResultRepository, bundle_results, scan_range
from skyscan.records.pixel_result import PixelResultRecord


def test_a_bundle_holds_each_task_once_and_one_scan_only() -> None:
    now = dt.datetime.now(dt.UTC)

    def result(scan_id: str, pixel: int, llh: float) -> PixelResultRecord:
        task = f"{scan_id}:8:{pixel}:0"
        return PixelResultRecord(
            task_id=task,
            scan_id=scan_id,
            nside=8,
            pixel=pixel,
            variation=0,
            llh=llh,
            status="ok",
            stored_at=now,
        )

    bundle = PixelResultRepository.bundle([result("s1", 1, 1.0), result("s1", 2, 2.0), result("s1", 1, -5.0)])
    assert bundle is not None and bundle["n"] == 2 and bundle["_id"].startswith("s1:")
    assert [(r["pixel"], r["llh"]) for r in bundle["results"]] == [(1, 1.0), (2, 2.0)]
    assert all("scan_id" not in r for r in bundle["results"]) and bundle["scan_id"] == "s1"
    assert PixelResultRepository.bundle([]) is None
    with pytest.raises(ValueError, match="one scan"):
        PixelResultRepository.bundle([result("s1", 1, 1.0), result("s2", 1, 1.0)])
    assert bundle_results(bundle)[0] == {**bundle["results"][0], "scan_id": "s1"}
    # the scan's range holds its bundles and no other scan's ("s1x:..." sorts after "s1;")
    low, high = scan_range("s1")["_id"]["$gte"], scan_range("s1")["_id"]["$lt"]
    assert low <= bundle["_id"] < high and not (low <= "s1x:1:2" < high)
