"""The I3SuperDST reader against a writer built from the format description: property-based round
trips through every overflow path, IceTop log charges, run-length widths and multi-byte sizes;
truncated and corrupted payloads refused with the byte offset."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from skyscan.readers.superdst import (
    LOG_CHARGE_STEP,
    PULSE_DTYPE,
    SuperDSTFormatError,
    decode_superdst,
    read_class_header,
    summarize,
)
from tests.support.superdst import Pulse, encode_runs, encode_superdst, size_bytes, superdst_streams

PulseMap = dict[tuple[int, int], list[Pulse]]


def expected_table(pulse_map: Mapping[tuple[int, int], Sequence[Pulse]]) -> np.ndarray:
    rows = [
        (s, om, t, q, w, 7 if hlc else 4) for (s, om), pulses in pulse_map.items() for t, q, w, hlc in pulses
    ]
    table = np.array(rows, dtype=PULSE_DTYPE)
    return table[np.lexsort((table["time"], table["om"], table["string"]))]


def assert_round_trip(pulse_map: PulseMap) -> None:
    decoded = decode_superdst(encode_superdst(pulse_map))
    want = expected_table(pulse_map)
    assert decoded.shape == want.shape
    for col in ("string", "om", "time", "width", "flags"):
        np.testing.assert_array_equal(decoded[col], want[col], err_msg=col)
    np.testing.assert_allclose(decoded["charge"], want["charge"], rtol=1e-6)


# -- strategies: maps whose pulses sit on the format's grid, so the round trip is exact -------------


@st.composite
def dom_pulses(draw: st.DrawFn, icetop: bool) -> list[Pulse]:
    n = draw(st.integers(1, 6))
    # gaps between a DOM's pulses: within a group, across the 255 ns stamp limit, across groups
    gaps = draw(
        st.lists(
            st.one_of(st.integers(1, 300), st.sampled_from([255, 256, 6450, 6451]), st.integers(1, 70_000)),
            min_size=n - 1,
            max_size=n - 1,
        )
    )
    start = draw(st.one_of(st.integers(0, 3000), st.integers(0, 400_000)))
    codes = np.cumsum([start, *gaps]).tolist()
    pulses = []
    for i, code in enumerate(codes):
        room = codes[i + 1] - code if i + 1 < len(codes) else 1 << 15
        width = 1 << draw(st.integers(0, min(15, int(math.log2(room)))))
        if icetop:
            charge = 10.0 ** (draw(st.integers(0, (1 << 14) - 1)) * LOG_CHARGE_STEP - 2.0)
        else:
            q = draw(
                st.one_of(
                    st.integers(0, 70), st.sampled_from([62, 63, 64, 63 + 65535]), st.integers(0, 200_000)
                )
            )
            charge = q * 0.05 + 0.025
        pulses.append((code - 512.0, charge, float(width), draw(st.booleans())))
    return pulses


@st.composite
def pulse_maps(draw: st.DrawFn, max_doms: int = 12) -> PulseMap:
    keys = draw(
        st.lists(
            st.tuples(st.integers(0, 127), st.one_of(st.integers(1, 60), st.integers(61, 64))),
            min_size=1,
            max_size=max_doms,
            unique=True,
        )
    )
    return {key: draw(dom_pulses(key[1] >= 61)) for key in keys}


# -- round trips ---------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pulse_maps())
@example({(1, 1): [(-512.0, 0.025, 1.0, True)]})  # earliest time, smallest charge and width
@example({(5, 30): [(1535.0, 3.175, 1.0, False)]})  # first time code exactly 2047: overflow block 0
@example({(5, 30): [(2047.0 + 65535 - 512, 0.025, 1.0, False)]})  # overflow block exactly 65535
@example({(5, 30): [(2047.0 + 2 * 65535 - 512 + 3, 0.025, 1.0, True)]})  # two saturated blocks
@example({(2, 2): [(0.0, 0.025, 8.0, True), (255.0, 3.175, 1.0, True), (6450.0, 3.225, 1.0, True)]})
@example({(2, 2): [(0.0, (63 + 65535) * 0.05 + 0.025, 1.0, True), (5.0, 62 * 0.05 + 0.025, 1.0, True)]})
@example({(80, 63): [(100.0, 10.0 ** (16383 * LOG_CHARGE_STEP - 2.0), 4.0, True), (110.0, 0.01, 1.0, True)]})
def test_round_trip(pulse_map: PulseMap) -> None:
    assert_round_trip(pulse_map)


# multi-byte sizes (247 or more entries) are left to test_long_width_runs_and_large_sizes
EVERY_PATH = {
    "group time overflow",
    "stamp time overflow",
    "charge overflow",
    "saturated overflow block",
    "IceTop charge byte",
    "multi-byte width run",
}


def test_the_round_trip_strategy_reaches_every_encoder_path() -> None:
    """A check of the generator, so the round trip above is known to exercise each path."""
    seen: set[str] = set()

    @settings(max_examples=400, deadline=None, database=None)
    @given(pulse_maps(max_doms=40))
    def collect(pulse_map: PulseMap) -> None:
        paths = superdst_streams(pulse_map)["paths"]
        assert isinstance(paths, set)
        seen.update(paths)

    collect()
    assert seen >= EVERY_PATH


def test_long_width_runs_and_large_sizes() -> None:
    pulses: list[Pulse] = [(float(i * 300), 0.525, 4.0, True) for i in range(300)]  # 300 equal widths
    pulse_map = {(10, 10): pulses, (11, 10): [(5.0, 0.025, 2.0, False)]}
    assert encode_runs([2] * 300) == bytes([0xC2, 0x22, 0x12])  # 300 = 0x12C, 4-bit digits C, 2, 1
    assert size_bytes(246) == b"\xf6" and size_bytes(247) == b"\xfe\xf7" and size_bytes(70_000)[0] == 0xFC
    assert_round_trip(pulse_map)


@pytest.mark.parametrize(
    "pulses, times, widths",
    [
        # clipped to the next pulse; the third starts with the second: it takes the second half
        # of the second's width and starts there
        (
            [(100.0, 1.025, 16.0, True), (104.0, 0.525, 8.0, True), (104.0, 0.275, 4.0, True)],
            [100, 102, 104],
            [2, 2, 4],
        ),
        # the first two coincide: the second lends its width to the first, and they halve it
        (
            [(100.0, 1.025, 8.0, True), (100.0, 0.525, 4.0, True), (110.0, 0.275, 4.0, True)],
            [100, 102, 110],
            [2, 2, 4],
        ),
    ],
    ids=["later pair", "first pair"],
)
def test_unpacking_spreads_coincident_pulses_and_clips_widths(
    pulses: list[Pulse], times: list[float], widths: list[float]
) -> None:
    """As IceTray's unpacking: a DOM's pulses never overlap."""
    table = decode_superdst(encode_superdst({(3, 3): pulses}))
    assert table["time"].tolist() == times and table["width"].tolist() == widths
    assert table["charge"].tolist() == pytest.approx([p[1] for p in pulses])


def test_a_dom_split_into_groups_keeps_all_its_pulses() -> None:
    # an LC change and a gap over 6450 ns start new groups of the same DOM
    pulses: list[Pulse] = [(0.0, 0.525, 1.0, True), (10.0, 0.525, 1.0, False), (7000.0, 0.525, 1.0, False)]
    streams = superdst_streams({(4, 4): pulses})
    assert len(streams["headers"]) == 3  # type: ignore[arg-type]
    assert_round_trip({(4, 4): pulses})


def test_non_finite_pulses_are_dropped_by_the_writer() -> None:
    table = decode_superdst(encode_superdst({(1, 2): [(5.0, math.nan, 1.0, True), (6.0, 0.525, 1.0, True)]}))
    assert table["time"].tolist() == [6.0]


def test_summary_counts() -> None:
    table = decode_superdst(
        encode_superdst({(1, 2): [(5.0, 0.525, 1.0, True)], (1, 3): [(6.0, 1.025, 1.0, True)]})
    )
    assert summarize(table) == {"doms": 2, "pulses": 2, "charge": pytest.approx(1.55)}


# -- refusing broken payloads -------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(pulse_maps(max_doms=6), st.data())
def test_every_truncation_is_refused_with_its_offset(pulse_map: PulseMap, data: st.DataObject) -> None:
    buf = encode_superdst(pulse_map)
    cut = data.draw(st.integers(0, len(buf) - 1))
    with pytest.raises(SuperDSTFormatError, match=r"at byte \d+"):
        decode_superdst(buf[:cut])


@settings(max_examples=300, deadline=None)
@given(pulse_maps(max_doms=6), st.data())
def test_corruption_raises_only_the_format_error(pulse_map: PulseMap, data: st.DataObject) -> None:
    """SuperDST has no checksum, so a flipped value bit can decode to another valid map; but a
    corrupt buffer never crashes the reader with anything but :class:`SuperDSTFormatError`."""
    buf = bytearray(encode_superdst(pulse_map))
    for _ in range(data.draw(st.integers(1, 4))):
        buf[data.draw(st.integers(0, len(buf) - 1))] ^= data.draw(st.integers(1, 255))
    try:
        table = decode_superdst(bytes(buf))
    except SuperDSTFormatError as err:
        assert "at byte" in str(err)
    else:
        assert table.dtype == PULSE_DTYPE


SMALL_MAP: PulseMap = {
    (1, 1): [(0.0, 0.525, 1.0, True), (20.0, 0.525, 1.0, True)],
    (2, 1): [(30.0, 0.525, 1.0, False)],
}


def _structure() -> tuple[bytes, dict[str, int]]:
    """The small map's buffer and where its fields are: three stamps, two groups."""
    buf = encode_superdst(SMALL_MAP)
    first = read_class_header(buf)
    return buf, {"stamps_size": first + 4, "first_stamp": first + 5, "headers_size": first + 5 + 6 + 2}


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda b, at: b.__setitem__(at["stamps_size"], 4), r"unexpected class info before group headers"),
        (
            lambda b, at: b.__setitem__(at["headers_size"], 3),
            r"unexpected class info before InIce SLC widths",
        ),
        (lambda b, at: b.__setitem__(at["first_stamp"] + 1, b[at["first_stamp"] + 1] | 0x80), r"left over"),
        (lambda b, at: b.__setitem__(at["first_stamp"] + 3, b[at["first_stamp"] + 3] & 0xBF), r"HLC bit"),
        (lambda b, at: b.__setitem__(at["stamps_size"] - 1, 1), r"class info"),
        (lambda b, at: b.__setitem__(19, 0), r"version 0 .* not supported"),
        (lambda b, at: b.__setitem__(10, ord("X")), r"class .* is not 'I3SuperDST'"),
        (lambda b, at: b.extend(b"\0"), r"1 bytes left over"),
    ],
    ids=["stamp count", "header count", "stop bit", "hlc bit", "class info", "version", "class", "tail"],
)
def test_structural_corruption_is_named(edit: object, message: str) -> None:
    buf, at = _structure()
    broken = bytearray(buf)
    edit(broken, at)  # type: ignore[operator]
    with pytest.raises(SuperDSTFormatError, match=message) as err:
        decode_superdst(bytes(broken))
    assert "at byte" in str(err.value)


def test_width_stream_mismatch_is_named() -> None:
    buf = encode_superdst(SMALL_MAP)
    assert superdst_streams(SMALL_MAP)["widths"] == [[0], [0, 0], [], []]
    # the InIce SLC and HLC width streams: sizes and runs; shorten the HLC run from 2 to 1
    hlc_runs = encode_runs([0, 0])
    at = buf.index(size_bytes(1) + encode_runs([0]) + size_bytes(len(hlc_runs)) + hlc_runs)
    broken = bytearray(buf)
    broken[at + 3] = 0x10
    with pytest.raises(SuperDSTFormatError, match=r"InIce HLC widths run out .* at byte \d+"):
        decode_superdst(bytes(broken))
