"""Aggregates for /analytics that wdp.store.queries does not have yet (activity counts, report totals).

Kept beside the API until the store grows them; same conventions as wdp.store.queries: half-open [start, end)
ranges on ``ts`` so zonemaps prune, a connection as the first argument.
"""

from __future__ import annotations

from typing import Any

import duckdb

from wdp.serve.api_types import ActivityCount, ZoneReport

_IN_ZONE = (
    "EXISTS (SELECT 1 FROM person_zones z WHERE z.ts >= ? AND z.ts < ? AND z.zone_id = ? "
    "AND z.ts = p.ts AND z.frame_id = p.frame_id AND z.track_id = p.track_id)"
)


def activity_counts(
    con: duckdb.DuckDBPyConnection, start: float, end: float, zone_id: str | None = None
) -> tuple[int, list[ActivityCount]]:
    """(all person-frames in range, per-activity person-frames and distinct tracks), most frequent first."""
    where, params = "p.ts >= ? AND p.ts < ?", [start, end]
    if zone_id is not None:
        where += " AND " + _IN_ZONE
        params += [start, end, zone_id]
    rows = con.execute(
        f"SELECT p.activity, count(*), count(DISTINCT p.track_id) FROM pose_persons p WHERE {where} "
        "GROUP BY p.activity ORDER BY 2 DESC, 1",
        params,
    ).fetchall()
    total = sum(int(n) for _, n, _ in rows)
    return total, [ActivityCount(activity=a, person_frames=int(n), persons=int(k)) for a, n, k in rows if a is not None]


def report_totals(con: duckdb.DuckDBPyConnection, start: float, end: float) -> dict[str, Any]:
    frames_row = con.execute("SELECT count(*) FROM pose_frames WHERE ts >= ? AND ts < ?", [start, end]).fetchone()
    frames = int(frames_row[0]) if frames_row else 0
    persons_row = con.execute(
        "SELECT count(*), count(DISTINCT track_id) FROM pose_persons WHERE ts >= ? AND ts < ?", [start, end]
    ).fetchone()
    person_frames, tracks = (int(persons_row[0]), int(persons_row[1])) if persons_row else (0, 0)
    events = con.execute(
        "SELECT type, count(*) FROM events WHERE ts >= ? AND ts < ? GROUP BY type ORDER BY type", [start, end]
    ).fetchall()
    zone_rows = con.execute(
        "SELECT zone_id, sum(count), max(count) FROM zone_occupancy WHERE ts >= ? AND ts < ? "
        "GROUP BY zone_id ORDER BY zone_id",
        [start, end],
    ).fetchall()
    zones = [
        ZoneReport(
            zone_id=z,
            person_frames=int(s),
            mean_occupancy=float(s) / frames if frames else 0.0,
            peak_occupancy=int(m),
        )
        for z, s, m in zone_rows
    ]
    return {
        "frames": frames,
        "person_frames": person_frames,
        "distinct_tracks": tracks,
        "mean_persons": person_frames / frames if frames else 0.0,
        "events_by_type": {t: int(n) for t, n in events},
        "zones": zones,
    }
