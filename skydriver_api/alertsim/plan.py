"""A stream description turned into the exact messages to send, deterministically for a seed."""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass
from typing import Any

from skydriver_api.alertsim.spec import StreamSpec
from skydriver_api.services.alerts import alert_key

# What the listener says about each corrupt kind (its Malformed texts and the event validation).
EXPECTED_REASONS = {
    "truncated": "not JSON",
    "wrong_schema": "schema",
    "flipped_bytes": "not UTF-8",
    "oversize": "exceeds the limit",
}


@dataclass(frozen=True)
class PlannedMessage:
    seq: int
    at_s: float
    kind: str  # new | update | duplicate | corrupt
    value: bytes
    key: bytes
    identity: tuple[int, int, int] | None  # (run_id, event_id, revision) the message carries
    expect: str  # scan | duplicate | rejection
    duplicate_of: int | None = None
    corrupt_kind: str | None = None

    def record(self) -> dict[str, Any]:
        """The message as the provenance file keeps it (its digest, not its bytes)."""
        return {
            "seq": self.seq,
            "at_s": round(self.at_s, 3),
            "kind": self.kind,
            "identity": list(self.identity) if self.identity else None,
            "expect": self.expect,
            "expect_reason": EXPECTED_REASONS.get(self.corrupt_kind or ""),
            "duplicate_of": self.duplicate_of,
            "corrupt_kind": self.corrupt_kind,
            "key": self.key.decode(),
            "size": len(self.value),
            "sha256": hashlib.sha256(self.value).hexdigest(),
        }


def send_times(spec: StreamSpec) -> list[float]:
    steady = [k / spec.rate_per_s for k in range(int(spec.rate_per_s * spec.duration_s))]
    bursts = [b.at_s + j / b.messages for b in spec.bursts for j in range(b.messages)]
    return sorted(steady + bursts)


def kinds_in_order(spec: StreamSpec, n: int, rng: random.Random) -> list[str]:
    """Exact shares, shuffled, then reordered so that every duplicate repeats an earlier valid
    message and every update follows its initial revision."""
    n_corrupt = round(spec.corrupt * n)
    n_duplicate = round(spec.duplicates * n)
    valid = n - n_corrupt - n_duplicate
    n_new = math.ceil(valid / (1 + spec.revisions))
    kinds = ["corrupt"] * n_corrupt + ["duplicate"] * n_duplicate + ["update"] * (valid - n_new)
    kinds += ["new"] * n_new
    rng.shuffle(kinds)
    sent_valid = awaiting_update = 0
    for i, kind in enumerate(kinds):
        if (kind == "duplicate" and not sent_valid) or (kind == "update" and not awaiting_update):
            j = kinds.index("new", i + 1)
            kinds[i], kinds[j] = "new", kind
            kind = "new"
        if kind == "new":
            sent_valid += 1
            awaiting_update += 1
        elif kind == "update":
            sent_valid += 1
            awaiting_update -= 1
    return kinds


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()  # ASCII: any byte flipped breaks UTF-8


def _track(spec: StreamSpec, rng: random.Random, run_id: int, event_id: int) -> dict[str, Any]:
    from skyscan.physics.simulate import simulate_track

    lo, hi = spec.energy_gev
    event = simulate_track(
        zenith=math.acos(rng.uniform(-1, 1)),
        azimuth=rng.uniform(0, 2 * math.pi),
        energy_gev=math.exp(rng.uniform(math.log(lo), math.log(hi))),
        seed=rng.randrange(2**31),
        run_id=run_id,
        event_id=event_id,
    )
    return event.to_json_dict()


def _body(event: dict[str, Any], revision: int, stream: str) -> dict[str, Any]:
    alert = {
        "run_id": event["run_id"],
        "event_id": event["event_id"],
        "revision": revision,
        "stream": stream,
        "alert_type": "initial" if revision == 0 else "update",
    }
    return {"event": event, "alert": alert}


def _corrupt(kind: str, good: bytes, body: dict[str, Any], spec: StreamSpec, rng: random.Random) -> bytes:
    if kind == "truncated":
        return good[: len(good) // 2]
    if kind == "wrong_schema":
        return _encode({**body, "event": {**body["event"], "schema": "skydriver.event/99"}})
    if kind == "flipped_bytes":
        flipped = bytearray(good)
        for pos in rng.sample(range(0, len(good), 3), 8):  # apart: each is followed by plain ASCII
            flipped[pos] ^= 0x80
        return bytes(flipped)
    if kind == "oversize":  # a valid alert, padded with JSON whitespace past the size limit
        return good + b" " * max(0, spec.oversize_bytes - len(good))
    raise ValueError(kind)


def stream_run_id(spec: StreamSpec) -> int:
    """The run id every event of the stream carries (from the seed: a seed's alerts are the same)."""
    return 100000 + random.Random(spec.seed).randrange(800000)


def plan(spec: StreamSpec) -> list[PlannedMessage]:
    rng = random.Random(spec.seed)
    run_id = 100000 + rng.randrange(800000)  # stream_run_id: the first draw of the same generator
    times = send_times(spec)
    kinds = kinds_in_order(spec, len(times), rng)
    corrupt_kinds = [spec.corrupt_kinds[i % len(spec.corrupt_kinds)] for i in range(kinds.count("corrupt"))]
    rng.shuffle(corrupt_kinds)
    out: list[PlannedMessage] = []
    events: list[dict[str, Any]] = []  # initial revisions sent, in order
    updated: set[int] = set()
    valid: list[PlannedMessage] = []
    for seq, (at_s, kind) in enumerate(zip(times, kinds, strict=True)):
        if kind == "new":
            event = _track(spec, rng, run_id, len(events) + 1)
            events.append(event)
            msg = _valid(seq, at_s, kind, _body(event, 0, spec.stream))
        elif kind == "update":
            index = rng.choice([i for i in range(len(events)) if i not in updated])
            updated.add(index)
            msg = _valid(seq, at_s, kind, _body(events[index], 1, spec.stream))
        elif kind == "duplicate":
            first = rng.choice(valid)
            msg = PlannedMessage(
                seq, at_s, kind, first.value, first.key, first.identity, "duplicate", duplicate_of=first.seq
            )
        else:  # corrupt: a fresh identity, so one wrongly accepted shows up as an unexpected scan
            ckind = corrupt_kinds.pop()
            body = _body(_track(spec, rng, run_id, 900000 + seq), 0, spec.stream)
            value = _corrupt(ckind, _encode(body), body, spec, rng)
            msg = PlannedMessage(
                seq, at_s, kind, value, f"corrupt-{seq}".encode(), None, "rejection", None, ckind
            )
        if msg.expect != "rejection" and kind != "duplicate":
            valid.append(msg)
        out.append(msg)
    return out


def _valid(seq: int, at_s: float, kind: str, body: dict[str, Any]) -> PlannedMessage:
    alert = body["alert"]
    identity = (alert["run_id"], alert["event_id"], alert["revision"])
    return PlannedMessage(seq, at_s, kind, _encode(body), alert_key(alert).encode(), identity, "scan")
