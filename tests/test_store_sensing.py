"""Sensing history: batched appends round-trip, filters by time, router and zone, latest per key, whole
batches only after a failed write, retention."""

from __future__ import annotations

import duckdb
import psycopg
import pytest

from wdp.schemas import SensingState
from wdp.store import retention
from wdp.store import sensing as store_sensing
from wdp.store.postgres import open_store

T0 = 1_700_000_000.0


def _states(n: int = 20) -> list[SensingState]:
    out = []
    for i in range(n):
        for rid, zid in (("r1", None), ("r2", None), (None, "room")):
            out.append(
                SensingState(
                    timestamp=T0 + i,
                    router_id=rid,
                    zone_id=zid,
                    source="replay",
                    motion=5 <= i < 10,
                    motion_score=12.5 if 5 <= i < 10 else 1.25,
                    threshold=4.0,
                    presence=i >= 5,
                    still=i >= 12,
                    breathing_bpm=16.5 if i >= 15 else None,
                    breathing_confidence=0.75 if i >= 15 else 0.0,
                    calibration="calibrating" if i < 3 else "auto",
                    packet_rate=50.0,
                )
            )
    return out


@pytest.fixture
def con(store_backend):
    with open_store(store_backend) as store:
        yield store.cursor()


def test_round_trip_and_filters(con: duckdb.DuckDBPyConnection) -> None:
    states = _states()
    assert store_sensing.append_states(con, states) == len(states)
    assert store_sensing.history(con, T0, T0 + 100, limit=1000) == states
    r1 = [s for s in states if s.router_id == "r1"]
    assert store_sensing.history(con, T0, T0 + 100, router_id="r1", limit=1000) == r1
    room = [s for s in states if s.zone_id == "room"]
    assert store_sensing.history(con, T0, T0 + 100, zone_id="room", limit=1000) == room
    assert store_sensing.history(con, T0 + 5, T0 + 7, zone_id="room") == room[5:7]  # half-open range
    assert store_sensing.history(con, T0, T0 + 100, router_id="r1", limit=3, offset=2) == r1[2:5]
    assert store_sensing.history(con, T0, T0 + 100, router_id="r1", limit=2, newest_first=True) == r1[::-1][:2]
    assert store_sensing.count(con, T0, T0 + 100, zone_id="room") == len(room)
    assert store_sensing.latest(con) == [r1[-1], states[-2], room[-1]]
    for bad in (
        dict(start=T0 + 1, end=T0),
        dict(start=T0, end=T0 + 1, limit=0),
        dict(start=T0, end=T0 + 1, limit=1001),
    ):
        with pytest.raises(ValueError):
            store_sensing.history(con, **bad)


def test_a_failed_batch_leaves_nothing_half_written(con: duckdb.DuckDBPyConnection) -> None:
    good = _states(5)
    store_sensing.append_states(con, good)
    broken = [*_states(3), SensingState(timestamp=T0 + 50, motion=False, motion_score=float("nan"), presence=False)]
    with pytest.raises((duckdb.Error, psycopg.Error)):  # NaN reads as NULL: the NOT NULL column refuses the whole batch
        store_sensing.append_states(con, broken)
    assert store_sensing.history(con, T0, T0 + 100, limit=1000) == good


def test_retention_deletes_old_states(con: duckdb.DuckDBPyConnection) -> None:
    store_sensing.append_states(con, _states())
    deleted = retention.delete_older_than(con, 0, now=T0 + 10)
    assert deleted["sensing_states"] == 30
    assert store_sensing.history(con, T0, T0 + 100, limit=1000)[0].timestamp == T0 + 10
