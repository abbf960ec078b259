from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skyscan.wire import (
    Direction,
    MessageError,
    PixelResult,
    PixelTask,
    decode_result,
    decode_task,
    encode,
    task_id,
)


def make_task(**kw) -> PixelTask:  # type: ignore[no-untyped-def]
    base = dict(
        task_id=task_id("abc", 8, 5, 0),
        scan_id="abc",
        reco="dummy",
        nside=8,
        pixel=5,
        variation=0,
        direction=Direction(ra=1.0, dec=-0.5, zenith=1.1, azimuth=2.2),
    )
    base.update(kw)
    return PixelTask(**base)


def test_task_round_trip_is_json_with_schema() -> None:
    task = make_task()
    body = encode(task)
    assert json.loads(body)["schema"] == "skydriver.task/1"
    assert decode_task(body) == task


@given(
    nside=st.sampled_from([1, 8, 64, 512]),
    pixel=st.integers(0, 1000),
    variation=st.integers(0, 10),
    llh=st.one_of(st.none(), st.floats(-1e6, 1e6)),
)
def test_result_round_trip(nside: int, pixel: int, variation: int, llh: float | None) -> None:
    result = PixelResult(
        task_id=task_id("s1", nside, pixel, variation),
        scan_id="s1",
        nside=nside,
        pixel=pixel,
        variation=variation,
        llh=llh,
        status="ok" if llh is not None else "failed",
    )
    assert decode_result(encode(result)) == result


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"schema": "other/1"}',
        b'{"schema": "skydriver.result/1", "task_id": "x"}',
        json.dumps(
            {
                "schema": "skydriver.result/1",
                "task_id": "s:8:1:0",
                "scan_id": "s",
                "nside": 8,
                "pixel": 2,
                "variation": 0,
            }
        ).encode(),
        b"\xff\xfe",
        b"{" * 10,
    ],
)
def test_malformed_results_raise_message_error(body: bytes) -> None:
    with pytest.raises(MessageError):
        decode_result(body)


def test_task_ids_are_deterministic() -> None:
    assert task_id("scan", 64, 1234, 3) == "scan:64:1234:3"
