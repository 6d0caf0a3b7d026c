"""Webhook outbox: durable delivery queue with leases, retries with exponential backoff, and a delivery log.

Lifecycle of one (event, subscription) delivery::

    enqueue -> pending --claim_due--> in_flight --mark_result(ok)--> delivered
                  ^                       |  \\--mark_result(fail, attempts left)--> pending (next_attempt_at)
                  |                       \\--mark_result(fail, no attempts left / not retryable)--> failed
                  +-- lease (claimed_until) expired: the worker died; claim_due hands it out again

``claim_due`` is one ``UPDATE ... RETURNING`` statement, so an item is handed to exactly one claimer: a
concurrent claimer either sees it already in flight or loses DuckDB's write-write conflict check and retries.
``attempts`` counts attempts started (incremented by claim); ``mark_result`` must quote the attempt number it
was given, so a late report from a worker whose lease expired cannot overwrite the newer attempt.
Times are epoch seconds passed in by the caller (``now``), which keeps the logic testable.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import duckdb
import msgspec
import numpy as np

from wdp.schemas import JSON_ENCODER, DeliveryAttempt, EventBase, WebhookSubscription, event_type, new_id
from wdp.store.connection import transaction

OutboxStatus = Literal["pending", "in_flight", "delivered", "failed"]
_COLUMNS = (
    "delivery_id, event_id, subscription_id, event_type, payload, status, attempts, max_attempts, "
    "created_at, next_attempt_at, last_error"
)


class OutboxItem(msgspec.Struct, kw_only=True, frozen=True):
    delivery_id: str
    event_id: str
    subscription_id: str
    event_type: str
    payload: str  # the event as JSON (msgspec, tagged): send these exact bytes on every attempt
    status: OutboxStatus
    attempts: int  # attempts started; a claimed item's current attempt number
    max_attempts: int
    created_at: float
    next_attempt_at: float
    last_error: str | None = None


def _item(row: Sequence[Any]) -> OutboxItem:
    return OutboxItem(**dict(zip(_COLUMNS.split(", "), row, strict=True)))


def _now(now: float | None) -> float:
    return time.time() if now is None else now


def enqueue_rows(
    con: duckdb.DuckDBPyConnection,
    events: Iterable[EventBase],
    subscriptions: Iterable[WebhookSubscription],
    now: float,
) -> list[str]:
    """Insert outbox rows for every (event, subscription that wants it) pair not queued yet, in one batched
    INSERT and without a transaction of its own (callers commit events and deliveries together)."""
    subs = list(subscriptions)
    events = list(events)
    if not subs or not events:
        return []
    placeholders = ", ".join("?" * len(events))
    existing = set(
        con.execute(
            f"SELECT event_id, subscription_id FROM outbox WHERE event_id IN ({placeholders})",
            [e.event_id for e in events],
        ).fetchall()
    )
    cols: dict[str, list[Any]] = {
        k: []
        for k in (
            "delivery_id",
            "event_id",
            "subscription_id",
            "event_type",
            "payload",
            "max_attempts",
            "backoff_base_s",
            "backoff_max_s",
        )
    }
    for event in events:
        name = event_type(event)
        payload = JSON_ENCODER.encode(event).decode()
        for sub in subs:
            if sub.wants(name) and (event.event_id, sub.id) not in existing:
                existing.add((event.event_id, sub.id))
                r = sub.retry
                for key, value in zip(
                    cols,
                    (
                        new_id(),
                        event.event_id,
                        sub.id,
                        name,
                        payload,
                        r.max_attempts,
                        r.backoff_base_s,
                        r.backoff_max_s,
                    ),
                    strict=True,
                ):
                    cols[key].append(value)
    if not cols["delivery_id"]:
        return []
    con.register(
        "_wdp_outbox", {k: np.array(v, dtype=object if isinstance(v[0], str) else None) for k, v in cols.items()}
    )
    try:
        con.execute(
            "INSERT INTO outbox (delivery_id, event_id, subscription_id, event_type, payload, status, "
            "attempts, max_attempts, backoff_base_s, backoff_max_s, created_at, next_attempt_at) "
            "SELECT delivery_id, event_id, subscription_id, event_type, payload, 'pending', 0, max_attempts, "
            "backoff_base_s, backoff_max_s, $now, $now FROM _wdp_outbox",
            {"now": now},
        )
    finally:
        con.unregister("_wdp_outbox")
    return cols["delivery_id"]


def enqueue(
    con: duckdb.DuckDBPyConnection,
    events: Iterable[EventBase],
    subscriptions: Iterable[WebhookSubscription],
    *,
    now: float | None = None,
) -> list[str]:
    """Queue deliveries of ``events`` to the active subscriptions that want them. Returns the new delivery
    ids (an (event, subscription) pair already queued is skipped, so re-enqueueing is harmless)."""
    with transaction(con):
        return enqueue_rows(con, events, subscriptions, _now(now))


def claim_due(
    con: duckdb.DuckDBPyConnection,
    *,
    now: float | None = None,
    limit: int = 10,
    lease_s: float = 60.0,
    retries: int = 20,
) -> list[OutboxItem]:
    """Claim up to ``limit`` due deliveries (oldest due first) for ``lease_s`` seconds; each returned item is
    in flight with ``attempts`` = this attempt's number. Safe to call from several threads/connections."""
    t = _now(now)
    # PostgreSQL (several hubs on one outbox): rows another claimer holds are skipped, not waited for or
    # fought over, so concurrent claims return disjoint items at once. DuckDB has no row locks: a conflicting
    # claimer fails its write-write check below and re-selects.
    lock = " FOR UPDATE SKIP LOCKED" if getattr(con, "dialect", "duckdb") == "postgres" else ""
    sql = f"""
        UPDATE outbox SET status = 'in_flight', attempts = attempts + 1, claimed_until = $lease_end
        WHERE delivery_id IN (
            SELECT delivery_id FROM outbox
            WHERE (status = 'pending' AND next_attempt_at <= $now)
               OR (status = 'in_flight' AND claimed_until <= $now)
            ORDER BY next_attempt_at, created_at, delivery_id
            LIMIT $limit{lock}
        )
        RETURNING {_COLUMNS}"""
    for attempt in range(retries + 1):
        try:
            rows = con.execute(sql, {"now": t, "lease_end": t + lease_s, "limit": limit}).fetchall()
            break
        except duckdb.TransactionException:
            # Another claimer updated one of these rows first: re-select what is still due.
            if attempt == retries:
                raise
    return sorted((_item(r) for r in rows), key=lambda i: (i.next_attempt_at, i.created_at, i.delivery_id))


