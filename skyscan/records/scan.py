"""The scan record: its states, the transitions allowed between them, and its stored form.

``queued -> launching -> running -> completed | failed | aborted``; a failed launch goes back to
``queued`` (with a backoff), a scan can be aborted or failed from any state that is not terminal,
and nothing leaves a terminal state. :func:`check_transition` is the one judge of a move; the scan
repository (``skyinfra.store.scans``) is the one writer of ``state`` and ``history``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from skyscan.records.spec import ScanSpec

ScanState = Literal["queued", "launching", "running", "completed", "failed", "aborted"]

TERMINAL_STATES: tuple[ScanState, ...] = ("completed", "failed", "aborted")
ACTIVE_STATES: tuple[ScanState, ...] = ("launching", "running")
LIVE_STATES: tuple[ScanState, ...] = ("queued", *ACTIVE_STATES)
SCAN_STATES: tuple[ScanState, ...] = (*LIVE_STATES, *TERMINAL_STATES)

# state -> states it may move to
TRANSITIONS: dict[ScanState, frozenset[ScanState]] = {
    "queued": frozenset({"launching", "running", "failed", "aborted"}),
    "launching": frozenset({"running", "queued", "failed", "aborted"}),
    "running": frozenset({"completed", "failed", "aborted"}),
    "completed": frozenset(),
    "failed": frozenset(),
    "aborted": frozenset(),
}


class IllegalTransition(ValueError):
    pass


def check_transition(from_state: str, to_state: str) -> None:
    """Raise IllegalTransition unless a scan may move from ``from_state`` to ``to_state``."""
    if from_state not in TRANSITIONS or to_state not in TRANSITIONS:
        raise IllegalTransition(f"unknown scan state in {from_state!r} -> {to_state!r}")
    if to_state not in TRANSITIONS[from_state]:  # type: ignore[index]
        allowed = ", ".join(sorted(TRANSITIONS[from_state])) or "nothing (terminal)"  # type: ignore[index]
        raise IllegalTransition(f"a {from_state} scan cannot become {to_state}; it may become: {allowed}")


def sources_of(to_state: str, among: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The states a scan may reach ``to_state`` from (optionally only those in ``among``).

    A state named in ``among`` that cannot reach ``to_state`` is a programming error.
    """
    if among is not None:
        for state in among:
            check_transition(state, to_state)
        return among
    return tuple(s for s in SCAN_STATES if to_state in TRANSITIONS[s])


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_scan_id() -> str:
    return uuid.uuid4().hex


class HistoryEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    state: ScanState
    at: dt.datetime
    reason: str | None = None


class WorkerShare(BaseModel):
    """Workers of a scan on one configured cluster."""

    model_config = ConfigDict(frozen=True)

    name: str = "default"
    workers: int = Field(ge=1)


class ScanRecord(BaseModel):
    """The scan document's own fields, typed. Operational sections the reconciler and the server keep
    (launch, progress, counters, webhook, workforce, ...) ride along as extra fields."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str = Field(alias="_id")
    state: ScanState
    state_reason: str | None = None
    owner: str
    priority: int = 0
    created_at: dt.datetime
    updated_at: dt.datetime
    history: list[HistoryEntry] = Field(default_factory=list)
    run_id: int
    event_id: int
    spec: ScanSpec
    n_variations: int = 1
    clusters: list[WorkerShare] = Field(default_factory=list)
    workers: int = 0
    profile: str = "default"  # the operator's worker profile the scan named
    resources: dict[str, Any] = Field(default_factory=dict)  # that profile's resources, at submission
    classifiers: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def new(
        cls,
        spec: ScanSpec,
        run_id: int,
        event_id: int,
        owner: str,
        priority: int,
        clusters: list[WorkerShare],
        resources: dict[str, Any],
        classifiers: dict[str, Any],
        scan_id: str | None = None,
        profile: str = "default",
        **extra: Any,
    ) -> ScanRecord:
        """A queued scan, its history starting with ``queued``."""
        now = utcnow()
        return cls(
            _id=scan_id or new_scan_id(),
            state="queued",
            owner=owner,
            priority=priority,
            created_at=now,
            updated_at=now,
            history=[HistoryEntry(state="queued", at=now)],
            run_id=run_id,
            event_id=event_id,
            spec=spec,
            n_variations=spec.n_variations(),
            clusters=clusters,
            workers=sum(c.workers for c in clusters),
            profile=profile,
            resources=resources,
            classifiers=classifiers,
            **{
                "progress": {"nsides": {}, "tasks_sent": 0, "tasks_done": 0},
                "token_hashes": [],
                "launch": {"attempts": 0, "handles": {}, "last_error": None, "next_attempt_at": now},
                "server_restarts": 0,
                "counters": {},
                **extra,
            },
        )

    def to_doc(self) -> dict[str, Any]:
        """The stored document: the spec's fields flattened onto it, as the wire and the API read them."""
        doc = self.model_dump(by_alias=True, exclude={"spec", "history", "clusters"})
        doc.update({k: v for k, v in self.spec.model_dump().items()})
        doc["history"] = [h.model_dump() for h in self.history]
        doc["clusters"] = [c.model_dump() for c in self.clusters]
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ScanRecord:
        spec_fields = set(ScanSpec.model_fields)
        rest = {k: v for k, v in doc.items() if k not in spec_fields}
        return cls.model_validate({**rest, "spec": ScanSpec.from_doc(doc)})

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES
