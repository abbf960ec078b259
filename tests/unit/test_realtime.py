"""i3live realtime events -> open format, without IceTray (real HESE events and synthetic frames)."""

from __future__ import annotations

import base64
import json
import math
import pickle
import struct
import zlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from skydriver_api.cli import app
from skyscan.physics.event import load_event
from skyscan.physics.geometry import find_default_geometry, icecube_like_geometry, load_geometry_csv
from skyscan.readers.realtime import (
    RealtimeFormatError,
    SuperDSTOnlyError,
    decode_pulse_map,
    parse_i3frame,
    read_realtime_event,
    safe_unpickle,
)

GEOMETRY_CSV = find_default_geometry()
EVENTS = GEOMETRY_CSV.parent.parent / "realtime_events" if GEOMETRY_CSV else None
needs_data = pytest.mark.skipif(
    EVENTS is None or not EVENTS.is_dir(), reason="shared data (../shared/data/realtime_events) absent"
)

# -- a tiny writer for the same binary layouts, so the reader is tested without the shared data --


def _name(name: str) -> bytes:
    return b"\x00\x01\x02\x00" + struct.pack("<I", len(name)) + name.encode()


def pulse_map_buffer(doms: list[tuple[int, int, list[tuple[float, float, float, int]]]]) -> bytes:
    out = bytearray(_name("I3RecoPulseSeriesMap") + bytes(14) + struct.pack("<I", len(doms)) + bytes(2))
    first_pulse = True
    for i, (string, om, pulses) in enumerate(doms):
        if i == 0:
            out += b"\x01\x02"
        out += struct.pack("<IiIB", 2 + i, string, om, 0)
        if i == 0:
            out += bytes(2)
        out += struct.pack("<I", len(pulses))
        for time, charge, width, flags in pulses:
            if first_pulse:
                out += b"\x01\x03"
                first_pulse = False
            out += struct.pack("<IdffB", 3, time, charge, width, flags)
    return bytes(out)


def particle_buffer(zenith: float, azimuth: float, x: float = 1.0, y: float = 2.0, z: float = 3.0) -> bytes:
    buf = bytearray(_name("I3Particle") + bytes(150 - 18))
    for off, value in (
        (64, x),
        (72, y),
        (80, z),
        (98, zenith),
        (106, azimuth),
        (114, 9000.0),
        (122, math.nan),
        (138, 0.2998),
    ):
        struct.pack_into("<d", buf, off, value)
    return bytes(buf)


def header_buffer(run: int, event: int, year: int, daq: int) -> bytes:
    return (
        _name("I3EventHeader")
        + bytes(12)
        + struct.pack("<IIII", run, 0, event, 0)
        + bytes(4)
        + struct.pack("<I", 10)
        + b"InIceSplit"
        + b"\x01\x00"
        + struct.pack("<II", 2, 3)
        + struct.pack("<iq", year, daq)
        + bytes(20)
    )


def frame_bytes(stream: str, objects: dict[str, tuple[str, bytes]]) -> bytes:
    out = bytearray(
        b"[i3]" + struct.pack("<I", 6) + bytes(2) + stream.encode() + struct.pack("<I", len(objects))
    )
    for key, (type_name, buf) in objects.items():
        for part in (key.encode(), type_name.encode(), buf):
            out += struct.pack("<I", len(part)) + part
    return bytes(out)


def pickled_frame(raw: bytes) -> str:
    # Protocol-2 pickle of icecube.icetray.I3Frame: GLOBAL, (), REDUCE, ({}, bytes), BUILD.
    body = b"\x80\x02cicecube.icetray\nI3Frame\n)R}T" + struct.pack("<I", len(raw)) + raw + b"\x86b."
    return base64.b64encode(zlib.compress(body)).decode()


def realtime_doc(frames: list[tuple[str, bytes]]) -> dict[str, object]:
    return {"value": {"data": [[s, pickled_frame(raw)] for s, raw in frames]}}


GEO = icecube_like_geometry()


def synthetic_event() -> dict[str, object]:
    pulses = [(1, 1, [(10000.0, 1.5, 4.0, 7), (10020.0, 0.5, 4.0, 2)]), (2, 30, [(10100.5, 2.25, 8.0, 0)])]
    q = frame_bytes(
        "Q",
        {
            "UncleanedInIcePulses": ("I3Map<OMKey, vector<I3RecoPulse> >", pulse_map_buffer(pulses)),
            "I3EventHeader": ("I3EventHeader", header_buffer(4242, 77, 2020, 86400 * 10**10 * 31)),
        },
    )
    p = frame_bytes("P", {"MyFit": ("I3Particle", particle_buffer(1.25, 3.5))})
    return realtime_doc([("Q", q), ("P", p)])


def test_synthetic_event_round_trip() -> None:
    event = read_realtime_event(synthetic_event(), GEO)
    assert (event.run_id, event.event_id) == (4242, 77)
    assert event.mjd == pytest.approx(58849.0 + 31.0)  # 2020-02-01
    assert [(p.string, p.om, p.time, p.charge, p.hlc) for p in event.pulses] == [
        (1, 1, 10000.0, 1.5, True),
        (1, 1, 10020.0, 0.5, False),
        (2, 30, 10100.5, 2.25, False),
    ]
    assert (event.pulses[2].x, event.pulses[2].y, event.pulses[2].z) == GEO.position(2, 30)
    fit = event.reference_fits["MyFit"]
    assert (fit.zenith, fit.azimuth) == (1.25, 3.5)
    assert event.is_real_event and event.metadata["pulse_series"] == "UncleanedInIcePulses"


