"""Stored DensePose output, on demand (``store.dense``): one row per person and frame with the person's
``schemas.DensePose`` as msgpack (a few hundred bytes: RLE parts + uint8 U/V), beside the pose tables.

Rows are keyed like pose_persons (ts, frame_id, track_id) and appended in batches (numpy columns, one
``INSERT ... SELECT``); ``attach`` puts them back on frames read with wdp.store.queries.pose_history. A
frame stored while the option was off simply has no dense rows: its persons come back without ``dense``.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import msgspec
import numpy as np

from wdp.schemas import DensePose, PoseFrame
from wdp.store.connection import transaction

_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(DensePose)


def append_rows(con: duckdb.DuckDBPyConnection, frames: Sequence[PoseFrame]) -> int:
    """Insert the dense output of every person of ``frames`` that has one (no transaction of its own)."""
    rows = [(f.timestamp, f.frame_id, p.track_id, p.dense) for f in frames for p in f.persons]
    rows = [r for r in rows if isinstance(r[3], DensePose)]
    if not rows:
        return 0
    columns = {
        "ts": np.array([r[0] for r in rows], np.float64),
        "frame_id": np.array([r[1] for r in rows], np.int64),
        "track_id": np.array([r[2] for r in rows], np.int32),
        "dense": np.array([_ENCODER.encode(r[3]) for r in rows], object),
    }
    con.register("_wdp_dense", columns)
    try:
        con.execute("INSERT INTO pose_dense SELECT ts, frame_id, track_id, dense FROM _wdp_dense")
    finally:
        con.unregister("_wdp_dense")
    return len(rows)


def append_frames(con: duckdb.DuckDBPyConnection, frames: Sequence[PoseFrame]) -> int:
    """Insert a batch in one transaction."""
    with transaction(con):
        return append_rows(con, frames)


def attach(con: duckdb.DuckDBPyConnection, frames: list[PoseFrame]) -> list[PoseFrame]:
    """``frames`` with each person's stored dense output set (persons without a row are left as they are).
    A row that does not decode is skipped (a person without ``dense``), never an error for the whole page."""
    if not frames:
        return frames
    lo = min(f.timestamp for f in frames)
    hi = max(f.timestamp for f in frames)
    rows = con.execute(
        "SELECT ts, frame_id, track_id, dense FROM pose_dense WHERE ts >= ? AND ts <= ?", [lo, hi]
    ).fetchall()
    found: dict[tuple[float, int, int], DensePose] = {}
    for ts, fid, tid, blob in rows:
        try:
            found[(ts, fid, tid)] = _DECODER.decode(blob)
        except msgspec.DecodeError:
            continue
    if not found:
        return frames
    out = []
    for f in frames:
        persons = [
            msgspec.structs.replace(p, dense=d) if (d := found.get((f.timestamp, f.frame_id, p.track_id))) else p
            for p in f.persons
        ]
        out.append(msgspec.structs.replace(f, persons=persons))
    return out
