"""DuckDB history store: pose frames/persons/keypoints, tracks, events, zone occupancy, sensing states,
configuration and the webhook outbox, with versioned migrations, batched appends, queries, retention and export.

    with Store("history.duckdb") as store:
        writer = store.writer(max_frames=300, flush_interval_s=1.0, autoflush=True)
        writer.append(frame)                       # PoseFrame; batched, one transaction per flush
        page = queries.pose_history(store.cursor(), t0, t1, track_id=3, limit=100)

Each thread uses ``store.cursor()`` (its own DuckDB connection). Crash bound: see ``wdp.store.writer``.
"""

from __future__ import annotations

from wdp.store import config, dense, events, export, ids, outbox, queries, retention, schema, sensing
from wdp.store.connection import Store, transaction
from wdp.store.writer import PoseWriter, WriterStats

__all__ = [
    "PoseWriter",
    "Store",
    "WriterStats",
    "config",
    "dense",
    "events",
    "export",
    "ids",
    "outbox",
    "queries",
    "retention",
    "schema",
    "sensing",
    "transaction",
]
