"""``alertsim check``: compare a provenance file with what the service stored and published.

Every valid alert revision sent (new, update, or only its duplicates) must have exactly one scan and,
when a notice topic is known, exactly one notice content under its key (identical repeats are what
at-least-once allows, and are counted); every corrupt message exactly one recorded rejection at its
topic, partition and offset whose reason names what is wrong (over REST: a 4xx answer); and nothing
else: no scan for an identity the stream did not send validly, no valid message rejected.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skydriver_api.alertsim.send import PROVENANCE_SCHEMA
from skydriver_api.alertsim.spec import AlertSimError
from skyinfra.kafka import KafkaConfigError, client_config, make_consumer, resolve_target
from skyinfra.settings import DatabaseSettings, KafkaSettings
from skyinfra.store import Database
from skyscan.records.scan import TERMINAL_STATES

Identity = tuple[int, int, int]


@dataclass
class CheckReport:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def text(self) -> str:
        verdict = "RESULT: OK" if self.ok else "RESULT: FAILED\n  " + "\n  ".join(self.problems[:50])
        return "\n".join([*self.lines, verdict])


@dataclass
class Stored:
    scans: dict[Identity, list[dict[str, Any]]]
    alerts_of_run: list[dict[str, Any]]
    rejections: dict[str, dict[str, Any]]


def _key(identity: Identity) -> str:
    return ":".join(map(str, identity))


async def _stored(expected: set[Identity], run_id: int, topic: str | None) -> Stored:
    settings = DatabaseSettings()
    db = Database(settings.mongodb_uri.get_secret_value(), settings.mongodb_database)
    try:
        scans = {i: await db.scans.for_alert(*i) for i in expected}
        rejections = {d["_id"]: d for d in await db.alert_rejections.on_topic(topic)} if topic else {}
        return Stored(scans, await db.alerts.for_run(run_id), rejections)
    finally:
        await db.close()


def _settled(stored: Stored, corrupt_keys: list[str], notices: bool) -> bool:
    for scans in stored.scans.values():
        if not scans or any(s["state"] not in TERMINAL_STATES for s in scans):
            return False
        if notices and any(
            s.get("notice_pending") is not False and "published" not in (s.get("notice") or {}) for s in scans
        ):
            return False
    rejected = {d.get("key") for d in stored.rejections.values()}
    return all(k in rejected for k in corrupt_keys)


def read_topic(topic_setting: str) -> list[tuple[str, bytes, dict[str, str]]]:
    """Every (key, value, headers) on the topic now, read from the start by assignment (no group)."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    settings = KafkaSettings()
    try:
        target = resolve_target(topic_setting, settings.kafka_bootstrap, "notice topic")
        config = client_config(settings, target)
    except KafkaConfigError as err:
        raise AlertSimError(str(err)) from None
    consumer = make_consumer(
        {**config, "group.id": f"alertsim-check-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False}
    )
    try:
        meta = consumer.list_topics(target.topic, timeout=10).topics.get(target.topic)
        if meta is None or meta.error is not None:
            return []
        ends = {}
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(target.topic, p), timeout=10)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(target.topic, p, OFFSET_BEGINNING) for p in ends])
        out: list[tuple[str, bytes, dict[str, str]]] = []
        reached: set[int] = set()
        deadline = time.monotonic() + 60
        while len(reached) < len(ends) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            headers = {k: v.decode("utf-8", "replace") for k, v in msg.headers() or []}
            out.append(((msg.key() or b"").decode("utf-8", "replace"), msg.value() or b"", headers))
            if msg.offset() + 1 >= ends[msg.partition()]:
                reached.add(msg.partition())
        return out
    finally:
        consumer.close()


def check_provenance(path: Path, wait_s: float = 0.0) -> CheckReport:
    try:
        prov = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise AlertSimError(f"{path}: {err}") from None
    if not isinstance(prov, dict) or prov.get("schema") != PROVENANCE_SCHEMA:
        raise AlertSimError(f"{path}: not an alertsim provenance file ({PROVENANCE_SCHEMA})")
    report = CheckReport()
    messages = prov["messages"]
    sent = [m for m in messages if not m.get("error")]
    expected = {tuple(m["identity"]) for m in sent if m["expect"] in ("scan", "duplicate")}
    corrupt = [m for m in sent if m["expect"] == "rejection"]
    kafka = prov["target"] == "kafka"
    corrupt_keys = [m["key"] for m in corrupt] if kafka else []
    notice_topic = prov.get("notice_topic") or ""

    deadline = time.monotonic() + wait_s
    while True:
        stored = asyncio.run(_stored(expected, prov["run_id"], prov["topic"] if kafka else None))
        if _settled(stored, corrupt_keys, bool(notice_topic)) or time.monotonic() >= deadline:
            break
        time.sleep(1.0)

    kinds = defaultdict(int)
    for m in sent:
        kinds[m["kind"]] += 1
    report.lines.append(f"alertsim check of {path} (seed {prov['seed']}, target {prov['target']})")
    report.lines.append(
        f"messages: {len(sent)} sent ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}), "
        f"{len(messages) - len(sent)} not sent; disruptions: "
        + (", ".join(f"{d['kind']} at {d['at_s']:g} s" for d in prov.get("disruptions", [])) or "none")
    )
    _check_scans(report, expected, stored)
    if kafka:
        _check_rejections(report, sent, corrupt, stored)
    else:
        _check_rest_answers(report, sent)
    if notice_topic:
        _check_notices(report, expected, stored, read_topic(notice_topic), prov["run_id"])
    else:
        report.lines.append(
            "notices: not checked (no notice topic in the provenance or SKYDRIVER_KAFKA_NOTICE_TOPIC)"
        )
    return report


