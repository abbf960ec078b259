"""Scans: the scan records. The one place that writes a scan's ``state`` and ``history``.

Every state change goes through :meth:`ScanRepository.transition`, which checks it against the
record's state machine (``skyscan.records.scan``) and applies it atomically (only from the states
it may come from). The other writers here are named for what they record (launch bookkeeping,
progress, worker requests, webhooks, notices) and refuse to touch ``state`` or ``history``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from skyscan.records.scan import ACTIVE_STATES, TERMINAL_STATES, ScanState, sources_of, utcnow

_OWNED_BY_TRANSITION = ("state", "state_reason", "history")
# launch.next_attempt_at of scans written but not released yet (a catalog being stored): never due
HELD = dt.datetime(9999, 1, 1, tzinfo=dt.UTC)


class ScanRepository:
    def __init__(self, collection: AsyncCollection) -> None:
        self._c = collection

    async def ensure_indexes(self) -> None:
        await self._c.create_index(
            [("state", ASCENDING), ("priority", DESCENDING), ("created_at", ASCENDING)]
        )
        await self._c.create_index([("created_at", DESCENDING), ("_id", DESCENDING)])
        await self._c.create_index([("owner", ASCENDING), ("created_at", DESCENDING)])
        await self._c.create_index([("run_id", ASCENDING), ("event_id", ASCENDING)])
        await self._c.create_index([("catalog_id", ASCENDING)])

    # -- records ---------------------------------------------------------------------------------
    async def insert(self, doc: dict[str, Any]) -> None:
        await self._c.insert_one(doc)

    async def insert_many(self, docs: list[dict[str, Any]]) -> None:
        if docs:
            await self._c.insert_many(docs, ordered=False)

    async def release(self, scan_ids: list[str]) -> None:
        """Held scans become due for launch now."""
        if scan_ids:
            await self._c.update_many(
                {"_id": {"$in": scan_ids}, "launch.next_attempt_at": HELD},
                {"$set": {"launch.next_attempt_at": utcnow()}},
            )

    async def delete_many(self, scan_ids: list[str]) -> None:
        if scan_ids:
            await self._c.delete_many({"_id": {"$in": scan_ids}})

    async def get(self, scan_id: str, fields: dict[str, int] | None = None) -> dict[str, Any] | None:
        return await self._c.find_one({"_id": scan_id}, fields)

    async def by_token_hash(self, digest: str) -> dict[str, Any] | None:
        return await self._c.find_one({"token_hashes": digest}, {"_id": 1, "state": 1})

    # -- the state machine -----------------------------------------------------------------------
    async def transition(
        self,
        scan_id: str,
        to_state: ScanState,
        *,
        from_states: tuple[ScanState, ...] | None = None,
        reason: str | None = None,
        set_fields: dict[str, Any] | None = None,
        inc: dict[str, int] | None = None,
    ) -> dict[str, Any] | None:
        """Atomically move a scan to ``to_state`` and append the move to its history.

        ``from_states`` narrows the states it may come from (each must be a legal source: an
        illegal transition raises IllegalTransition). Returns the updated document, or None when
        the scan was not in one of those states (someone else moved it first).
        """
        sources = sources_of(to_state, from_states)
        now = utcnow()
        fields = _checked(set_fields)
        update: dict[str, Any] = {
            "$set": {"state": to_state, "updated_at": now, **fields},
            "$push": {"history": {"state": to_state, "at": now, "reason": reason}},
        }
        if reason is not None:
            update["$set"]["state_reason"] = reason
        if inc:
            update["$inc"] = _checked(inc)
        return await self._c.find_one_and_update(
            {"_id": scan_id, "state": {"$in": list(sources)}},
            update,
            return_document=ReturnDocument.AFTER,
        )

    async def note(
        self,
        scan_id: str,
        reason: str,
        *,
        set_fields: dict[str, Any] | None = None,
        inc: dict[str, int] | None = None,
    ) -> bool:
        """Append a history entry in the scan's current state (e.g. 'server restarted after ...')
        while it is live; False when it ended meanwhile."""
        scan = await self._c.find_one({"_id": scan_id}, {"state": 1})
        if scan is None or scan["state"] in TERMINAL_STATES:
            return False
        now = utcnow()
        update: dict[str, Any] = {
            "$set": {"updated_at": now, **_checked(set_fields)},
            "$push": {"history": {"state": scan["state"], "at": now, "reason": reason}},
        }
        if inc:
            update["$inc"] = _checked(inc)
        res = await self._c.update_one({"_id": scan_id, "state": scan["state"]}, update)
        return res.matched_count == 1

    # -- queries of the reconciler, the backlog and the metrics ----------------------------------
    async def active(self, fields: dict[str, int] | None = None) -> list[dict[str, Any]]:
        return [d async for d in self._c.find({"state": {"$in": list(ACTIVE_STATES)}}, fields)]

    async def queued(
        self, fields: dict[str, int] | None = None, due_by: dt.datetime | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Queued scans, highest priority then oldest first; ``due_by``: only those whose next launch
        attempt is due."""
        query: dict[str, Any] = {"state": "queued"}
        if due_by is not None:
            query["launch.next_attempt_at"] = {"$lte": due_by}
        cursor = self._c.find(query, fields).sort([("priority", -1), ("created_at", 1)]).limit(limit)
        return [d async for d in cursor]

    async def supervised(self) -> list[dict[str, Any]]:
        """Active scans, and ended scans whose processes were not reaped yet."""
        cursor = self._c.find(
            {
                "$or": [
                    {"state": {"$in": list(ACTIVE_STATES)}},
                    {
                        "state": {"$in": list(TERMINAL_STATES)},
                        "launch.reaped": {"$ne": True},
                        "launch.handles": {"$ne": {}},
                    },
                ]
            }
        )
        return [d async for d in cursor]

    async def with_worker_requests(self) -> list[dict[str, Any]]:
        """Launched, active scans with pending add-workers requests."""
        cursor = self._c.find(
            {
                "state": {"$in": list(ACTIVE_STATES)},
                "worker_requests.0": {"$exists": True},
                "launch.launched_at": {"$exists": True},
            }
        )
        return [d async for d in cursor]

    async def webhooks_due(self, now: dt.datetime) -> list[dict[str, Any]]:
        cursor = self._c.find(
            {
                "webhook_pending": True,
                "state": {"$in": list(TERMINAL_STATES)},
                "webhook.next_attempt_at": {"$lte": now},
            }
        )
        return [d async for d in cursor]

    async def notices_due(self, now: dt.datetime, limit: int = 100) -> list[dict[str, Any]]:
        """Ended alert scans whose notice is not published yet and whose next attempt is due."""
        cursor = self._c.find(
            {
                "notice_pending": True,
                "state": {"$in": list(TERMINAL_STATES)},
                "notice.next_attempt_at": {"$lte": now},
            }
        ).limit(limit)
        return [d async for d in cursor]

    async def for_alert(self, run_id: int, event_id: int, revision: int) -> list[dict[str, Any]]:
        """Every scan made for one alert revision (one, unless something doubled it)."""
        query = {"alert.run_id": run_id, "alert.event_id": event_id, "alert.revision": revision}
        return [
            d
            async for d in self._c.find(
                query, {"state": 1, "state_reason": 1, "notice": 1, "notice_pending": 1}
            )
        ]

    async def cleanup_pending(self) -> list[dict[str, Any]]:
        cursor = self._c.find({"state": {"$in": list(TERMINAL_STATES)}, "cleanup_pending": True})
        return [d async for d in cursor]

    async def state_summary(self) -> tuple[dict[str, int], int]:
        """Scans per state, and the pixel results recorded over every scan (as of each server's
        last progress report): one query, which the metrics run on their schedule."""
        rows = await self._c.aggregate(
            [{"$group": {"_id": "$state", "n": {"$sum": 1}, "done": {"$sum": "$progress.tasks_done"}}}]
        )
        counts, done = {}, 0
        async for row in rows:
            counts[row["_id"]] = row["n"]
            done += int(row["done"] or 0)
        return counts, done

    async def search(
        self, query: dict[str, Any], sort: list[tuple[str, int]], limit: int
    ) -> list[dict[str, Any]]:
        cursor = self._c.find(query, {"token_hashes": 0}).sort(sort).limit(limit)
        return [d async for d in cursor]

    async def children_of(self, catalog_id: str, fields: dict[str, int]) -> list[dict[str, Any]]:
        cursor = self._c.find({"catalog_id": catalog_id}, fields).sort([("catalog_index", 1)])
        return [d async for d in cursor]

    # -- bookkeeping (never state or history) ------------------------------------------------------
    async def add_token_hash(self, scan_id: str, digest: str) -> None:
        await self._update(scan_id, push={"token_hashes": digest})

    async def record_launch(self, scan_id: str, handles: dict[str, Any]) -> None:
        await self._update(
            scan_id,
            set_fields={"launch.handles": handles, "launch.last_error": None, "launch.launched_at": utcnow()},
            inc={"launch.attempts": 1},
        )

    async def set_handles(
        self,
        scan_id: str,
        handles: dict[str, Any],
        inc: dict[str, int] | None = None,
        set_fields: dict[str, Any] | None = None,
    ) -> None:
        await self._update(scan_id, set_fields={"launch.handles": handles, **(set_fields or {})}, inc=inc)

    async def set_workforce(self, scan_id: str, workforce: dict[str, Any]) -> None:
        await self._update(scan_id, set_fields={"workforce": workforce})

    async def mark_reaped(self, scan_id: str) -> None:
        """The scan's processes are gone: so are its system tokens."""
        await self._update(scan_id, set_fields={"launch.reaped": True, "token_hashes": []})

    async def cleanup_done(self, scan_id: str) -> None:
        await self._update(
            scan_id, set_fields={"cleanup_pending": False, "launch.reaped": True, "token_hashes": []}
        )

    async def request_workers(self, scan_id: str, entry: dict[str, Any]) -> bool:
        """Queue an add-workers request; False when the scan ended meanwhile."""
        return await self._update(
            scan_id, push={"worker_requests": entry}, only_states=("queued", *ACTIVE_STATES)
        )

    async def settle_worker_request(
        self, scan_id: str, request_id: str, done: dict[str, Any], handles: dict[str, Any] | None, added: int
    ) -> None:
        """Move a request from pending to done, with the handles and worker count it added."""
        set_fields = {"launch.handles": handles} if handles is not None else None
        await self._update(
            scan_id,
            set_fields=set_fields,
            inc={"workers": added} if added else None,
            push={"worker_requests_done": done},
            pull={"worker_requests": {"request_id": request_id}},
        )

    async def webhook_retry(
        self, scan_id: str, attempts: int, reason: str, next_attempt_at: dt.datetime
    ) -> None:
        await self._update(
            scan_id,
            set_fields={
                "webhook.attempts": attempts,
                "webhook.last_error": reason,
                "webhook.next_attempt_at": next_attempt_at,
            },
        )

    async def webhook_done(self, scan_id: str, outcome: str, attempts: int) -> None:
        await self._update(
            scan_id,
            set_fields={
                "webhook_pending": False,
                "webhook.outcome": outcome,
                "webhook.attempts": attempts,
                "webhook.done_at": utcnow(),
            },
        )

    async def notice_prepared(self, scan_id: str, key: str, payload: str) -> dict[str, Any]:
        """Store the notice to publish, once: a notice already stored stays as it is (a restart
        publishes the same bytes again, never a second rendering). Returns the stored notice."""
        await self._c.update_one(
            {"_id": scan_id, "notice.payload": {"$exists": False}},
            {"$set": {"notice.key": key, "notice.payload": payload, "notice.prepared_at": utcnow()}},
        )
        doc = await self._c.find_one({"_id": scan_id}, {"notice": 1})
        return (doc or {}).get("notice") or {}

    async def notice_retry(
        self, scan_id: str, attempts: int, reason: str, next_attempt_at: dt.datetime
    ) -> None:
        await self._update(
            scan_id,
            set_fields={
                "notice.attempts": attempts,
                "notice.last_error": reason,
                "notice.next_attempt_at": next_attempt_at,
            },
        )

    async def notice_published(self, scan_id: str, where: dict[str, Any], attempts: int) -> None:
        """Where the notice landed (topic, partition, offset): it is not published again."""
        await self._update(
            scan_id,
            set_fields={
                "notice_pending": False,
                "notice.published": {**where, "at": utcnow()},
                "notice.attempts": attempts,
                "notice.outcome": "published",
            },
        )

    async def notice_skipped(self, scan_id: str, outcome: str) -> None:
        await self._update(scan_id, set_fields={"notice_pending": False, "notice.outcome": outcome})

    # -- written by the scan's server --------------------------------------------------------------
    async def set_server(self, scan_id: str, server: dict[str, Any]) -> bool:
        """Record a (replacement) server on a running scan; False when it is not running."""
        return await self._update(
            scan_id, set_fields={"server": server, "updated_at": utcnow()}, only_states=("running",)
        )

    async def mark_first_dispatch(self, scan_id: str) -> None:
        await self._c.update_one(
            {"_id": scan_id, "first_dispatch_at": {"$exists": False}},
            {"$set": {"first_dispatch_at": utcnow()}},
        )

    async def save_progress(self, scan_id: str, fields: dict[str, Any]) -> None:
        """Progress, counters and best fit so far: written while the scan runs, never after."""
        await self._update(scan_id, set_fields=fields, only_states=("running",))

    async def state_of(self, scan_id: str) -> str | None:
        doc = await self._c.find_one({"_id": scan_id}, {"state": 1})
        return None if doc is None else doc["state"]

    # ---------------------------------------------------------------------------------------------
    async def _update(
        self,
        scan_id: str,
        *,
        set_fields: dict[str, Any] | None = None,
        inc: dict[str, int] | None = None,
        push: dict[str, Any] | None = None,
        pull: dict[str, Any] | None = None,
        only_states: tuple[str, ...] | None = None,
    ) -> bool:
        update: dict[str, Any] = {}
        for op, fields in (("$set", set_fields), ("$inc", inc), ("$push", push), ("$pull", pull)):
            if fields:
                update[op] = _checked(fields)
        query: dict[str, Any] = {"_id": scan_id}
        if only_states is not None:
            query["state"] = {"$in": list(only_states)}
        res = await self._c.update_one(query, update)
        return res.matched_count == 1


def _checked(fields: dict[str, Any] | None) -> dict[str, Any]:
    """Only transition() writes the state machine's fields."""
    fields = dict(fields or {})
    for key in fields:
        if key.split(".")[0] in _OWNED_BY_TRANSITION:
            raise ValueError(f"{key!r} is written by ScanRepository.transition() only")
    return fields
