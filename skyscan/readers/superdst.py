"""IceCube ``I3SuperDST`` (the compressed pulse series of realtime alerts) -> a pulse table.

Learned from IceCube's BSD-2 ``icecube/icetray-public`` (``dataclasses/resources/docs/superdst.rst``
and ``dataclasses/private/dataclasses/payload/I3SuperDST.cxx``); this is an independent reader,
numpy only. Layout of a serialized frame object (portable binary archive, little endian):

* class name (4 bytes, uint32 length, ``I3SuperDST``), then 12 bytes of archive preamble whose
  second byte is the class version (1 in every file written since 2011; version 0 is refused);
* five variable-length vectors, each a *size* (one byte below 247, else ``0xff - n`` followed by
  an n-byte little-endian integer) and its contents: the charge stamps (uint16), the group
  headers (uint16), four run-length-coded width streams (InIce SLC, InIce HLC, IceTop SLC,
  IceTop HLC) and the extra bytes holding the high bits of IceTop charges. The first vector of
  each element type is preceded by two bytes of class information (all zero), the very first by
  two more (the size codec's).

A *group* (readout) is one DOM's pulses close in time. Its header holds the DOM id (13 bits:
string = bits 6-12, om = bits 0-5 plus one) and 3 "slop" bits that extend the first stamp's
8-bit time to 11 bits. A charge stamp holds an 8-bit time delta (1 ns), a 6-bit charge (0.05 PE
linear in-ice; the low 6 of 14 log10 bits for IceTop), the HLC bit and a stop bit ending the
group. A saturated time (2047 for a group's first stamp, 255 after) or in-ice charge (63) is
continued by 16-bit overflow stamps that are added while they read 65535. The first stamp of
each group counts from the previous group's first stamp, the first of all from -512 ns; later
stamps of a group count from the stamp before. Widths are 4-bit log2 codes (1 ns * 2**code).

Decoding then mirrors IceTray's ``Unpack``: HLC pulses get flags ATWD|FADC|LC (7), SLC ones FADC
(4); within a DOM pulses are time ordered, each width is clipped to the gap before the next
pulse, and pulses at the same time are spread apart as IceTray does (see :func:`_separate`).

SuperDST carries no checksum: every structural inconsistency (a stream too short or too long, a
stamp that runs past the end, counts that disagree) raises :class:`SuperDSTFormatError` naming the
byte offset in the object buffer, so a truncated payload never yields a pulse list. (Flipped bits
inside a charge or time value are indistinguishable from real values; the realtime document's
zlib layer, which checks an Adler-32 sum, catches those in transit.)
"""

from __future__ import annotations

import math
import struct

import numpy as np

CLASS_NAME = "I3SuperDST"
SUPPORTED_VERSION = 1
T_MIN_NS = -512.0  # earliest representable time, the reference of the first group

MAX_TIMECODE_HEADER = (1 << 11) - 1  # 8 time bits + 3 slop bits
MAX_TIMECODE = (1 << 8) - 1
MAX_CHARGECODE = (1 << 6) - 1
MAX_OVERFLOW = 0xFFFF
LINEAR_CHARGE_STEP_PE = 0.05
LOG_CHARGE_STEP = 9.0 / ((1 << 14) - 1)  # in log10(PE), IceTop
ICETOP_MIN_OM = 61  # om > 60: IceTop DOMs, log charges, one pulse per group

FLAGS_HLC = 1 | 2 | 4  # I3RecoPulse LC | ATWD | FADC
FLAGS_SLC = 4  # FADC

WIDTH_STREAMS = ("InIce SLC", "InIce HLC", "IceTop SLC", "IceTop HLC")
SIZE_TAG_LIMIT = 0xFF - 8  # sizes below this are stored in their tag byte

PULSE_DTYPE = np.dtype(
    [
        ("string", np.int32),
        ("om", np.int32),
        ("time", np.float64),
        ("charge", np.float32),
        ("width", np.float32),
        ("flags", np.uint8),
    ]
)


