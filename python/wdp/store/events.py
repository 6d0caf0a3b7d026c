"""Event appends. Events are rare next to pose rows but come in bursts, so they are still written with one
batched INSERT ... SELECT. ``record_events`` stores events and their webhook deliveries in ONE transaction
(transactional outbox): an event is never stored without its deliveries, nor queued without being stored."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import duckdb
import numpy as np

from wdp.schemas import JSON_ENCODER, EventBase, WebhookSubscription, event_type
from wdp.store import outbox
from wdp.store.connection import transaction


def append_rows(con: duckdb.DuckDBPyConnection, events: Sequence[EventBase]) -> int:
    """Insert events (no transaction of its own); an event_id already stored is skipped."""
    if not events:
        return 0
    columns = {
        "event_id": np.array([e.event_id for e in events], dtype=object),
        "ts": np.array([e.timestamp for e in events], dtype=np.float64),
        "type": np.array([event_type(e) for e in events], dtype=object),
        # NaN/None read as NULL: events without a track or zone simply lack those columns
        "track_id": np.array([getattr(e, "track_id", np.nan) for e in events], dtype=np.float64),
        "zone_id": np.array([getattr(e, "zone_id", None) for e in events], dtype=object),
        "severity": np.array([getattr(e, "severity", None) for e in events], dtype=object),
        "payload": np.array([JSON_ENCODER.encode(e).decode() for e in events], dtype=object),
    }
    con.register("_wdp_events", columns)
    try:
        con.execute(
            "INSERT INTO events SELECT event_id, ts, type, track_id::INTEGER, zone_id, severity, payload "
            "FROM _wdp_events ON CONFLICT (event_id) DO NOTHING"
        )
    finally:
        con.unregister("_wdp_events")
    return len(events)


def append_events(con: duckdb.DuckDBPyConnection, events: Iterable[EventBase]) -> int:
    batch = list(events)
    with transaction(con):
        return append_rows(con, batch)


def record_events(
    con: duckdb.DuckDBPyConnection,
    events: Iterable[EventBase],
    subscriptions: Iterable[WebhookSubscription],
    *,
    now: float,
) -> list[str]:
    """Store ``events`` and queue their deliveries to ``subscriptions`` atomically; returns delivery ids."""
    batch = list(events)
    with transaction(con):
        append_rows(con, batch)
        return outbox.enqueue_rows(con, batch, subscriptions, now)
