"""Export history to Parquet or CSV with DuckDB's COPY ... TO (streams; nothing is materialized in Python).

Every export adds ``time`` (TIMESTAMPTZ, UTC) next to the raw ``ts`` epoch seconds. Keypoints export as a
51-float array (17 x (x, y, score)); CSV renders arrays as ``[a, b, ...]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import duckdb

ExportTable = Literal["persons", "frames", "events", "zone_occupancy"]
ExportFormat = Literal["parquet", "csv"]

_SELECT: dict[str, str] = {
    "persons": "SELECT to_timestamp(p.ts) AS time, p.* FROM pose_persons p",
    "frames": "SELECT to_timestamp(p.ts) AS time, p.* FROM pose_frames p",
    "events": "SELECT to_timestamp(p.ts) AS time, p.* FROM events p",
    "zone_occupancy": "SELECT to_timestamp(p.ts) AS time, p.* FROM zone_occupancy p",
}


def export(
    con: duckdb.DuckDBPyConnection,
    path: str | Path,
    table: ExportTable = "persons",
    *,
    start: float | None = None,
    end: float | None = None,
    track_id: int | None = None,
    zone_id: str | None = None,
    format: ExportFormat | None = None,
) -> int:
    """Write ``table`` rows in ``[start, end)`` (optionally one track / one zone) to ``path``; returns rows.

    ``format`` defaults from the suffix (.parquet / .csv). ``track_id`` applies to persons and events,
    ``zone_id`` to persons (zone membership), events and zone_occupancy.
    """
    if table not in _SELECT:
        raise ValueError(f"unknown export table {table!r}")
    fmt = format or Path(path).suffix.lstrip(".").lower()
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"export format must be parquet or csv, got {fmt!r}")
    where: list[str] = []
    params: list[Any] = []
    if start is not None:
        where.append("p.ts >= ?")
        params.append(start)
    if end is not None:
        where.append("p.ts < ?")
        params.append(end)
    if track_id is not None:
        if table not in ("persons", "events"):
            raise ValueError(f"track_id does not apply to {table}")
        where.append("p.track_id = ?")
        params.append(track_id)
    if zone_id is not None:
        if table == "frames":
            raise ValueError("zone_id does not apply to frames")
        if table == "persons":
            where.append(
                "EXISTS (SELECT 1 FROM person_zones z WHERE z.zone_id = ? AND z.ts = p.ts "
                "AND z.frame_id = p.frame_id AND z.track_id = p.track_id)"
            )
        else:
            where.append("p.zone_id = ?")
        params.append(zone_id)
    query = _SELECT[table] + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY p.ts"
    options = "FORMAT parquet, COMPRESSION zstd" if fmt == "parquet" else "FORMAT csv, HEADER true"
    target = str(path).replace("'", "''")
    row = con.execute(f"COPY ({query}) TO '{target}' ({options})", params).fetchone()
    return int(row[0]) if row else 0
