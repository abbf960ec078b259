"""Writing i3live realtime documents for tests: serialized I3Frames (version 6), wrapped as the
realtime format does (a protocol-2 pickle of icecube.icetray.I3Frame, zlib, base64)."""

from __future__ import annotations

import base64
import copy
import struct
import zlib
from typing import Any

from skyscan.readers.realtime import _frame_list, decode_frames


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


def with_object(document: dict[str, Any], key: str, buffer: bytes) -> dict[str, Any]:
    """A copy of a realtime document whose frame object ``key`` holds ``buffer`` instead."""
    out = copy.deepcopy(document)
    frames, _ = _frame_list(out)
    found = False
    for item, (stream, objects) in zip(frames, decode_frames(document), strict=True):
        if key in objects:
            found = True
            parts = {k: (o.type_name, buffer if k == key else o.buffer) for k, o in objects.items()}
            item[1] = pickled_frame(frame_bytes(stream, parts))
    assert found, f"no {key} in the document"
    return out
