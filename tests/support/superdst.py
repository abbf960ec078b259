"""A test-side I3SuperDST and I3RecoPulseSeriesMapMask writer, written from the format description
(icetray-public ``superdst.rst`` and the serializer in ``I3SuperDST.cxx``), so the reader in
:mod:`skyscan.readers.superdst` is exercised beyond the four real files.

It follows IceTray's encoder step by step: pulses with a non-finite time or charge are dropped,
each DOM's pulses are time ordered and split into groups (a new group for every IceTop pulse, at a
change of the LC flag, or more than 6450 ns after the group's first pulse), the groups are ordered
by start time, times become deltas (a group's first stamp from the previous group's first stamp,
the very first from -512 ns), and saturated codes continue in 16-bit overflow stamps.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

T0_NS = -512.0
GROUP_SPAN_NS = 6450.0
LOG_STEP = 9.0 / ((1 << 14) - 1)
ICETOP_MIN_OM = 61
CLASS_PREFIX = b"\x00\x01\x02\x00"  # what precedes the class name in every frame object buffer

# (time ns, charge PE, width ns, hlc)
Pulse = tuple[float, float, float, bool]


def _fls(value: int) -> int:
    return value.bit_length()


def time_code(time_ns: float) -> int:
    return min(round(time_ns - T0_NS), (1 << 31) - 1)


def charge_code(charge_pe: float, icetop: bool) -> int:
    if icetop:
        log_q = max(0.0, math.log10(charge_pe) + 2.0) if charge_pe > 0 else 0.0
        return min(round(log_q / LOG_STEP), (1 << 31) - 1)
    return int(math.floor(max(0.0, charge_pe) / 0.05))


def width_code(width_ns: float) -> int:
    rounded = math.ceil(max(width_ns, 1.0))
    code = _fls(rounded)
    return code - 1 if code > 0 and rounded == 1 << (code - 1) else code


def size_bytes(n: int) -> bytes:
    """IceTray's variable-width size: one byte below 247, else 0xff - k and k little-endian bytes."""
    if n < 0xFF - 8:
        return bytes([n])
    k = (_fls(n) - 1) // 8 + 1
    return bytes([0xFF - k]) + n.to_bytes(k, "little")


