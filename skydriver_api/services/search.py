"""Scan search: filters, sort orders and a stable keyset cursor (pages do not shift as scans arrive)."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

from skydriver_api.services.errors import Invalid
from skyinfra.store import Database
from skyscan.records.scan import SCAN_STATES

SORTS: dict[str, list[tuple[str, int]]] = {
    "-created_at": [("created_at", -1), ("_id", -1)],
    "created_at": [("created_at", 1), ("_id", 1)],
    "-priority": [("priority", -1), ("created_at", -1), ("_id", -1)],
    "priority": [("priority", 1), ("created_at", 1), ("_id", 1)],
}


@dataclass(frozen=True)
class ScanFilters:
    state: str | None = None
    run_id: int | None = None
    event_id: int | None = None
    reco: str | None = None
    owner: str | None = None
    catalog_id: str | None = None
    classifiers: tuple[str, ...] = ()
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None


# What each sort field of a cursor may hold; anything else is not a cursor this API wrote.
_CURSOR_VALUE = {
    "created_at": lambda v: isinstance(v, str) and dt.datetime.fromisoformat(v).tzinfo is not None,
    "_id": lambda v: isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9_.:-]{1,128}", v) is not None,
    "priority": lambda v: type(v) is int and -(2**31) <= v < 2**31,
}


def encode_cursor(doc: dict[str, Any], sort: str, key: bytes) -> str:
    """An opaque cursor: the sort values of the last document, signed with the server's key."""
    values = [doc[f].isoformat() if isinstance(doc[f], dt.datetime) else doc[f] for f, _ in SORTS[sort]]
    payload = base64.urlsafe_b64encode(json.dumps([sort, values]).encode()).decode()
    return f"{payload}.{_signature(payload, key)}"


def decode_cursor(cursor: str, sort: str, key: bytes) -> list[Any]:
    """The sort values of a cursor this API signed for this sort, checked field by field: nothing
    a client wrote (such as a '$gt' operator) reaches the database query."""
    try:
        payload, _, signature = cursor.partition(".")
        if not hmac.compare_digest(signature, _signature(payload, key)):
            raise ValueError("bad signature")
        cursor_sort, values = json.loads(base64.urlsafe_b64decode(payload.encode()))
        fields = SORTS[sort]
        if cursor_sort != sort or not isinstance(values, list) or len(values) != len(fields):
            raise ValueError("another sort")
        if not all(_CURSOR_VALUE[f](v) for (f, _), v in zip(fields, values, strict=True)):
            raise ValueError("a value of the wrong kind")
        return [
            dt.datetime.fromisoformat(v) if f == "created_at" else v
            for (f, _), v in zip(fields, values, strict=True)
        ]
    except Exception:
        raise Invalid("cursor: not a cursor this API returned for this sort") from None


def _signature(payload: str, key: bytes) -> str:
    digest = hmac.new(key, payload.encode(), hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(digest).decode()


def _after(fields: list[tuple[str, int]], values: list[Any]) -> dict[str, Any]:
    """The documents strictly after ``values`` in the order ``fields`` (keyset pagination)."""
    clauses = []
    for i, (field, direction) in enumerate(fields):
        clause = {f: v for (f, _), v in zip(fields[:i], values[:i], strict=True)}
        clause[field] = {"$lt" if direction < 0 else "$gt": values[i]}
        clauses.append(clause)
    return {"$or": clauses}


def _classifier_filter(spec: str) -> dict[str, Any]:
    key, sep, raw = spec.partition(":")
    if not sep or not key or not key.replace("_", "").replace("-", "").isalnum():
        raise Invalid(f"classifier: expected key:value (e.g. classifier=campaign:ic23), got {spec!r}")
    values: list[Any] = [raw]
    for convert in (int, float):
        with contextlib.suppress(ValueError):
            values.append(convert(raw))
    if raw.lower() in ("true", "false"):
        values.append(raw.lower() == "true")
    return {f"classifiers.{key}": {"$in": values}}


def build_query(filters: ScanFilters, sort: str, cursor: str | None, cursor_key: bytes) -> dict[str, Any]:
    if sort not in SORTS:
        raise Invalid(f"sort: must be one of {', '.join(SORTS)}")
    conditions: list[dict[str, Any]] = []
    if filters.state is not None:
        states = filters.state.split(",")
        if any(s not in SCAN_STATES for s in states):
            raise Invalid(f"state: must be one of {', '.join(SCAN_STATES)} (comma-separated)")
        conditions.append({"state": {"$in": states}})
    for key in ("run_id", "event_id", "reco", "owner", "catalog_id"):
        value = getattr(filters, key)
        if value is not None:
            conditions.append({key: value})
    for spec in filters.classifiers:
        conditions.append(_classifier_filter(spec))
    for bound, op in ((filters.created_after, "$gte"), (filters.created_before, "$lt")):
        if bound is not None:
            if bound.tzinfo is None:
                bound = bound.replace(tzinfo=dt.UTC)
            bound = bound.replace(microsecond=bound.microsecond // 1000 * 1000)  # BSON dates are ms
            if op == "$gte":
                # '>= t' as '> t - 1 ms' (the same set at millisecond resolution): the MongoDB-wire server
                # we test on mishandles inclusive bounds on a compound index's inner field.
                op, bound = "$gt", bound - dt.timedelta(milliseconds=1)
            conditions.append({"created_at": {op: bound}})
    if cursor:
        conditions.append(_after(SORTS[sort], decode_cursor(cursor, sort, cursor_key)))
    return {"$and": conditions} if conditions else {}


async def search(
    db: Database, filters: ScanFilters, sort: str, limit: int, cursor: str | None, key: bytes
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of scans and the cursor of the next page (None on the last)."""
    query = build_query(filters, sort, cursor, key)
    docs = await db.scans.search(query, SORTS[sort], limit + 1)
    more = len(docs) > limit
    docs = docs[:limit]
    return docs, encode_cursor(docs[-1], sort, key) if more else None
