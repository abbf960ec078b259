"""IceCube i3live realtime events -> the open event format, without IceTray.

Outer layer: a JSON document (or the same dict pickled, ``.pkl``) whose ``value.data`` is a list of
``[stream, base64(zlib(pickle(I3Frame)))]`` (or ``value.data.frames`` in the 2023 format). Each inner
pickle holds an ``icecube.icetray.I3Frame`` whose state is the raw frame bytes.

Unpickling is restricted: the only global a pickle may name is the I3Frame class, which maps to an
inert stub that stores its state; anything else is refused. No code from the file runs.

Binary layouts (reco_physics_data.md section 1.C, checked on every frame of the shipped events):

* I3Frame v6: ``[i3]``, uint32 version, 2 bytes, stream char, uint32 key count, then per key three
  length-prefixed strings: name, type name, object buffer.
* ``I3RecoPulseSeriesMap``: class name, 14 bytes of class info, uint32 DOM count, 2 bytes; per DOM
  (2 class-info bytes before the first DOM only) uint32 object id, int32 string, uint32 om, uint8
  pmt, (2 bytes, first DOM only) uint32 pulse count; per pulse (2 class-info bytes before the very
  first pulse only) uint32 object id, float64 time, float32 charge, float32 width, uint8 flags
  (bit 0 local coincidence).
* ``I3Particle`` (150 bytes): float64 x, y, z at 64, 72, 80; zenith 98, azimuth 106, time 114,
  energy 122, speed 138.
* ``I3LogLikelihoodFitParams`` (a fit's ``<name>FitParams``): class name, 12 bytes of class info,
  float64 logl, float64 rlogl, int32 ndof, int32 nmini (the minimiser's iterations).
* ``I3EventHeader``: 12 bytes of class info after the class name, uint32 run, subrun, event, two
  more words, the sub-event stream string, then the start time (an I3Time: int32 year and int64
  tenths of ns since the year began) after a few bytes of class info.
* ``I3SuperDST``: the compressed pulse map of realtime alerts, see :mod:`skyscan.readers.superdst`.
* ``I3RecoPulseSeriesMapMask`` (version 2): class name, 12 bytes of class info, the source key
  (uint32 length + name), then bitmasks, each uint16 byte count, uint8 padding bits and the bytes
  (bit i of byte i // 8 selects entry i): one over the source map's DOMs (2 bytes of class info
  first), then a uint32 count (2 bytes of class info first) and one per selected DOM over its
  pulses. The source is a pulse map, an I3SuperDST or another mask.

Which pulses: the first of ``pulse_keys`` the frames hold (a plain map, a mask or SuperDST), else
any plain map, else the mask that no other mask refines, else the whole SuperDST map's in-ice DOMs.
For the alert tracks that is the split mask (``SplitUncleanedInIcePulses`` or ``SplitInIcePulses``)
over ``InIceDSTPulses`` over ``I3SuperDST``: the pulses of the event IceCube reconstructed.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import pickle
import struct
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from skyscan.physics.event import EVENT_SCHEMA, Event, EventFormatError, parse_event
from skyscan.physics.geometry import Geometry
from skyscan.readers.superdst import ICETOP_MIN_OM, SuperDSTFormatError, decode_superdst, summarize

PULSE_MAP_TYPES = ("I3Map<OMKey, vector<I3RecoPulse> >", "I3RecoPulseSeriesMap")
MASK_TYPE = "I3RecoPulseSeriesMapMask"
SUPERDST_TYPE = "I3SuperDST"
PULSE_SOURCE_TYPES = (*PULSE_MAP_TYPES, MASK_TYPE, SUPERDST_TYPE)
DEFAULT_PULSE_KEYS = (
    "UncleanedInIcePulses",
    "SplitUncleanedInIcePulses",
    "SplitInIcePulses",
    "InIcePulses",
    "OfflinePulses",
)
MAX_MASK_DEPTH = 8  # masks of masks: a loop in a corrupt file must end
I3FRAME_CLASSES = {("icecube.icetray", "I3Frame"), ("icecube._icetray", "I3Frame"), ("icetray", "I3Frame")}
MAX_INFLATED_BYTES = 64 * 1024 * 1024  # a realtime frame is ~1 MB; refuse zip bombs
MJD_UNIX_EPOCH = 40587.0


class RealtimeFormatError(ValueError):
    """The file is not a readable realtime event."""


class _I3FrameStub:
    """Inert stand-in for icecube.icetray.I3Frame: it only keeps the pickled state."""

    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """What protocol-2 pickles written by Python 3 call (as ``_codecs.encode``) to rebuild bytes."""
    if not isinstance(text, str) or encoding.replace("-", "").lower() != "latin1":
        raise RealtimeFormatError("refusing _codecs.encode other than str -> latin1 bytes")
    return text.encode("latin-1")


class _RestrictedUnpickler(pickle.Unpickler):
    """Builds plain containers only; the I3Frame class is the single global allowed (as a stub),
    plus a checked stand-in for ``_codecs.encode`` that only turns str into latin-1 bytes."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in I3FRAME_CLASSES:
            return _I3FrameStub
        if (module, name) == ("_codecs", "encode"):
            return _latin1_bytes
        raise RealtimeFormatError(f"refusing to unpickle the global {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        raise RealtimeFormatError("refusing a pickle with persistent ids")


def safe_unpickle(data: bytes) -> Any:
    try:
        return _RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except RealtimeFormatError:
        raise
    except Exception as err:  # malformed pickles raise many types
        raise RealtimeFormatError(f"unreadable pickle: {type(err).__name__}: {err}") from None


# --------------------------------------------------------------------------------------------
# Binary readers
# --------------------------------------------------------------------------------------------


class _Reader:
    def __init__(self, buf: bytes, what: str) -> None:
        self.buf = buf
        self.pos = 0
        self.what = what

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise RealtimeFormatError(f"{self.what}: truncated at byte {self.pos} (wanted {n})")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def u32(self) -> int:
        return int(self.unpack("I")[0])

    def string(self) -> str:
        return self.take(self.u32()).decode("latin-1")


@dataclass(frozen=True)
class FrameObject:
    type_name: str
    buffer: bytes


def parse_i3frame(raw: bytes) -> tuple[str, dict[str, FrameObject]]:
    """Stream letter and {key: (type name, object buffer)} of a serialized I3Frame (version 6)."""
    r = _Reader(raw, "I3Frame")
    if r.take(4) != b"[i3]":
        raise RealtimeFormatError("I3Frame: missing [i3] tag")
    version = r.u32()
    if version != 6:
        raise RealtimeFormatError(f"I3Frame: unsupported version {version}")
    r.take(2)
    stream = r.take(1).decode("latin-1")
    objects: dict[str, FrameObject] = {}
    for _ in range(r.u32()):
        key = r.string()
        type_name = r.string()
        objects[key] = FrameObject(type_name, r.take(r.u32()))
    return stream, objects


def _skip_class_name(r: _Reader, expected: str) -> None:
    r.take(4)
    name = r.string()
    if name != expected:
        raise RealtimeFormatError(f"{r.what}: class {name!r}, expected {expected!r}")


@dataclass(frozen=True)
class RawPulse:
    string: int
    om: int
    time: float
    charge: float
    width: float
    flags: int


def decode_pulse_map(buf: bytes) -> list[RawPulse]:
    """Decode a plain I3RecoPulseSeriesMap buffer; the layout must consume it exactly."""
    r = _Reader(buf, "I3RecoPulseSeriesMap")
    _skip_class_name(r, "I3RecoPulseSeriesMap")
    r.take(14)
    n_doms = r.u32()
    r.take(2)
    pulses: list[RawPulse] = []
    first_pulse = True
    for i in range(n_doms):
        if i == 0:
            r.take(2)
        _obj, string, om, _pmt = r.unpack("IiIB")
        if i == 0:
            r.take(2)
        n_pulses = r.u32()
        for _ in range(n_pulses):
            if first_pulse:
                r.take(2)
                first_pulse = False
            _pid, time, charge, width, flags = r.unpack("IdffB")
            pulses.append(
                RawPulse(int(string), int(om), float(time), float(charge), float(width), int(flags))
            )
    if r.pos != len(buf):
        raise RealtimeFormatError(
            f"I3RecoPulseSeriesMap: {len(buf) - r.pos} bytes left over after {n_doms} DOMs"
        )
    return pulses


@dataclass(frozen=True)
class PulseMask:
    """An ``I3RecoPulseSeriesMapMask``: which DOMs of ``source`` (in map order) and which of their
    pulses it keeps."""

    source: str
    doms: np.ndarray  # bool, one per DOM of the source map
    pulses: tuple[np.ndarray, ...]  # bool per pulse, one array per kept DOM


def _bitmask(r: _Reader, what: str) -> np.ndarray:
    at = r.pos
    n_bytes, padding = r.unpack("HB")
    if padding > min(8, 8 * n_bytes):  # an empty mask is one byte with 8 padding bits
        raise RealtimeFormatError(f"{r.what}: {what} has {padding} padding bits at byte {at}")
    bits = np.unpackbits(np.frombuffer(r.take(n_bytes), np.uint8), bitorder="little")
    return bits[: 8 * n_bytes - padding].astype(bool)


def decode_pulse_mask(buf: bytes) -> PulseMask:
    """Decode an I3RecoPulseSeriesMapMask (version 2) buffer; it must be consumed exactly."""
    r = _Reader(buf, MASK_TYPE)
    _skip_class_name(r, MASK_TYPE)
    preamble = r.take(12)
    if preamble[1] != 2:
        raise RealtimeFormatError(f"{MASK_TYPE}: version {preamble[1]} is not supported (only 2)")
    source = r.string()
    r.take(2)
    doms = _bitmask(r, "the DOM mask")
    r.take(2)
    n_kept = r.u32()
    if n_kept != int(doms.sum()):
        raise RealtimeFormatError(
            f"{MASK_TYPE}: {n_kept} pulse masks for {int(doms.sum())} selected DOMs at byte {r.pos - 4}"
        )
    pulses = tuple(_bitmask(r, f"pulse mask {i}") for i in range(n_kept))
    if r.pos != len(buf):
        raise RealtimeFormatError(f"{MASK_TYPE}: {len(buf) - r.pos} bytes left over at byte {r.pos}")
    return PulseMask(source, doms, pulses)


def apply_mask(pulses: list[RawPulse], mask: PulseMask, name: str) -> list[RawPulse]:
    """The pulses of a source map (in map order: grouped by DOM) that ``mask`` keeps."""
    groups: list[list[RawPulse]] = []
    for p in pulses:
        if groups and (groups[-1][0].string, groups[-1][0].om) == (p.string, p.om):
            groups[-1].append(p)
        else:
            groups.append([p])
    if len(groups) != mask.doms.size:
        raise RealtimeFormatError(
            f"{name}: the mask covers {mask.doms.size} DOMs but its source {mask.source} has {len(groups)}"
        )
    kept: list[RawPulse] = []
    selected = iter(mask.pulses)
    for group, use in zip(groups, mask.doms.tolist(), strict=True):
        if not use:
            continue
        bits = next(selected)
        if bits.size != len(group):
            raise RealtimeFormatError(
                f"{name}: the mask of DOM ({group[0].string}, {group[0].om}) covers {bits.size} pulses "
                f"but {mask.source} has {len(group)}"
            )
        kept.extend(p for p, b in zip(group, bits.tolist(), strict=True) if b)
    return kept


PARTICLE_OFFSETS = {
    "x": 64,
    "y": 72,
    "z": 80,
    "zenith": 98,
    "azimuth": 106,
    "time": 114,
    "energy": 122,
    "speed": 138,
}


def decode_particle(buf: bytes) -> dict[str, float]:
    if len(buf) < 146 or b"I3Particle" not in buf[:24]:
        raise RealtimeFormatError(f"I3Particle: unexpected buffer of {len(buf)} bytes")
    return {k: float(struct.unpack_from("<d", buf, off)[0]) for k, off in PARTICLE_OFFSETS.items()}


FIT_PARAMS_TYPE = "I3LogLikelihoodFitParams"


def decode_fit_params(buf: bytes) -> dict[str, float]:
    """-lnL of a gulliver fit at its minimum (``logl``), per degree of freedom, ndof, iterations."""
    r = _Reader(buf, FIT_PARAMS_TYPE)
    _skip_class_name(r, FIT_PARAMS_TYPE)
    r.take(12)
    logl, rlogl, ndof, nmini = r.unpack("ddii")
    if r.pos != len(buf):
        raise RealtimeFormatError(f"{FIT_PARAMS_TYPE}: {len(buf) - r.pos} bytes left over")
    return {"logl": logl, "rlogl": rlogl, "ndof": float(ndof), "nmini": float(nmini)}


@dataclass(frozen=True)
class EventHeader:
    run_id: int
    sub_run_id: int
    event_id: int
    sub_event_stream: str
    year: int
    daq_time: int  # tenths of ns since the start of the year (UTC)

    @property
    def mjd(self) -> float:
        start = datetime(self.year, 1, 1, tzinfo=UTC).timestamp() / 86400.0 + MJD_UNIX_EPOCH
        # DAQ time counts from 1 January of the year; leap seconds inside the year are ignored (< 1 s).
        return start + self.daq_time * 1e-10 / 86400.0


def decode_event_header(buf: bytes) -> EventHeader:
    r = _Reader(buf, "I3EventHeader")
    _skip_class_name(r, "I3EventHeader")
    r.take(12)  # class info of I3EventHeader and of its I3FrameObject base
    run, sub_run, event = r.unpack("III")
    r.take(8)  # two more words (sub-event id and a flag word; not needed here)
    stream = r.string()
    # The start time (an I3Time) follows: class info and ids, then int32 year and int64 DAQ time.
    # Scan a short stretch for a plausible year to stay robust to small class-info differences.
    for offset in range(r.pos, min(r.pos + 24, len(buf) - 12)):
        year, daq = struct.unpack_from("<iq", buf, offset)
        if 1990 <= year <= 2200 and 0 <= daq < 367 * 86400 * 10**10:
            return EventHeader(run, sub_run, event, stream, year, daq)
    raise RealtimeFormatError("I3EventHeader: no start time found")


# --------------------------------------------------------------------------------------------
# The event
# --------------------------------------------------------------------------------------------


def load_realtime_document(source: str | Path | bytes | dict[str, Any]) -> dict[str, Any]:
    """The outer realtime dict from a path (.json or .pkl), raw bytes, or an already decoded dict."""
    if isinstance(source, dict):
        return source
    data = Path(source).read_bytes() if isinstance(source, str | Path) else source
    if data[:1] in (b"{", b"[") or data.lstrip()[:1] == b"{":
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise RealtimeFormatError(f"not valid JSON: {err}") from None
    else:
        doc = safe_unpickle(data)
    if not isinstance(doc, dict):
        raise RealtimeFormatError("a realtime event must be a JSON object / dict")
    return doc


def _frame_list(doc: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    value = doc.get("value", doc)
    data = value.get("data") if isinstance(value, dict) else None
    info: dict[str, Any] = {}
    if isinstance(data, dict):
        info = data
        data = data.get("frames")
    if not isinstance(data, list) or not data:
        raise RealtimeFormatError("no frames: expected value.data (list) or value.data.frames")
    return data, info


def decode_frames(doc: dict[str, Any]) -> list[tuple[str, dict[str, FrameObject]]]:
    frames_raw, _ = _frame_list(doc)
    out = []
    for i, item in enumerate(frames_raw):
        if not (isinstance(item, list | tuple) and len(item) == 2):
            raise RealtimeFormatError(f"frame {i}: expected [stream, payload]")
        payload = item[1]
        try:
            blob = base64.b64decode(payload) if isinstance(payload, str) else bytes(payload)
            inflater = zlib.decompressobj()
            raw_pickle = inflater.decompress(blob, MAX_INFLATED_BYTES)
            if inflater.unconsumed_tail:
                raise RealtimeFormatError(f"frame {i}: inflates beyond {MAX_INFLATED_BYTES} bytes")
        except (binascii.Error, zlib.error, TypeError, ValueError) as err:
            if isinstance(err, RealtimeFormatError):
                raise
            raise RealtimeFormatError(f"frame {i}: not base64(zlib(...)): {err}") from None
        obj = safe_unpickle(raw_pickle)
        state = obj.state if isinstance(obj, _I3FrameStub) else obj
        if isinstance(state, tuple):
            state = next((s for s in state if isinstance(s, bytes | bytearray)), None)
        if not isinstance(state, bytes | bytearray):
            raise RealtimeFormatError(f"frame {i}: no serialized I3Frame bytes in the pickle")
        out.append(parse_i3frame(bytes(state)))
    return out


@dataclass(frozen=True)
class PulseSelection:
    """The pulses a reconstruction should see and where they came from."""

    key: str
    pulses: list[RawPulse]
    chain: tuple[str, ...]  # the key, the mask sources it refines, ..., the stored map
    full_map: dict[str, float | int] | None  # DOMs, pulses, charge of the whole SuperDST map


def _rows(table: np.ndarray) -> list[RawPulse]:
    return [
        RawPulse(int(s), int(o), float(t), float(q), float(w), int(f)) for s, o, t, q, w, f in table.tolist()
    ]


def _resolve(
    key: str, objects: dict[str, FrameObject], superdst: dict[str, np.ndarray], depth: int = 0
) -> tuple[list[RawPulse], tuple[str, ...]]:
    """The pulses stored or selected under ``key`` and the chain of keys behind them."""
    if depth > MAX_MASK_DEPTH:
        raise RealtimeFormatError(f"{key}: masks nested deeper than {MAX_MASK_DEPTH} (a loop?)")
    obj = objects.get(key)
    if obj is None:
        raise RealtimeFormatError(f"the pulse mask source {key!r} is not in the Q/P frames")
    if obj.type_name in PULSE_MAP_TYPES:
        return decode_pulse_map(obj.buffer), (key,)
    if obj.type_name == SUPERDST_TYPE:
        if key not in superdst:
            try:
                superdst[key] = decode_superdst(obj.buffer)
            except SuperDSTFormatError as err:
                raise RealtimeFormatError(f"{key}: {err}") from None
        return _rows(superdst[key]), (key,)
    if obj.type_name == MASK_TYPE:
        mask = decode_pulse_mask(obj.buffer)
        source, chain = _resolve(mask.source, objects, superdst, depth + 1)
        return apply_mask(source, mask, key), (key, *chain)
    raise RealtimeFormatError(f"{key} is a {obj.type_name}, not a pulse series")


def select_pulses(objects: dict[str, FrameObject], pulse_keys: tuple[str, ...]) -> PulseSelection:
    """Pick and decode the event's pulse series (see the module docstring for the order)."""
    sources = {k: o for k, o in objects.items() if o.type_name in PULSE_SOURCE_TYPES}
    key = next((k for k in pulse_keys if k in sources), None)
    key = key or next((k for k, o in sources.items() if o.type_name in PULSE_MAP_TYPES), None)
    if key is None:
        masks = {k: decode_pulse_mask(o.buffer) for k, o in sources.items() if o.type_name == MASK_TYPE}
        refined = {m.source for m in masks.values()}
        key = next((k for k in masks if k not in refined), None)
    key = key or next((k for k, o in sources.items() if o.type_name == SUPERDST_TYPE), None)
    if key is None:
        raise RealtimeFormatError("no pulse series (map, mask or I3SuperDST) in the Q/P frames")
    superdst: dict[str, np.ndarray] = {}
    pulses, chain = _resolve(key, objects, superdst)
    if sources[key].type_name == SUPERDST_TYPE:  # the whole map: IceTop is not in the in-ice geometry
        pulses = [p for p in pulses if p.om < ICETOP_MIN_OM]
    full = summarize(superdst[chain[-1]]) if chain[-1] in superdst else None
    return PulseSelection(key, pulses, chain, full)


# JSON ``reco`` entries by their names in IceCube's alert messages
JSON_FIT_NAMES = {"splinempe": "SplineMPE", "spefit2": "SPEFit2", "mpefit": "MPEFit"}
SAME_DIRECTION_RAD = 1e-4  # the JSON block rounds angles to 1e-5 rad


def reference_fits(physics: dict[str, FrameObject], info: dict[str, Any]) -> dict[str, dict[str, float]]:
    """IceCube's own fits: every I3Particle of the P frame under its key, then each direction of the
    JSON ``reco`` block (SplineMPE, SPEFit2, the online best fit) that no frame fit already gives.
    A frame fit the JSON names (``OnlineL2_BestFit`` is ``OnlineL2_MPEFit``) takes that name;
    numeric extras (llh, rllh, ndof, Cramer-Rao errors) are kept, and a frame fit's own
    ``<key>FitParams`` adds its -lnL at the minimum (``logl``, ``rlogl``, ``ndof``, ``nmini``)."""
    fits: dict[str, dict[str, float]] = {}
    for key, obj in physics.items():
        if obj.type_name != "I3Particle":
            continue
        particle = decode_particle(obj.buffer)
        if math.isfinite(particle["zenith"]) and math.isfinite(particle["azimuth"]):
            fits[key] = {k: v for k, v in particle.items() if math.isfinite(v)}
            params = physics.get(key + "FitParams")
            if params is not None and params.type_name == FIT_PARAMS_TYPE:
                fits[key].update(
                    {k: v for k, v in decode_fit_params(params.buffer).items() if math.isfinite(v)}
                )
    reco = info.get("reco")
    for label, fit in reco.items() if isinstance(reco, dict) else ():
        if not isinstance(fit, dict):
            continue
        zen, azi = fit.get("zen"), fit.get("azi")
        if not (isinstance(zen, float | int) and isinstance(azi, float | int)):
            continue
        entry = {"zenith": float(zen), "azimuth": float(azi)}
        entry.update(
            {
                k: float(v)
                for k, v in fit.items()
                if k not in ("zen", "azi") and isinstance(v, float | int) and not isinstance(v, bool)
            }
        )
        twin = next(
            (
                k
                for k, f in fits.items()
                if abs(f["zenith"] - entry["zenith"]) < SAME_DIRECTION_RAD
                and abs(f["azimuth"] - entry["azimuth"]) < SAME_DIRECTION_RAD
            ),
            None,
        )
        name = fit.get("name") if isinstance(fit.get("name"), str) and fit["name"] else None
        if twin is not None:  # the frame's full precision wins; the JSON may say what the fit is
            merged = {**entry, **fits.pop(twin)}
            fits[name if name and name not in fits else twin] = merged
            continue
        fits.setdefault(name or JSON_FIT_NAMES.get(label.lower(), label), entry)
    return fits


def read_realtime_event(
    source: str | Path | bytes | dict[str, Any],
    geometry: Geometry,
    pulse_keys: tuple[str, ...] = DEFAULT_PULSE_KEYS,
    event_type: str = "realtime",
) -> Event:
    """Convert a realtime event to :class:`Event` (plain pulse maps, masks and SuperDST)."""
    doc = load_realtime_document(source)
    frames = decode_frames(doc)
    _, info = _frame_list(doc)
    merged: dict[str, FrameObject] = {}
    physics_keys: dict[str, FrameObject] = {}
    for stream, objects in frames:
        if stream in ("Q", "P"):
            merged.update(objects)
        if stream == "P":
            physics_keys.update(objects)

    selection = select_pulses(merged, pulse_keys)
    raw_pulses = selection.pulses
    if not raw_pulses:
        raise RealtimeFormatError(f"{selection.key} holds no pulses")

    header_obj = merged.get("I3EventHeader") or merged.get("QI3EventHeader")
    if header_obj is None:
        raise RealtimeFormatError("no I3EventHeader in the Q/P frames")
    header = decode_event_header(header_obj.buffer)

    pulses = []
    missing: set[tuple[int, int]] = set()
    dropped_zero_charge = 0
    for p in raw_pulses:
        try:
            x, y, z = geometry.position(p.string, p.om)
        except KeyError:
            missing.add((p.string, p.om))
            continue
        if not (p.charge > 0 and math.isfinite(p.charge) and math.isfinite(p.time)):
            dropped_zero_charge += 1
            continue
        pulses.append(
            {
                "x": x,
                "y": y,
                "z": z,
                "time": p.time,
                "charge": float(f"{p.charge:.6g}"),
                "string": p.string,
                "om": p.om,
                "hlc": bool(p.flags & 1),
            }
        )
    if missing:
        raise RealtimeFormatError(
            f"{len(missing)} DOMs are not in the geometry {geometry.name} (e.g. {sorted(missing)[:3]})"
        )

    metadata: dict[str, str | int | float | bool | None] = {
        "source": "i3live realtime",
        "pulse_series": selection.key,
        "pulse_chain": " <- ".join(selection.chain),
        "sub_run_id": header.sub_run_id,
        "sub_event_stream": header.sub_event_stream,
        "n_pulses_raw": len(raw_pulses),
        "n_doms": len({(p.string, p.om) for p in raw_pulses}),
        "charge_pe": round(math.fsum(p.charge for p in raw_pulses), 4),
    }
    if selection.full_map is not None:
        metadata.update(
            {
                "superdst_doms": selection.full_map["doms"],
                "superdst_pulses": selection.full_map["pulses"],
                "superdst_charge_pe": round(selection.full_map["charge"], 4),
            }
        )
    if dropped_zero_charge:
        metadata["n_pulses_dropped_nonpositive_charge"] = dropped_zero_charge
    event_doc = {
        "schema": EVENT_SCHEMA,
        "run_id": header.run_id,
        "event_id": header.event_id,
        "mjd": header.mjd,
        "event_type": event_type,
        "is_real_event": True,
        "pulses": pulses,
        "reference_fits": reference_fits(physics_keys, info),
        "metadata": metadata,
    }
    try:
        return parse_event(event_doc)
    except EventFormatError as err:
        raise RealtimeFormatError(f"converted event is invalid: {err}") from None