class SuperDSTFormatError(ValueError):
    """The buffer is not a readable I3SuperDST; the message names the byte offset."""


class _Cursor:
    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def fail(self, message: str, at: int | None = None) -> SuperDSTFormatError:
        return SuperDSTFormatError(f"I3SuperDST: {message} at byte {self.pos if at is None else at}")

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.buf):
            raise self.fail(f"truncated: {what} needs {n} bytes, {len(self.buf) - self.pos} left")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def size(self, what: str) -> int:
        tag = self.take(1, f"the size of {what}")[0]
        if tag < SIZE_TAG_LIMIT:
            return tag
        n = 0xFF - tag
        if n == 0:
            raise self.fail(f"invalid size tag 0xff for {what}", self.pos - 1)
        return int.from_bytes(self.take(n, f"the {n}-byte size of {what}"), "little")

    def vector(self, what: str, item_bytes: int, class_info_bytes: int) -> tuple[bytes, int]:
        """(contents, offset of the contents) of one variable-length vector."""
        at = self.pos
        if any(self.take(class_info_bytes, f"the class info of {what}")):
            raise self.fail(f"unexpected class info before {what}", at)
        n = self.size(what)
        left = len(self.buf) - self.pos
        if n * item_bytes > left:
            raise self.fail(f"truncated: {what} declare {n} entries ({n * item_bytes} bytes), {left} left")
        start = self.pos
        return self.take(n * item_bytes, what), start


def _linear_charge(code: int) -> float:
    return code * LINEAR_CHARGE_STEP_PE + LINEAR_CHARGE_STEP_PE / 2  # the bin centre, as IceTray


def _decode_runs(codes: bytes, offset: int, what: str) -> np.ndarray:
    """Run-length-coded 4-bit values: the low nibble is the value, the high nibbles of consecutive
    bytes with the same value are the run length's 4-bit digits, least significant first."""
    out: list[np.ndarray] = []
    i = 0
    while i < len(codes):
        value = codes[i] & 0xF
        length = 0
        shift = 0
        j = i
        while j < len(codes) and codes[j] & 0xF == value:
            length |= (codes[j] >> 4) << shift
            shift += 4
            j += 1
        if length == 0 or shift > 32:
            raise SuperDSTFormatError(f"I3SuperDST: invalid run in the {what} widths at byte {offset + i}")
        out.append(np.full(length, value, np.uint8))
        i = j
    return np.concatenate(out) if out else np.zeros(0, np.uint8)


def read_class_header(buf: bytes) -> int:
    """Check the class name and preamble; the offset of the first vector."""
    cur = _Cursor(buf)
    cur.take(4, "the class name prefix")
    (n,) = struct.unpack("<I", cur.take(4, "the class name length"))
    name = cur.take(n, "the class name") if n <= 64 else b""
    if name != CLASS_NAME.encode():
        raise SuperDSTFormatError(f"I3SuperDST: class {name[:64]!r} is not {CLASS_NAME!r} at byte 8")
    preamble = cur.take(12, "the archive preamble")
    if preamble[1] != SUPPORTED_VERSION:
        raise SuperDSTFormatError(
            f"I3SuperDST: version {preamble[1]} at byte {8 + n + 1} is not supported "
            f"(only version {SUPPORTED_VERSION}, written since 2011)"
        )
    return cur.pos