def mark_result(
    con: duckdb.DuckDBPyConnection,
    delivery_id: str,
    attempt: int,
    *,
    ok: bool,
    now: float | None = None,
    status_code: int | None = None,
    latency_ms: float | None = None,
    error: str | None = None,
    retryable: bool = True,
) -> OutboxStatus | None:
    """Record the outcome of attempt ``attempt`` (the ``attempts`` of the claimed item) and move the item on:
    delivered, pending again after backoff, or failed (attempts exhausted or ``retryable=False``). Every
    report is appended to the delivery log. Returns the new status, or None for a stale report (the item was
    re-claimed after its lease expired, or is unknown)."""
    t = _now(now)
    with transaction(con):
        row = con.execute(
            "SELECT event_id, subscription_id, attempts, max_attempts, backoff_base_s, backoff_max_s, status "
            "FROM outbox WHERE delivery_id = ?",
            [delivery_id],
        ).fetchone()
        if row is None:
            return None
        event_id, sub_id, attempts, max_attempts, base, cap, status = row
        con.execute(
            "INSERT INTO delivery_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [delivery_id, event_id, sub_id, attempt, t, ok, status_code, latency_ms, error],
        )
        if status != "in_flight" or attempts != attempt:
            return None
        new_status: OutboxStatus
        if ok:
            new_status, next_at = "delivered", t
        elif retryable and attempts < max_attempts:
            new_status, next_at = "pending", t + min(cap, base * 2.0 ** (attempts - 1))
        else:
            new_status, next_at = "failed", t
        con.execute(
            "UPDATE outbox SET status = ?, next_attempt_at = ?, claimed_until = NULL, last_error = ? "
            "WHERE delivery_id = ?",
            [new_status, next_at, None if ok else (error or f"HTTP {status_code}"), delivery_id],
        )
    return new_status


def requeue(con: duckdb.DuckDBPyConnection, delivery_id: str, *, now: float | None = None) -> bool:
    """Give a failed delivery a fresh set of attempts (the "redeliver" button). False if not failed."""
    rows = con.execute(
        "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?, last_error = NULL "
        "WHERE delivery_id = ? AND status = 'failed' RETURNING delivery_id",
        [_now(now), delivery_id],
    ).fetchall()
    return bool(rows)


def get_item(con: duckdb.DuckDBPyConnection, delivery_id: str) -> OutboxItem | None:
    row = con.execute(f"SELECT {_COLUMNS} FROM outbox WHERE delivery_id = ?", [delivery_id]).fetchone()
    return None if row is None else _item(row)


def items(
    con: duckdb.DuckDBPyConnection,
    *,
    status: OutboxStatus | None = None,
    subscription_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[OutboxItem]:
    where, params = ["true"], []
    if status is not None:
        where.append("status = ?")
        params.append(status)
    if subscription_id is not None:
        where.append("subscription_id = ?")
        params.append(subscription_id)
    rows = con.execute(
        f"SELECT {_COLUMNS} FROM outbox WHERE {' AND '.join(where)} ORDER BY created_at, delivery_id LIMIT ? OFFSET ?",
        [*params, limit, offset],
    ).fetchall()
    return [_item(r) for r in rows]


def delivery_log(
    con: duckdb.DuckDBPyConnection,
    *,
    subscription_id: str | None = None,
    delivery_id: str | None = None,
    event_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[DeliveryAttempt]:
    """Delivery attempts, newest first."""
    where, params = ["true"], []
    for column, value in (("subscription_id", subscription_id), ("delivery_id", delivery_id), ("event_id", event_id)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    rows = con.execute(
        "SELECT delivery_id, event_id, subscription_id, attempt, ts, ok, status_code, latency_ms, error "
        f"FROM delivery_log WHERE {' AND '.join(where)} ORDER BY ts DESC, attempt DESC LIMIT ? OFFSET ?",
        [*params, limit, offset],
    ).fetchall()
    return [
        DeliveryAttempt(
            delivery_id=r[0],
            event_id=r[1],
            subscription_id=r[2],
            attempt=r[3],
            timestamp=r[4],
            ok=r[5],
            status_code=r[6],
            latency_ms=r[7],
            error=r[8],
        )
        for r in rows
    ]