def test_pulse_map_must_be_consumed_exactly() -> None:
    buf = pulse_map_buffer([(1, 1, [(1.0, 1.0, 1.0, 1)])])
    assert len(decode_pulse_map(buf)) == 1
    with pytest.raises(RealtimeFormatError, match="left over"):
        decode_pulse_map(buf + b"\x00")
    with pytest.raises(RealtimeFormatError, match="truncated"):
        decode_pulse_map(buf[:-3])
    with pytest.raises(RealtimeFormatError, match="version"):
        parse_i3frame(b"[i3]" + struct.pack("<I", 5) + bytes(10))


def test_superdst_only_is_refused_with_its_own_error() -> None:
    q = frame_bytes(
        "Q",
        {
            "I3SuperDST": ("I3SuperDST", b"\x00" * 40),
            "I3EventHeader": ("I3EventHeader", header_buffer(1, 2, 2020, 0)),
        },
    )
    with pytest.raises(SuperDSTOnlyError, match="SuperDST"):
        read_realtime_event(realtime_doc([("Q", q)]), GEO)


def test_unknown_dom_is_reported() -> None:
    q = frame_bytes(
        "Q",
        {
            "UncleanedInIcePulses": (
                "I3Map<OMKey, vector<I3RecoPulse> >",
                pulse_map_buffer([(99, 1, [(1.0, 1.0, 1.0, 0)])]),
            ),
            "I3EventHeader": ("I3EventHeader", header_buffer(1, 2, 2020, 0)),
        },
    )
    with pytest.raises(RealtimeFormatError, match="not in the geometry"):
        read_realtime_event(realtime_doc([("Q", q)]), GEO)


class _Exploit:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, ("echo pwned > /dev/null",))


def test_unpickling_never_runs_arbitrary_globals(tmp_path: Path) -> None:
    with pytest.raises(RealtimeFormatError, match="refusing"):
        safe_unpickle(pickle.dumps(_Exploit()))
    evil = {"value": {"data": [["Q", base64.b64encode(zlib.compress(pickle.dumps(_Exploit()))).decode()]]}}
    with pytest.raises(RealtimeFormatError, match="refusing"):
        read_realtime_event(evil, GEO)
    with pytest.raises(RealtimeFormatError):
        read_realtime_event({"value": {"data": [["Q", "not base64 !!"]]}}, GEO)
    with pytest.raises(RealtimeFormatError, match="no frames"):
        read_realtime_event({"value": {}}, GEO)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    with pytest.raises(RealtimeFormatError, match="JSON"):
        read_realtime_event(bad_json, GEO)


@needs_data
@pytest.mark.parametrize(
    ("name", "n_pulses", "run_id", "event_id", "spefit2"),
    [
        ("hese_event_00.json", 635, 127907, 16605651, (0.88173, 4.90692)),
        ("hese_event_01.json", 413, 127907, 20178442, (0.84592, 2.79888)),
        ("hese_event_02.json", 1157, 127908, 38887237, (0.58187, 1.72593)),
        ("hese_event_03.json", 955, 127909, 75816173, (0.86220, 4.18689)),
    ],
)
def test_real_hese_events(
    name: str, n_pulses: int, run_id: int, event_id: int, spefit2: tuple[float, float]
) -> None:
    assert EVENTS is not None and GEOMETRY_CSV is not None
    event = read_realtime_event(EVENTS / name, load_geometry_csv(GEOMETRY_CSV))
    assert len(event.pulses) == n_pulses
    assert (event.run_id, event.event_id) == (run_id, event_id)
    assert 57500.0 < event.mjd < 57540.0  # May 2016
    fit = event.reference_fits["HESE_SPEFit2"]
    assert (fit.zenith, fit.azimuth) == pytest.approx(spefit2, abs=1e-5)
    assert "HESE_MuonImprovedLineFit" in event.reference_fits
    assert any(p.hlc for p in event.pulses)


@needs_data
def test_real_superdst_events_are_refused() -> None:
    assert EVENTS is not None and GEOMETRY_CSV is not None
    geo = load_geometry_csv(GEOMETRY_CSV)
    for name in (
        "event_HESE_2017-11-28.json",
        "138632_31747601.json",
        "run00136766-evt000007637140-GOLD.pkl",
    ):
        with pytest.raises(SuperDSTOnlyError):
            read_realtime_event(EVENTS / name, geo)


@needs_data
def test_cli_import_realtime(tmp_path: Path) -> None:
    assert EVENTS is not None and GEOMETRY_CSV is not None
    out = tmp_path / "ev.json"
    res = CliRunner().invoke(
        app,
        [
            "import-realtime",
            str(EVENTS / "hese_event_01.json"),
            "--geometry",
            str(GEOMETRY_CSV),
            "-o",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert len(load_event(out).pulses) == 413
    assert "pulses" in json.loads(out.read_text())
    res = CliRunner().invoke(
        app,
        [
            "import-realtime",
            str(EVENTS / "event_HESE_2017-11-28.json"),
            "--geometry",
            str(GEOMETRY_CSV),
            "-o",
            str(out),
        ],
    )
    assert res.exit_code == 2 and "SuperDST" in res.output