def _check_scans(report: CheckReport, expected: set[Identity], stored: Stored) -> None:
    lost = sorted(i for i in expected if not stored.scans[i])
    doubled = sorted(i for i in expected if len(stored.scans[i]) > 1)
    unexpected = sorted(
        (a["run_id"], a["event_id"], a["revision"])
        for a in stored.alerts_of_run
        if (a["run_id"], a["event_id"], a["revision"]) not in expected
    )
    states: dict[str, int] = defaultdict(int)
    for scans in stored.scans.values():
        for s in scans:
            states[s["state"]] += 1
    report.counts.update(
        expected=len(expected), lost=len(lost), doubled=len(doubled), unexpected=len(unexpected)
    )
    report.lines.append(
        f"alert revisions: {len(expected)} expected; scans: {len(lost)} lost, {len(doubled)} doubled, "
        f"{len(unexpected)} unexpected; states: {', '.join(f'{k} {v}' for k, v in sorted(states.items()))}"
    )
    report.problems += [f"lost: no scan for {_key(i)}" for i in lost]
    report.problems += [f"doubled: {len(stored.scans[i])} scans for {_key(i)}" for i in doubled]
    report.problems += [f"unexpected: a scan for {_key(i)}, never sent as a valid alert" for i in unexpected]


def _check_rejections(report: CheckReport, sent: list[dict], corrupt: list[dict], stored: Stored) -> None:
    """Rejections are matched by message key (unique per message): a message the producer sent again
    after a dropped connection is acknowledged without its offset."""
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for doc in stored.rejections.values():
        by_key[doc.get("key", "")].append(doc)
    rejected = wrong_reason = dead_lettered = 0
    for m in corrupt:
        docs = by_key.get(m["key"], [])
        what = f"message {m['seq']} ({m['corrupt_kind']}, key {m['key']})"
        if not docs:
            report.problems.append(f"not rejected: {what}")
            continue
        if len(docs) > 1:
            report.problems.append(f"rejected {len(docs)} times: {what}")
        rejected += 1
        dead_lettered += docs[0].get("dead_letter") is not None
        if m["expect_reason"].lower() not in docs[0]["reason"].lower():
            wrong_reason += 1
            report.problems.append(
                f"wrong reason for {what}: {docs[0]['reason']!r}, expected {m['expect_reason']!r}"
            )
    valid_keys = {m["key"] for m in sent if m["expect"] != "rejection"}
    valid_rejected = [d for k in sorted(valid_keys) for d in by_key.get(k, [])]
    report.problems += [f"a valid message was rejected: {d['_id']}: {d['reason']}" for d in valid_rejected]
    report.counts.update(corrupt=len(corrupt), rejected=rejected, wrong_reason=wrong_reason)
    report.lines.append(
        f"corrupt: {len(corrupt)} sent, {rejected} rejected "
        f"({rejected - wrong_reason} with the expected reason), "
        f"{len(corrupt) - rejected} not rejected, {dead_lettered} dead-lettered; "
        f"valid messages rejected: {len(valid_rejected)}"
    )


def _check_rest_answers(report: CheckReport, sent: list[dict]) -> None:
    first_scan: dict[tuple, str] = {}
    refused = 0
    for m in sent:
        status = m.get("status") or 0
        if m["expect"] == "rejection":
            if 400 <= status < 500:
                refused += 1
            else:
                report.problems.append(f"corrupt message {m['seq']} ({m['corrupt_kind']}) answered {status}")
            continue
        if status not in (200, 201):
            report.problems.append(f"valid message {m['seq']} answered {status}: {m.get('detail')}")
            continue
        scan = first_scan.setdefault(tuple(m["identity"]), m["scan_id"])
        if scan != m["scan_id"]:
            report.problems.append(f"message {m['seq']} got scan {m['scan_id']}, an earlier copy {scan}")
    n_corrupt = sum(1 for m in sent if m["expect"] == "rejection")
    report.counts.update(corrupt=n_corrupt, rejected=refused)
    report.lines.append(f"corrupt: {n_corrupt} sent, {refused} refused with a 4xx and its reason")


def _check_notices(
    report: CheckReport,
    expected: set[Identity],
    stored: Stored,
    notices: list[tuple[str, bytes, dict[str, str]]],
    run_id: int,
) -> None:
    by_key: dict[str, list[bytes]] = defaultdict(list)
    for key, value, _ in notices:
        by_key[key].append(value)
    missing = different = repeats = 0
    states: dict[str, int] = defaultdict(int)
    for identity in sorted(expected):
        values = by_key.get(_key(identity), [])
        if not values:
            missing += 1
            report.problems.append(f"no notice for {_key(identity)}")
            continue
        distinct = set(values)
        repeats += len(values) - len(distinct)
        if len(distinct) > 1:
            different += 1
            report.problems.append(f"{len(distinct)} different notices for {_key(identity)}")
        states[json.loads(values[0]).get("state", "?")] += 1
        recorded = [s for s in stored.scans[identity] if "published" in (s.get("notice") or {})]
        if not recorded:
            report.problems.append(
                f"the notice of {_key(identity)} is on the topic but not recorded on its scan"
            )
    ours = {k for k in by_key if k.startswith(f"{run_id}:")}
    unexpected = sorted(ours - {_key(i) for i in expected})
    report.problems += [f"a notice for {k}, never sent as a valid alert" for k in unexpected]
    report.counts.update(notices_missing=missing, notices_different=different, notice_repeats=repeats)
    report.lines.append(
        f"notices: {len(expected) - missing} of {len(expected)} published, {missing} missing, "
        f"{different} with different contents, {repeats} identical repeats (at least once), "
        f"{len(unexpected)} unexpected; states: " + ", ".join(f"{k} {v}" for k, v in sorted(states.items()))
    )
