"""Retention: delete history older than N days, all tables in one transaction (all or nothing).

Deleted rows free space in the file at the next checkpoint once whole row groups are empty; pass
``checkpoint=True`` to checkpoint right away.
"""

from __future__ import annotations

import time

import duckdb

from wdp.store.connection import transaction

# table -> predicate on the cutoff (epoch seconds). Pending/in-flight deliveries are kept whatever their age.
_RULES: tuple[tuple[str, str], ...] = (
    ("pose_frames", "ts < $cutoff"),
    ("pose_persons", "ts < $cutoff"),
    ("pose_dense", "ts < $cutoff"),
    ("person_zones", "ts < $cutoff"),
    ("zone_occupancy", "ts < $cutoff"),
    ("tracks", "last_seen < $cutoff"),
    ("events", "ts < $cutoff"),
    ("sensing_states", "ts < $cutoff"),
    ("delivery_log", "ts < $cutoff"),
    ("outbox", "created_at < $cutoff AND status IN ('delivered', 'failed')"),
)


def delete_older_than(
    con: duckdb.DuckDBPyConnection,
    days: float,
    *,
    now: float | None = None,
    checkpoint: bool = False,
) -> dict[str, int]:
    """Delete rows older than ``now - days * 86400``; returns rows deleted per table."""
    if days < 0:
        raise ValueError("days must be >= 0")
    cutoff = (time.time() if now is None else now) - days * 86400.0
    deleted: dict[str, int] = {}
    with transaction(con):
        for table, predicate in _RULES:
            row = con.execute(f"DELETE FROM {table} WHERE {predicate}", {"cutoff": cutoff}).fetchone()
            deleted[table] = int(row[0]) if row else 0
    if checkpoint:
        con.execute("CHECKPOINT")
    return deleted
