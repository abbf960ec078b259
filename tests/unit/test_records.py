"""The scan record's state machine, the scan specification and the pixel-result record (pure)."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from skyscan.physics.event import parse_event
from skyscan.records.pixel_result import PixelResultRecord
from skyscan.records.scan import (
    SCAN_STATES,
    TERMINAL_STATES,
    TRANSITIONS,
    IllegalTransition,
    ScanRecord,
    WorkerShare,
    check_transition,
    sources_of,
)
from skyscan.records.spec import ScanSpec, ScanSpecError, parse_options
from skyscan.wire import PixelResult
from tests.conftest import make_event

LEGAL = [
    ("queued", "launching"),
    ("queued", "running"),
    ("queued", "aborted"),
    ("queued", "failed"),
    ("launching", "running"),
    ("launching", "queued"),
    ("launching", "failed"),
    ("launching", "aborted"),
    ("running", "completed"),
    ("running", "failed"),
    ("running", "aborted"),
]


@pytest.mark.parametrize("from_state, to_state", LEGAL)
def test_legal_transitions(from_state: str, to_state: str) -> None:
    check_transition(from_state, to_state)


@pytest.mark.parametrize(
    "from_state, to_state",
    [(a, b) for a in SCAN_STATES for b in SCAN_STATES if (a, b) not in LEGAL],
)
def test_every_other_transition_is_illegal(from_state: str, to_state: str) -> None:
    with pytest.raises(IllegalTransition, match=f"a {from_state} scan cannot become {to_state}"):
        check_transition(from_state, to_state)


def test_nothing_leaves_a_terminal_state_and_unknown_states_are_refused() -> None:
    for state in TERMINAL_STATES:
        assert TRANSITIONS[state] == frozenset()
    with pytest.raises(IllegalTransition, match="unknown scan state"):
        check_transition("running", "paused")


def test_sources_of_a_state() -> None:
    assert set(sources_of("running")) == {"queued", "launching"}
    assert set(sources_of("aborted")) == {"queued", "launching", "running"}
    assert sources_of("running", ("launching",)) == ("launching",)
    with pytest.raises(IllegalTransition):
        sources_of("queued", ("running",))


def test_scan_record_round_trips_through_its_document() -> None:
    spec = ScanSpec(reco="dummy", nsides="8:0,64:4", level_set="icecube-sim")
    record = ScanRecord.new(
        spec,
        run_id=5,
        event_id=6,
        owner="alice",
        priority=3,
        clusters=[WorkerShare(name="a", workers=2), WorkerShare(name="b", workers=3)],
        resources={"cpus": 1.0},
        classifiers={"campaign": "x"},
        rescan_of="abc",
    )
    doc = record.to_doc()
    assert doc["state"] == "queued" and doc["workers"] == 5 and doc["rescan_of"] == "abc"
    assert doc["reco"] == "dummy" and doc["nsides"] == "8:0,64:4" and doc["level_set"] == "icecube-sim"
    assert doc["n_variations"] == 1 and doc["history"][0]["state"] == "queued"
    assert doc["launch"]["attempts"] == 0 and doc["token_hashes"] == []
    back = ScanRecord.from_doc(doc)
    assert back.spec == spec and back.to_doc() == doc
    assert not back.terminal


def test_the_spec_checks_every_part_and_names_the_field() -> None:
    event = parse_event(make_event())
    cases = [
        (ScanSpec(reco="nope"), "reco"),
        (ScanSpec(reco="dummy", reco_options={"bogus": 1}), "reco"),
        (ScanSpec(reco="dummy", nsides="8:0,4:2"), "nsides/strategy"),
        (ScanSpec(reco="dummy", strategy="progression", strategy_options={"level": 3}), "nsides/strategy"),
        (ScanSpec(reco="dummy", strategy="spiral"), "nsides/strategy"),
        (ScanSpec(reco="dummy", level_set="mystery"), "level_set"),
    ]
    for spec, field in cases:
        with pytest.raises(ScanSpecError) as caught:
            spec.checked(event)
        assert caught.value.field == field and str(caught.value).startswith(f"{field}: ")
    with pytest.raises(ScanSpecError, match="nsides/strategy"):
        ScanSpec(reco="dummy", nsides="8:0,2048:4").checked(event, max_nside=1024)


def test_the_checked_spec_is_canonical_and_builds_what_it_describes() -> None:
    spec = ScanSpec(reco="dummy", nsides="8:0 64:12").checked(parse_event(make_event()))
    assert spec.nsides == "8:0,64:12"
    assert spec.build_strategy().nsides == [8, 64]
    assert spec.build_reco().name == "dummy" and spec.n_variations() == 1
    assert ScanSpec.from_doc(spec.to_doc()) == spec


def test_parse_options() -> None:
    assert parse_options(["a=1", "b=2.5", "c=true", "d=srt", "e-f=0"]) == {
        "a": 1,
        "b": 2.5,
        "c": True,
        "d": "srt",
        "e_f": 0,
    }
    with pytest.raises(ValueError, match="strategy option 'x' is not key=value"):
        parse_options(["x"], what="strategy option")


def test_pixel_result_record_from_the_wire_and_back() -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    ok = PixelResult(task_id="s:8:3:0", nside=8, pixel=3, variation=0, llh=12.5, fit={"X": 1.0})
    record = PixelResultRecord.from_wire(ok, "s", "host:1", now)
    assert (record.scan_id, record.worker, record.stored_at) == ("s", "host:1", now)
    assert PixelResultRecord.from_doc({"_id": "x", **record.to_doc()}) == record
    vr = record.to_variation_result()
    assert (vr.nside, vr.pixel, vr.variation, vr.llh, vr.failed) == (8, 3, 0, 12.5, False)
    failed = PixelResultRecord.from_wire(
        PixelResult(task_id="s:8:4:0", nside=8, pixel=4, variation=0, status="failed", error="boom"),
        "s",
        "host:1",
        now,
    ).to_variation_result()
    assert failed.failed and math.isnan(failed.llh) and failed.error == "boom"
