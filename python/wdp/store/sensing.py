"""Sensing history: SensingStates (one per router and per zone per second) appended in batches, read back by
time range, router or zone.

Appends register numpy columns and run one ``INSERT ... SELECT`` (never per-row inserts), inside one
transaction per batch: a crash mid-write leaves whole batches only. Time ranges are half-open
``[start, end)`` in epoch seconds; a router's rows have ``router_id`` set, a zone's ``zone_id``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import numpy as np

from wdp.schemas import SensingState
from wdp.store.connection import transaction

MAX_PAGE = 1000
_COLUMNS = (
    "ts",
    "router_id",
    "zone_id",
    "source",
    "motion",
    "motion_score",
    "threshold",
    "presence",
    "still",
    "breathing_bpm",
    "breathing_confidence",
    "calibration",
    "packet_rate",
)
_SELECT = ", ".join(_COLUMNS)


def append_rows(con: duckdb.DuckDBPyConnection, states: Sequence[SensingState]) -> int:
    """Insert states (no transaction of its own)."""
    if not states:
        return 0
    columns = {
        "ts": np.array([s.timestamp for s in states], np.float64),
        "router_id": np.array([s.router_id for s in states], object),
        "zone_id": np.array([s.zone_id for s in states], object),
        "source": np.array([s.source for s in states], object),
        "motion": np.array([s.motion for s in states], np.bool_),
        "motion_score": np.array([s.motion_score for s in states], np.float64),
        "threshold": np.array([s.threshold for s in states], np.float64),
        "presence": np.array([s.presence for s in states], np.bool_),
        "still": np.array([s.still for s in states], np.bool_),
        # NaN reads as NULL in DuckDB's numpy scan: no rate
        "breathing_bpm": np.array([np.nan if s.breathing_bpm is None else s.breathing_bpm for s in states], np.float64),
        "breathing_confidence": np.array([s.breathing_confidence for s in states], np.float64),
        "calibration": np.array([s.calibration for s in states], object),
        "packet_rate": np.array([s.packet_rate for s in states], np.float64),
    }
    con.register("_wdp_sensing", columns)
    try:
        con.execute(f"INSERT INTO sensing_states SELECT {_SELECT} FROM _wdp_sensing")
    finally:
        con.unregister("_wdp_sensing")
    return len(states)


def append_states(con: duckdb.DuckDBPyConnection, states: Sequence[SensingState]) -> int:
    """Insert a batch of states in one transaction."""
    with transaction(con):
        return append_rows(con, states)


def _state(row: tuple[Any, ...]) -> SensingState:
    ts, rid, zid, source, motion, score, threshold, presence, still, bpm, conf, calibration, rate = row
    return SensingState(
        timestamp=ts,
        router_id=rid,
        zone_id=zid,
        source=source,
        motion=motion,
        motion_score=score,
        threshold=threshold,
        presence=presence,
        still=still,
        breathing_bpm=None if bpm is None or bpm != bpm else bpm,
        breathing_confidence=conf,
        calibration=calibration,
        packet_rate=rate,
    )


def history(
    con: duckdb.DuckDBPyConnection,
    start: float,
    end: float,
    *,
    router_id: str | None = None,
    zone_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
    newest_first: bool = False,
) -> list[SensingState]:
    """States in ``[start, end)``, of one router or one zone when given, in time order."""
    if not end >= start:
        raise ValueError(f"end ({end}) must not be before start ({start})")
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be in 1..{MAX_PAGE}, got {limit}")
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    where = ["ts >= ?", "ts < ?"]
    params: list[Any] = [start, end]
    if router_id is not None:
        where.append("router_id = ?")
        params.append(router_id)
    if zone_id is not None:
        where.append("zone_id = ?")
        params.append(zone_id)
    order = "DESC" if newest_first else "ASC"
    rows = con.execute(
        f"SELECT {_SELECT} FROM sensing_states WHERE {' AND '.join(where)} "
        f"ORDER BY ts {order}, router_id {order} NULLS LAST, zone_id {order} NULLS LAST LIMIT ? OFFSET ?",
        params + [limit, offset],
    ).fetchall()
    return [_state(r) for r in rows]


def count(
    con: duckdb.DuckDBPyConnection,
    start: float,
    end: float,
    *,
    router_id: str | None = None,
    zone_id: str | None = None,
) -> int:
    where = ["ts >= ?", "ts < ?"]
    params: list[Any] = [start, end]
    for column, value in (("router_id", router_id), ("zone_id", zone_id)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    row = con.execute(f"SELECT count(*) FROM sensing_states WHERE {' AND '.join(where)}", params).fetchone()
    return int(row[0]) if row else 0


def latest(con: duckdb.DuckDBPyConnection) -> list[SensingState]:
    """The most recent stored state of every router and every zone (routers first)."""
    rows = con.execute(
        f"SELECT {_SELECT} FROM (SELECT *, row_number() OVER (PARTITION BY router_id, zone_id ORDER BY ts DESC) "
        "AS rn FROM sensing_states) AS s WHERE rn = 1 ORDER BY router_id IS NULL, router_id, zone_id"
    ).fetchall()
    return [_state(r) for r in rows]
