"""Id sequences that survive restarts: frame and track ids handed out in reserved blocks.

Why blocks: the engine must never reuse an id of an earlier run (history queries join on frame and track
ids), and it must not pay a transaction per frame. ``reserve`` commits the new high-water mark of a sequence
BEFORE any id of the block is used, so a crash can only leave a gap, never a repeat. The next block also
starts after the highest id actually stored, so rows written by something that did not reserve (an import,
an older wdp) are never collided with either.
"""

from __future__ import annotations

import duckdb

from wdp.store.connection import transaction

FRAME = "frame"
TRACK = "track"

# Highest id already stored, per sequence (each a cheap scan: ids are appended in order, zonemaps prune).
_STORED_MAX = {
    FRAME: "SELECT coalesce(max(frame_id), 0) FROM pose_frames",
    TRACK: "SELECT greatest((SELECT coalesce(max(track_id), 0) FROM tracks), "
    "(SELECT coalesce(max(track_id), 0) FROM pose_persons))",
}
SEQUENCES = tuple(_STORED_MAX)


def reserve(con: duckdb.DuckDBPyConnection, name: str, count: int) -> int:
    """Reserve ``count`` consecutive ids of sequence ``name`` (FRAME or TRACK); returns the first. The block
    is durable when this returns (its COMMIT is in DuckDB's write-ahead log)."""
    if name not in _STORED_MAX:
        raise ValueError(f"unknown id sequence {name!r}; known: {', '.join(SEQUENCES)}")
    if count < 1:
        raise ValueError("count must be >= 1")
    with transaction(con):
        stored = con.execute(_STORED_MAX[name]).fetchone()
        row = con.execute("SELECT next_id FROM id_sequences WHERE name = ?", [name]).fetchone()
        first = max(int(row[0]) if row else 1, int(stored[0]) + 1 if stored else 1)
        con.execute(
            "INSERT INTO id_sequences VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET next_id = excluded.next_id",
            [name, first + count],
        )
    return first


def next_unreserved(con: duckdb.DuckDBPyConnection, name: str) -> int:
    """The first id the next ``reserve`` of ``name`` would return (for status and tests)."""
    stored = con.execute(_STORED_MAX[name]).fetchone()
    row = con.execute("SELECT next_id FROM id_sequences WHERE name = ?", [name]).fetchone()
    return max(int(row[0]) if row else 1, int(stored[0]) + 1 if stored else 1)