def decode_superdst(buf: bytes) -> np.ndarray:
    """The pulses of an I3SuperDST frame-object buffer as a :data:`PULSE_DTYPE` table, sorted by
    (string, om) and, within a DOM, by time: the order of IceTray's unpacked pulse map."""
    cur = _Cursor(buf)
    cur.pos = read_class_header(buf)
    # class info precedes the first vector of each element type (and, once, the size codec's)
    stamp_bytes, stamps_at = cur.vector("charge stamps", 2, class_info_bytes=4)
    header_bytes, headers_at = cur.vector("group headers", 2, class_info_bytes=2)
    widths, widths_at = [], []
    for k, label in enumerate(WIDTH_STREAMS):
        codes, at = cur.vector(f"{label} widths", 1, class_info_bytes=2 if k == 0 else 0)
        widths.append(_decode_runs(codes, at, label))
        widths_at.append(at)
    extra, extra_at = cur.vector("IceTop charge bytes", 1, class_info_bytes=0)
    if cur.pos != len(buf):
        raise cur.fail(f"{len(buf) - cur.pos} bytes left over after the last stream")
    stamps = np.frombuffer(stamp_bytes, "<u2").tolist()
    headers = np.frombuffer(header_bytes, "<u2").tolist()
    rows = _unpack_groups(stamps, stamps_at, headers, headers_at, widths, widths_at, extra, extra_at)
    return _finish(rows)


def _unpack_groups(
    stamps: list[int],
    stamps_at: int,
    headers: list[int],
    headers_at: int,
    widths: list[np.ndarray],
    widths_at: list[int],
    extra: bytes,
    extra_at: int,
) -> list[tuple[int, int, float, float, float, int]]:
    n_stamps = len(stamps)
    width_used = [0, 0, 0, 0]
    n_extra = 0
    s = 0  # index of the current stamp

    def stamp_at(i: int) -> int:
        return stamps_at + 2 * i

    def next_stamp(why: str) -> int:
        nonlocal s
        s += 1
        if s >= n_stamps:
            raise SuperDSTFormatError(
                f"I3SuperDST: {why} runs past the last charge stamp at byte {stamp_at(n_stamps)}"
            )
        return stamps[s]

    def add_overflow(code: int, why: str) -> int:
        while True:
            block = next_stamp(why)
            code += block
            if block != MAX_OVERFLOW:
                return code

    def width_of(stream: int, group: int) -> float:
        used = width_used[stream]
        if used >= len(widths[stream]):
            raise SuperDSTFormatError(
                f"I3SuperDST: the {WIDTH_STREAMS[stream]} widths run out at group {group} "
                f"(header at byte {headers_at + 2 * group}, stamp at byte {stamp_at(s)})"
            )
        width_used[stream] = used + 1
        return float(1 << int(widths[stream][used]))

    rows: list[tuple[int, int, float, float, float, int]] = []
    t_ref = T_MIN_NS
    for g, header in enumerate(headers):
        if s >= n_stamps:
            raise SuperDSTFormatError(
                f"I3SuperDST: group {g} (header at byte {headers_at + 2 * g}) has no charge stamp left "
                f"at byte {stamp_at(n_stamps)}"
            )
        dom_id = header & 0x1FFF
        string, om = (dom_id >> 6) & 0x7F, (dom_id & 0x3F) + 1
        icetop = om >= ICETOP_MIN_OM
        stamp = stamps[s]
        hlc = bool(stamp >> 14 & 1)
        stop = bool(stamp >> 15)
        flags = FLAGS_HLC if hlc else FLAGS_SLC
        stream = 2 * icetop + hlc
        timecode = (stamp & 0xFF) | (header >> 13) << 8
        chargecode = stamp >> 8 & MAX_CHARGECODE
        if timecode == MAX_TIMECODE_HEADER:
            timecode = add_overflow(timecode, f"the time overflow of group {g}")
        if icetop:
            if n_extra >= len(extra):
                raise SuperDSTFormatError(
                    f"I3SuperDST: the IceTop charge bytes run out at group {g}, at byte {extra_at + n_extra}"
                )
            chargecode |= extra[n_extra] << 6
            n_extra += 1
            charge = 10.0 ** (chargecode * LOG_CHARGE_STEP - 2.0)
        else:
            if chargecode == MAX_CHARGECODE:
                chargecode = add_overflow(chargecode, f"the charge overflow of group {g}")
            charge = _linear_charge(chargecode)
        t_ref += timecode
        rows.append((string, om, t_ref, charge, width_of(stream, g), flags))
        t_in_group = t_ref
        while not stop:
            stamp = next_stamp(f"group {g} (header at byte {headers_at + 2 * g})")
            if icetop:
                raise SuperDSTFormatError(
                    f"I3SuperDST: IceTop group {g} has a second charge stamp at byte {stamp_at(s)}"
                )
            if bool(stamp >> 14 & 1) != hlc:
                raise SuperDSTFormatError(
                    f"I3SuperDST: the HLC bit changes inside group {g} at byte {stamp_at(s)}"
                )
            stop = bool(stamp >> 15)
            timecode = stamp & 0xFF
            chargecode = stamp >> 8 & MAX_CHARGECODE
            if timecode == MAX_TIMECODE:
                timecode = add_overflow(timecode, f"a time overflow in group {g}")
            if chargecode == MAX_CHARGECODE:
                chargecode = add_overflow(chargecode, f"a charge overflow in group {g}")
            t_in_group += timecode
            rows.append(
                (
                    string,
                    om,
                    t_in_group,
                    _linear_charge(chargecode),
                    width_of(stream, g),
                    flags,
                )
            )
        s += 1
    if s != n_stamps:
        raise SuperDSTFormatError(
            f"I3SuperDST: {n_stamps - s} charge stamps left over after {len(headers)} groups "
            f"at byte {stamp_at(s)}"
        )
    for k, used in enumerate(width_used):
        if used != len(widths[k]):
            raise SuperDSTFormatError(
                f"I3SuperDST: the {WIDTH_STREAMS[k]} width stream at byte {widths_at[k]} holds "
                f"{len(widths[k])} widths but the stamps use {used}"
            )
    if n_extra != len(extra):
        raise SuperDSTFormatError(
            f"I3SuperDST: {len(extra) - n_extra} IceTop charge bytes left over at byte {extra_at + n_extra}"
        )
    return rows


