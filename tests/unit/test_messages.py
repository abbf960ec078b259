from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skyscan.wire import (
    MAX_PIXELS_PER_MESSAGE,
    Direction,
    MessageError,
    PixelResult,
    PixelTask,
    ResultBatch,
    TaskBatch,
    decode_results,
    decode_tasks,
    encode,
    task_id,
)


def make_task(pixel: int = 5, scan_id: str = "abc", **kw) -> PixelTask:  # type: ignore[no-untyped-def]
    base = dict(
        task_id=task_id(scan_id, 8, pixel, 0),
        nside=8,
        pixel=pixel,
        variation=0,
        direction=Direction(ra=1.0, dec=-0.5, zenith=1.1, azimuth=2.2),
    )
    base.update(kw)
    return PixelTask(**base)


def make_batch(pixels: list[int], scan_id: str = "abc") -> TaskBatch:
    return TaskBatch(scan_id=scan_id, reco="dummy", tasks=[make_task(p, scan_id) for p in pixels])


def test_a_task_message_carries_several_pixels_each_with_its_own_id() -> None:
    batch = make_batch([5, 6, 7])
    body = encode(batch)
    data = json.loads(body)
    assert data["schema"] == "skydriver.task/2"
    assert [t["task_id"] for t in data["tasks"]] == ["abc:8:5:0", "abc:8:6:0", "abc:8:7:0"]
    assert decode_tasks(body) == batch
    assert batch.message_id == "abc:8:5:0+2"
    assert make_batch([9]).message_id == "abc:8:9:0"


def test_a_split_keeps_the_scan_reco_and_options() -> None:
    batch = TaskBatch(
        scan_id="abc", reco="dummy", options={"delay_s": 0.1}, tasks=[make_task(1), make_task(2)]
    )
    single = batch.with_tasks([batch.tasks[1]])
    assert (single.scan_id, single.reco, single.options) == ("abc", "dummy", {"delay_s": 0.1})
    assert [t.pixel for t in single.tasks] == [2]


@given(
    nside=st.sampled_from([1, 8, 64, 512]),
    pixels=st.lists(st.integers(0, 1000), min_size=1, max_size=20, unique=True),
    variation=st.integers(0, 10),
    llh=st.one_of(st.none(), st.floats(-1e6, 1e6)),
)
def test_result_message_round_trip(nside: int, pixels: list[int], variation: int, llh: float | None) -> None:
    message = ResultBatch(
        scan_id="s1",
        worker="host:1",
        results=[
            PixelResult(
                task_id=task_id("s1", nside, p, variation),
                nside=nside,
                pixel=p,
                variation=variation,
                llh=llh,
                status="ok" if llh is not None else "failed",
            )
            for p in pixels
        ],
    )
    assert decode_results(encode(message)) == message


def result_body(**overrides) -> bytes:  # type: ignore[no-untyped-def]
    item = {"task_id": "s:8:1:0", "nside": 8, "pixel": 1, "variation": 0, "llh": 3.0}
    body = {"schema": "skydriver.result/2", "scan_id": "s", "worker": "w", "results": [item]}
    body.update(overrides)
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[]", "expected schema"),
        (b'{"schema": "other/1"}', "expected schema 'skydriver.result/2', got 'other/1'"),
        (result_body(results=[]), "results"),
        (result_body(scan_id="t"), "task_id does not match"),
        (
            result_body(results=[{"task_id": "s:8:1:0", "nside": 8, "pixel": 2, "variation": 0}]),
            "task_id does not match",
        ),
        (b"\xff\xfe", "not JSON"),
        (b"{" * 10, "not JSON"),
    ],
)
def test_malformed_results_raise_message_error_with_the_reason(body: bytes, reason: str) -> None:
    with pytest.raises(MessageError, match=reason):
        decode_results(body)


def test_version_1_messages_are_refused_naming_the_version() -> None:
    v1_task = {
        "schema": "skydriver.task/1",
        "task_id": "abc:8:5:0",
        "scan_id": "abc",
        "reco": "dummy",
        "nside": 8,
        "pixel": 5,
        "variation": 0,
        "direction": {"ra": 1.0, "dec": -0.5, "zenith": 1.1, "azimuth": 2.2},
    }
    with pytest.raises(MessageError, match=r"'skydriver.task/1' is no longer accepted.*skydriver.task/2"):
        decode_tasks(json.dumps(v1_task).encode())
    v1_result = {"schema": "skydriver.result/1", "task_id": "s:8:1:0", "scan_id": "s", "nside": 8, "pixel": 1}
    with pytest.raises(MessageError, match=r"'skydriver.result/1' is no longer accepted"):
        decode_results(json.dumps(v1_result).encode())


def test_a_task_message_holds_at_most_the_maximum_of_pixels() -> None:
    too_many = {
        "schema": "skydriver.task/2",
        "scan_id": "abc",
        "reco": "dummy",
        "tasks": [json.loads(make_task(p).model_dump_json()) for p in range(MAX_PIXELS_PER_MESSAGE + 1)],
    }
    with pytest.raises(MessageError, match="tasks"):
        decode_tasks(json.dumps(too_many).encode())


def test_task_ids_are_deterministic() -> None:
    assert task_id("scan", 64, 1234, 3) == "scan:64:1234:3"
