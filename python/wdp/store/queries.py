"""Read side of the history store: pose history pages, person summaries, trajectories, heatmaps, events,
zone occupancy series.

Time ranges are half-open ``[start, end)`` in epoch seconds. Every query bounds ``ts`` so DuckDB's row-group
zonemaps skip data outside the range (rows are appended in time order). Values come back as stored: pose
numbers are float32, ``Person.zone_ids`` is sorted.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import duckdb
import numpy as np

from wdp.schemas import (
    EVENT_JSON,
    N_KEYPOINTS,
    Event,
    FloorGrid,
    Heatmap,
    OccupancyBucket,
    Person,
    PersonSummary,
    PoseFrame,
    TrajectoryPoint,
)

MAX_PAGE = 1000  # the REST contract caps history pages at 1000 frames
_KP_WIDTH = N_KEYPOINTS * 3
_KP_COLS = ", ".join(f"p.keypoints[{i + 1}] AS k{i}" for i in range(_KP_WIDTH))
_BOX_COLS = ", ".join(f"p.box[{i + 1}] AS b{i}" for i in range(4))


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause CPython's cyclic GC while a page is built: ~20 new containers per person make it run full
    collections over the whole heap mid-build (3-4x slower with a large heap, measured); nothing built here
    can form a cycle. Re-enables only if it was enabled, so concurrent callers never leave it off."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be in 1..{MAX_PAGE}, got {limit}")
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")


def _check_range(start: float, end: float) -> None:
    if not end >= start:
        raise ValueError(f"end ({end}) must not be before start ({start})")


def _person_conditions(
    start: float,
    end: float,
    track_id: int | None,
    zone_id: str | None,
    min_confidence: float | None,
    alias: str = "p",
) -> tuple[list[str], list[Any]]:
    """WHERE terms on pose_persons (aliased ``alias``)."""
    a = alias
    where = [f"{a}.ts >= ?", f"{a}.ts < ?"]
    params: list[Any] = [start, end]
    if track_id is not None:
        where.append(f"{a}.track_id = ?")
        params.append(track_id)
    if min_confidence is not None:
        where.append(f"{a}.confidence >= ?")
        params.append(min_confidence)
    if zone_id is not None:
        # The range on z.ts lets the subquery prune too (DuckDB does not infer it from the join).
        where.append(
            "EXISTS (SELECT 1 FROM person_zones z WHERE z.ts >= ? AND z.ts < ? AND z.zone_id = ? "
            f"AND z.ts = {a}.ts AND z.frame_id = {a}.frame_id AND z.track_id = {a}.track_id)"
        )
        params += [start, end, zone_id]
    return where, params


def _key_range(alias: str, first: tuple[float, int], last: tuple[float, int]) -> tuple[str, list[Any]]:
    """Rows whose (ts, frame_id) lies in [first, last]; the plain ts bounds are there for pruning."""
    a = alias
    sql = f"{a}.ts >= ? AND {a}.ts <= ? AND ({a}.ts > ? OR {a}.frame_id >= ?) AND ({a}.ts < ? OR {a}.frame_id <= ?)"
    return sql, [first[0], last[0], first[0], first[1], last[0], last[1]]


def pose_history(
    con: duckdb.DuckDBPyConnection,
    start: float,
    end: float,
    *,
    track_id: int | None = None,
    zone_id: str | None = None,
    min_confidence: float | None = None,
    source: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[PoseFrame]:
    """Frames in ``[start, end)`` ordered by time, ``limit`` (<= 1000) per page from ``offset``.

    Without person filters every frame is listed (including frames with nobody). With ``track_id``,
    ``zone_id`` or ``min_confidence`` only frames with at least one matching person are listed, and each
    frame carries only its matching persons (the seed's filter semantics for pose/current).
    """
    _check_range(start, end)
    _check_page(limit, offset)
    matching, params = _matching_frames(start, end, track_id, zone_id, min_confidence, source)
    keys = con.execute(f"{matching} ORDER BY 1, 2 LIMIT ? OFFSET ?", [*params, limit, offset]).fetchall()
    if not keys:
        return []
    first, last = keys[0], keys[-1]

    f_range, f_params = _key_range("f", first, last)
    frame_rows = con.execute(
        f"SELECT f.ts, f.frame_id, f.source, f.latency_ms, f.router_ids FROM pose_frames f WHERE {f_range}",
        f_params,
    ).fetchall()
    meta = {(r[0], r[1]): r for r in frame_rows}

    p_where, p_params = _person_conditions(
        first[0], float(np.nextafter(last[0], np.inf)), track_id, zone_id, min_confidence
    )
    p_range, p_range_params = _key_range("p", first, last)
    # Columns come back as numpy (keypoints as 51 float32 columns): no per-value Python objects until the
    # final tolist(), which is what keeps a 1000-frame page fast.
    cols = con.execute(
        f"SELECT p.ts, p.frame_id, p.track_id, p.confidence, p.x, p.y, p.activity, {_BOX_COLS}, {_KP_COLS} "
        f"FROM pose_persons p WHERE {' AND '.join(p_where)} AND {p_range}",
        p_params + p_range_params,
    ).fetchnumpy()
    z_range, z_params = _key_range("z", first, last)
    zone_rows = con.execute(
        f"SELECT z.ts, z.frame_id, z.track_id, z.zone_id FROM person_zones z WHERE {z_range} ORDER BY z.zone_id",
        z_params,
    ).fetchall()  # grouped here: cheaper than DuckDB's ordered list() aggregate
    zones: dict[tuple[float, int, int], list[str]] = {}
    for ts, fid, tid, zone in zone_rows:
        zones.setdefault((ts, fid, tid), []).append(zone)
    n = len(cols["ts"])
    with _gc_paused():
        return _assemble(keys, meta, cols, zones, n)


def _assemble(
    keys: list[tuple[float, int]],
    meta: dict[tuple[float, int], tuple[Any, ...]],
    cols: dict[str, np.ndarray],
    zones: dict[tuple[float, int, int], list[str]],
    n: int,
) -> list[PoseFrame]:
    persons_by_frame: dict[tuple[float, int], list[Person]] = {}
    if n:
        kps = np.stack([cols[f"k{i}"] for i in range(_KP_WIDTH)], axis=1).reshape(n, N_KEYPOINTS, 3).tolist()
        boxes = np.stack([cols[f"b{i}"] for i in range(4)], axis=1).tolist()
        rows = zip(
            cols["ts"].tolist(),
            cols["frame_id"].tolist(),
            cols["track_id"].tolist(),
            cols["confidence"].tolist(),
            cols["x"].tolist(),
            cols["y"].tolist(),
            cols["activity"].tolist(),
            boxes,
            kps,
            strict=True,
        )
        for ts, fid, tid, conf, x, y, act, box, kp in rows:
            persons_by_frame.setdefault((ts, fid), []).append(
                Person(
                    track_id=tid,
                    keypoints=kp,
                    box=tuple(box),
                    confidence=conf,
                    zone_ids=zones.get((ts, fid, tid), []),
                    activity=act,
                    position=None if x is None or y is None else (x, y),
                )
            )
    out = []
    for key in keys:
        ts, fid, src, latency, routers = meta[key]
        persons = persons_by_frame.get(key, [])
        persons.sort(key=lambda p: p.track_id)
        out.append(
            PoseFrame(
                frame_id=fid,
                timestamp=ts,
                source=src,
                persons=persons,
                router_ids=list(routers),
                latency_ms=latency if latency is not None else 0.0,
            )
        )
    return out


def count_history(
    con: duckdb.DuckDBPyConnection,
    start: float,
    end: float,
    *,
    track_id: int | None = None,
    zone_id: str | None = None,
    min_confidence: float | None = None,
    source: str | None = None,
) -> int:
    """How many frames ``pose_history`` lists for the same filters (for page counts)."""
    _check_range(start, end)
    matching, params = _matching_frames(start, end, track_id, zone_id, min_confidence, source)
    row = con.execute(f"SELECT count(*) FROM ({matching}) AS m", params).fetchone()
    return int(row[0]) if row else 0


def _matching_frames(
    start: float,
    end: float,
    track_id: int | None,
    zone_id: str | None,
    min_confidence: float | None,
    source: str | None,
) -> tuple[str, list[Any]]:
    """SELECT of the (ts, frame_id) keys of the frames a history query lists, unordered."""
    if track_id is None and zone_id is None and min_confidence is None:
        where, params = "f.ts >= ? AND f.ts < ?", [start, end]
        if source is not None:
            where, params = where + " AND f.source = ?", [*params, source]
        return f"SELECT f.ts, f.frame_id FROM pose_frames f WHERE {where}", params

    if min_confidence is None and zone_id is not None:
        # zone (and track) filters alone are answered by the membership table: no join with persons
        table = "person_zones"
        conditions = ["x.ts >= ?", "x.ts < ?", "x.zone_id = ?"]
        params = [start, end, zone_id]
        if track_id is not None:
            conditions.append("x.track_id = ?")
            params.append(track_id)
    else:
        table = "pose_persons"
        conditions, params = _person_conditions(start, end, track_id, zone_id, min_confidence, alias="x")
    join = ""
    if source is not None:
        join = (
            "JOIN pose_frames f ON f.ts = x.ts AND f.frame_id = x.frame_id AND f.ts >= ? AND f.ts < ? AND f.source = ?"
        )
        params = [start, end, source, *params]
    return f"SELECT DISTINCT x.ts, x.frame_id FROM {table} x {join} WHERE {' AND '.join(conditions)}", params


def person_summary(con: duckdb.DuckDBPyConnection, track_id: int) -> PersonSummary | None:
    """First/last seen, frames, mean confidence, activities and current zones of a track (None if unknown)."""
    row = con.execute(
        "SELECT first_seen, last_seen, frames, sum_confidence, last_x, last_y FROM tracks WHERE track_id = ?",
        [track_id],
    ).fetchone()
    if row is None:
        return None
    first, last, frames, sum_conf, lx, ly = row
    activities = con.execute(
        "SELECT activity, count(*) FROM pose_persons WHERE ts >= ? AND ts <= ? AND track_id = ? "
        "AND activity IS NOT NULL GROUP BY activity ORDER BY activity",
        [first, last, track_id],
    ).fetchall()
    zones = con.execute(
        "SELECT zone_id FROM person_zones WHERE ts = ? AND track_id = ? ORDER BY zone_id", [last, track_id]
    ).fetchall()
    return PersonSummary(
        track_id=track_id,
        first_seen=first,
        last_seen=last,
        frames=frames,
        average_confidence=sum_conf / frames if frames else 0.0,
        activities={a: int(n) for a, n in activities},
        current_zone_ids=[z for (z,) in zones],
        last_position=None if lx is None or ly is None else (lx, ly),
    )


def _track_range(
    con: duckdb.DuckDBPyConnection, track_id: int, start: float | None, end: float | None
) -> tuple[float, float] | None:
    if start is not None and end is not None:
        return start, end
    row = con.execute("SELECT first_seen, last_seen FROM tracks WHERE track_id = ?", [track_id]).fetchone()
    if row is None:
        return None
    return (row[0] if start is None else start), (float(np.nextafter(row[1], np.inf)) if end is None else end)


def trajectory_arrays(
    con: duckdb.DuckDBPyConnection,
    track_id: int,
    start: float | None = None,
    end: float | None = None,
    *,
    bucket_s: float | None = None,
) -> dict[str, np.ndarray]:
    """Floor positions of one track as numpy columns ``timestamp, x, y`` in time order.

    Without start/end the whole track (bounds from the tracks table). ``bucket_s`` averages positions per
    time bucket (timestamp = mean time of the bucket) to thin long tracks. Unlocalized frames are skipped.
    """
    bounds = _track_range(con, track_id, start, end)
    empty = {"timestamp": np.empty(0), "x": np.empty(0, np.float32), "y": np.empty(0, np.float32)}
    if bounds is None:
        return empty
    lo, hi = bounds
    _check_range(lo, hi)
    base = "FROM pose_persons WHERE ts >= ? AND ts < ? AND track_id = ? AND x IS NOT NULL AND y IS NOT NULL"
    if bucket_s is None:
        rel = con.execute(f"SELECT ts AS timestamp, x, y {base} ORDER BY ts", [lo, hi, track_id])
    else:
        if bucket_s <= 0:
            raise ValueError("bucket_s must be > 0")
        rel = con.execute(
            f"SELECT avg(ts) AS timestamp, avg(x)::FLOAT AS x, avg(y)::FLOAT AS y {base} "
            "GROUP BY floor((ts - ?) / ?) ORDER BY 1",
            [lo, hi, track_id, lo, bucket_s],
        )
    cols = rel.fetchnumpy()
    return {k: np.asarray(cols[k]) for k in ("timestamp", "x", "y")}


def trajectory(
    con: duckdb.DuckDBPyConnection,
    track_id: int,
    start: float | None = None,
    end: float | None = None,
    *,
    bucket_s: float | None = None,
) -> list[TrajectoryPoint]:
    cols = trajectory_arrays(con, track_id, start, end, bucket_s=bucket_s)
    return [
        TrajectoryPoint(timestamp=t, x=x, y=y)
        for t, x, y in zip(cols["timestamp"].tolist(), cols["x"].tolist(), cols["y"].tolist(), strict=True)
    ]


def occupancy_heatmap(
    con: duckdb.DuckDBPyConnection,
    grid: FloorGrid,
    start: float,
    end: float,
    *,
    zone_id: str | None = None,
    track_id: int | None = None,
) -> np.ndarray:
    """Person-frames per floor cell, shape (ny, nx), int64, counted in SQL; off-grid points are dropped."""
    _check_range(start, end)
    if grid.cell_m <= 0 or grid.nx < 1 or grid.ny < 1:
        raise ValueError("grid needs cell_m > 0 and nx, ny >= 1")
    where, params = _person_conditions(start, end, track_id, zone_id, None)
    # cell indices stay DOUBLE until the grid bounds have dropped off-grid points: a far-off position over a
    # small cell would overflow BIGINT (and NaN fails every comparison)
    rows = con.execute(
        "SELECT ix::BIGINT AS ix, iy::BIGINT AS iy, count(*) AS n FROM ("
        "  SELECT floor((p.x - ?) / ?) AS ix, floor((p.y - ?) / ?) AS iy FROM pose_persons p"
        f"  WHERE {' AND '.join(where)} AND p.x IS NOT NULL AND p.y IS NOT NULL"
        ") AS c WHERE ix >= 0 AND ix < ? AND iy >= 0 AND iy < ? GROUP BY ix, iy",
        [grid.x0, grid.cell_m, grid.y0, grid.cell_m, *params, grid.nx, grid.ny],
    ).fetchnumpy()
    counts = np.zeros((grid.ny, grid.nx), dtype=np.int64)
    if len(rows["ix"]):
        counts[np.asarray(rows["iy"]), np.asarray(rows["ix"])] = np.asarray(rows["n"])
    return counts


def heatmap(
    con: duckdb.DuckDBPyConnection,
    grid: FloorGrid,
    start: float,
    end: float,
    *,
    zone_id: str | None = None,
    track_id: int | None = None,
) -> Heatmap:
    counts = occupancy_heatmap(con, grid, start, end, zone_id=zone_id, track_id=track_id)
    return Heatmap(grid=grid, start=start, end=end, counts=counts.tolist())


def events(
    con: duckdb.DuckDBPyConnection,
    start: float,
    end: float,
    *,
    types: Sequence[str] | None = None,
    track_id: int | None = None,
    zone_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
    newest_first: bool = False,
) -> list[Event]:
    """Events in ``[start, end)`` filtered by type names, track and zone; decoded to their Structs."""
    _check_range(start, end)
    _check_page(limit, offset)
    where = ["ts >= ?", "ts < ?"]
    params: list[Any] = [start, end]
    if types is not None:
        if not types:
            return []
        where.append(f"type IN ({', '.join('?' * len(types))})")
        params += list(types)
    if track_id is not None:
        where.append("track_id = ?")
        params.append(track_id)
    if zone_id is not None:
        where.append("zone_id = ?")
        params.append(zone_id)
    order = "DESC" if newest_first else "ASC"
    rows = con.execute(
        f"SELECT payload FROM events WHERE {' AND '.join(where)} ORDER BY ts {order}, event_id {order} "
        "LIMIT ? OFFSET ?",
        params + [limit, offset],
    ).fetchall()
    return [EVENT_JSON.decode(payload) for (payload,) in rows]


def zone_occupancy_series(
    con: duckdb.DuckDBPyConnection, zone_id: str, start: float, end: float, bucket_s: float
) -> list[OccupancyBucket]:
    """Mean and max persons in a zone per time bucket; frames with nobody in the zone count as 0."""
    _check_range(start, end)
    if bucket_s <= 0:
        raise ValueError("bucket_s must be > 0")
    rows = con.execute(
        """
        WITH f AS (
            SELECT floor((ts - $start) / $bucket)::BIGINT AS b, count(*) AS n FROM pose_frames
            WHERE ts >= $start AND ts < $end GROUP BY b
        ), o AS (
            SELECT floor((ts - $start) / $bucket)::BIGINT AS b, sum(count) AS s, max(count) AS m
            FROM zone_occupancy WHERE ts >= $start AND ts < $end AND zone_id = $zone GROUP BY b
        )
        SELECT f.b, f.n, coalesce(o.s, 0)::DOUBLE / f.n, coalesce(o.m, 0) FROM f LEFT JOIN o USING (b) ORDER BY f.b
        """,
        {"start": start, "end": end, "bucket": bucket_s, "zone": zone_id},
    ).fetchall()
    return [
        OccupancyBucket(start=start + b * bucket_s, frames=int(n), mean=float(mean), max=int(mx))
        for b, n, mean, mx in rows
    ]


def latest_frame(con: duckdb.DuckDBPyConnection) -> PoseFrame | None:
    """The most recent stored frame (REST pose/current falls back to it when the engine is idle)."""
    row = con.execute("SELECT ts, frame_id FROM pose_frames ORDER BY ts DESC, frame_id DESC LIMIT 1").fetchone()
    if row is None:
        return None
    page = pose_history(con, row[0], float(np.nextafter(row[0], np.inf)), limit=MAX_PAGE)  # frames at ts
    return next((f for f in page if f.frame_id == row[1]), None)


__all__ = [
    "MAX_PAGE",
    "N_KEYPOINTS",
    "count_history",
    "events",
    "heatmap",
    "latest_frame",
    "occupancy_heatmap",
    "person_summary",
    "pose_history",
    "trajectory",
    "trajectory_arrays",
    "zone_occupancy_series",
]