def encode_runs(values: Sequence[int]) -> bytes:
    """Run-length code 4-bit values: value in the low nibble, the run length's 4-bit digits
    (least significant first) in the high nibbles of consecutive bytes."""
    out = bytearray()
    i = 0
    while i < len(values):
        j = i
        while j < len(values) and values[j] == values[i]:
            j += 1
        length = j - i
        for block in range((_fls(length) - 1) // 4 + 1):
            out.append((values[i] & 0xF) | (((length >> (4 * block)) << 4) & 0xF0))
        i = j
    return bytes(out)


@dataclass
class _Group:
    string: int
    om: int
    hlc: bool
    start: float
    times: list[int]  # absolute time codes
    charges: list[int]
    widths: list[int]


def _groups(pulse_map: Mapping[tuple[int, int], Sequence[Pulse]]) -> list[_Group]:
    groups: list[_Group] = []
    for (string, om), pulses in sorted(pulse_map.items()):
        icetop = om >= ICETOP_MIN_OM
        good = sorted((p for p in pulses if math.isfinite(p[0]) and math.isfinite(p[1])), key=lambda p: p[0])
        runs: list[list[Pulse]] = []
        for p in good:
            head = runs[-1][0] if runs else None
            if head is None or icetop or p[3] != head[3] or p[0] - head[0] > GROUP_SPAN_NS:
                runs.append([p])
            else:
                runs[-1].append(p)
        for run in runs:
            assert run[0][0] >= T0_NS, "times before -512 ns are not representable"
            groups.append(
                _Group(
                    string,
                    om,
                    bool(run[0][3]),
                    run[0][0] - T0_NS,
                    [time_code(p[0]) for p in run],
                    [charge_code(max(p[1], 0.0), icetop) for p in run],
                    [width_code(max(p[2], 1.0)) for p in run],
                )
            )
    groups.sort(key=lambda g: g.start)  # stable, as std::list::sort
    return groups


def _overflow(stamps: list[int], code: int, paths: set[str]) -> None:
    if code >= 0xFFFF:
        paths.add("saturated overflow block")
    while True:
        block = min(code, 0xFFFF)
        code -= block
        stamps.append(block)
        if code <= 0:
            break
    if block == 0xFFFF:  # a saturated block means "more follows": end with a zero
        stamps.append(0)


def superdst_streams(pulse_map: Mapping[tuple[int, int], Sequence[Pulse]]) -> dict[str, object]:
    """The serialized streams: stamps and headers (uint16 lists), widths per stream, extra bytes,
    and ``paths``: the encoder branches taken (which overflows, IceTop charges)."""
    paths: set[str] = set()
    stamps: list[int] = []
    headers: list[int] = []
    widths: list[list[int]] = [[], [], [], []]
    extra = bytearray()
    previous_first = 0
    for g in _groups(pulse_map):
        icetop = g.om >= ICETOP_MIN_OM
        stream = widths[2 * icetop + g.hlc]
        deltas = [g.times[0] - previous_first] + [b - a for a, b in zip(g.times, g.times[1:], strict=False)]
        previous_first = g.times[0]
        for k, (dt, q, w) in enumerate(zip(deltas, g.charges, g.widths, strict=True)):
            stop = k == len(deltas) - 1
            saturate_t = 2047 if k == 0 else 255
            t_field = min(dt, saturate_t)
            if k == 0:
                headers.append(((g.string << 6) | (g.om - 1)) | ((t_field >> 8) & 7) << 13)
            if icetop:
                paths.add("IceTop charge byte")
                q_field = q & 0x3F
                extra.append((q >> 6) & 0xFF)
            else:
                q_field = min(q, 63)
            stamps.append((t_field & 0xFF) | q_field << 8 | g.hlc << 14 | stop << 15)
            stream.append(w)
            if dt >= saturate_t:
                paths.add("group time overflow" if k == 0 else "stamp time overflow")
                _overflow(stamps, dt - saturate_t, paths)
            if not icetop and q >= 63:
                paths.add("charge overflow")
                _overflow(stamps, q - 63, paths)
    if len(stamps) >= 0xFF - 8 or any(len(w) >= 0xFF - 8 for w in widths):
        paths.add("multi-byte size")
    if any(len(encode_runs(w)) > len(set(w)) for w in widths if w):
        paths.add("multi-byte width run")
    return {"stamps": stamps, "headers": headers, "widths": widths, "extra": bytes(extra), "paths": paths}


def _class_name(name: str) -> bytes:
    return CLASS_PREFIX + struct.pack("<I", len(name)) + name.encode()


def encode_superdst(pulse_map: Mapping[tuple[int, int], Sequence[Pulse]]) -> bytes:
    """An I3SuperDST frame-object buffer (version 1) holding ``pulse_map``."""
    s = superdst_streams(pulse_map)
    stamps, headers = s["stamps"], s["headers"]
    assert isinstance(stamps, list) and isinstance(headers, list)
    out = bytearray(_class_name("I3SuperDST"))
    out += bytes([1, 1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0])  # tracking, version 1, ids, I3FrameObject
    out += bytes(4) + size_bytes(len(stamps)) + np.asarray(stamps, "<u2").tobytes()
    out += bytes(2) + size_bytes(len(headers)) + np.asarray(headers, "<u2").tobytes()
    widths = s["widths"]
    assert isinstance(widths, list)
    for k, stream in enumerate(widths):
        runs = encode_runs(stream)
        out += (bytes(2) if k == 0 else b"") + size_bytes(len(runs)) + runs
    extra = s["extra"]
    assert isinstance(extra, bytes)
    out += size_bytes(len(extra)) + extra
    return bytes(out)


def _bitmask(bits: Sequence[bool]) -> bytes:
    n_bytes = (len(bits) - 1) // 8 + 1 if bits else 1
    packed = np.packbits(np.asarray(bits, bool), bitorder="little").tobytes() if bits else b""
    return struct.pack("<HB", n_bytes, 8 * n_bytes - len(bits)) + packed.ljust(n_bytes, b"\0")


def encode_mask(source: str, doms: Sequence[bool], pulses: Sequence[Sequence[bool]]) -> bytes:
    """An I3RecoPulseSeriesMapMask (version 2) over ``source``: a bit per source DOM (map order)
    and, for each selected DOM, a bit per pulse."""
    out = bytearray(_class_name("I3RecoPulseSeriesMapMask"))
    out += bytes([1, 2, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0])
    out += struct.pack("<I", len(source)) + source.encode()
    out += bytes(2) + _bitmask(doms)
    out += bytes(2) + struct.pack("<I", len(pulses))
    for bits in pulses:
        out += _bitmask(bits)
    return bytes(out)