def _finish(rows: list[tuple[int, int, float, float, float, int]]) -> np.ndarray:
    """Sort into map order and make widths not overlap, as IceTray's unpacking does."""
    table = np.array(rows, dtype=PULSE_DTYPE)
    table = table[np.lexsort((table["time"], table["om"], table["string"]))]
    if len(table) < 2:
        return table
    dom = table["string"].astype(np.int64) * 128 + table["om"]
    bounds = np.flatnonzero(np.r_[True, dom[1:] != dom[:-1], True])
    times = table["time"]
    widths = table["width"].astype(np.float64)
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        if hi - lo > 1:
            _separate(times, widths, int(lo), int(hi))
    table["width"] = widths
    return table


def _separate(times: np.ndarray, widths: np.ndarray, lo: int, hi: int) -> None:
    """One DOM's time-ordered pulses ``[lo, hi)``, as IceTray unpacks them: each width is clipped
    to the gap before the next pulse; a pulse left with no width (the next one starts at the same
    time) splits its predecessor's width with it and starts halfway through it, so no two pulses
    of a DOM coincide."""
    pending = False  # the previous pulse had no width and no predecessor to share with
    for i in range(lo, hi):
        prev = i - 1 if i > lo else None
        if i + 1 < hi:
            widths[i] = min(widths[i], np.float32(times[i + 1] - times[i]))
            share = widths[i] == 0 or pending
        else:
            share = pending
        if not share:
            pending = False
            continue
        if prev is None:
            pending = True
            continue
        if widths[prev] == 0 and widths[i] > 0:
            widths[prev] = widths[i]
        widths[prev] = widths[i] = widths[prev] / 2
        times[i] = times[prev] + widths[prev]
        pending = False


def summarize(table: np.ndarray) -> dict[str, float | int]:
    """DOM count, pulse count and total charge (PE) of a pulse table."""
    doms = np.unique(table["string"].astype(np.int64) * 128 + table["om"]).size if len(table) else 0
    return {
        "doms": int(doms),
        "pulses": len(table),
        "charge": float(math.fsum(table["charge"].astype(np.float64))),
    }
