"""Retention (one transaction over every history table) and Parquet/CSV export read back with DuckDB."""

from __future__ import annotations

import csv

import duckdb
import msgspec
import pytest
from _store_frames import make_frames

from wdp.schemas import PersonDetected, SystemStarted, WebhookSubscription
from wdp.store import Store, events, export, outbox, queries, retention

DAY = 86400.0
NOW = 1_700_000_000.0


def _populate(store: Store) -> tuple[list, list]:
    # 4 frames per day for 10 days, newest at NOW - 0.5 day
    frames = []
    for d in range(10):
        for k, f in enumerate(make_frames(4, seed=d, t0=NOW - (d + 0.5) * DAY)):
            frames.append(msgspec.structs.replace(f, frame_id=d * 10 + k))
    frames.sort(key=lambda f: f.timestamp)
    evs = [PersonDetected(timestamp=NOW - (d + 0.5) * DAY, track_id=1, confidence=0.9) for d in range(10)]
    with store.writer() as w:
        for f in frames:
            w.append(f)
    con = store.cursor()
    events.append_events(con, evs)
    sub = WebhookSubscription(id="s", url="http://x", events=["*"])
    ids = outbox.enqueue(con, evs, [sub], now=NOW - 9 * DAY)
    for item in outbox.claim_due(con, now=NOW - 9 * DAY, limit=5):  # 5 delivered, 5 still pending
        outbox.mark_result(con, item.delivery_id, item.attempts, ok=True, now=NOW - 9 * DAY)
    assert len(ids) == 10
    return frames, evs


def test_delete_older_than(tmp_path):
    with Store(tmp_path / "r.duckdb") as store:
        frames, evs = _populate(store)
        con = store.cursor()
        deleted = retention.delete_older_than(con, 3, now=NOW, checkpoint=True)
        keep = [f for f in frames if f.timestamp >= NOW - 3 * DAY]
        assert len(keep) == 12
        assert deleted["pose_frames"] == len(frames) - len(keep)
        n_persons = sum(len(f.persons) for f in frames) - sum(len(f.persons) for f in keep)
        assert deleted["pose_persons"] == n_persons
        assert deleted["events"] == 7 and deleted["delivery_log"] == 5
        assert deleted["outbox"] == 5  # delivered ones only; pending deliveries survive retention
        assert queries.pose_history(con, 0, 2e9, limit=1000) == keep
        assert queries.events(con, 0, 2e9) == sorted(
            [e for e in evs if e.timestamp >= NOW - 3 * DAY], key=lambda e: e.timestamp
        )
        assert con.execute("SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone() == (5,)
        assert con.execute("SELECT min(ts) FROM person_zones").fetchone()[0] >= NOW - 3 * DAY
        assert con.execute("SELECT min(ts) FROM zone_occupancy").fetchone()[0] >= NOW - 3 * DAY
        # tracks 1..3 were seen within the last 3 days, so their summaries stay
        assert con.execute("SELECT count(*) FROM tracks").fetchone()[0] > 0
        assert retention.delete_older_than(con, 3, now=NOW)["pose_frames"] == 0
        with pytest.raises(ValueError):
            retention.delete_older_than(con, -1)


def test_retention_is_all_or_nothing(tmp_path):
    with Store(tmp_path / "r.duckdb") as store:
        frames, _ = _populate(store)
        con = store.cursor()
        con.execute("ALTER TABLE events RENAME TO events_away")
        with pytest.raises(duckdb.CatalogException):
            retention.delete_older_than(con, 3, now=NOW)
        con.execute("ALTER TABLE events_away RENAME TO events")
        assert con.execute("SELECT count(*) FROM pose_frames").fetchone() == (len(frames),)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_export_persons_reads_back(tmp_path, fmt):
    frames = make_frames(120, n_tracks=3, seed=8, t0=NOW)
    with Store() as store:
        with store.writer() as w:
            for f in frames:
                w.append(f)
        con = store.cursor()
        path = tmp_path / f"persons.{fmt}"
        start, end = frames[20].timestamp, frames[100].timestamp
        n = export.export(con, path, "persons", start=start, end=end, track_id=2, zone_id="zone_a")
        want = [
            (f.timestamp, f.frame_id, p)
            for f in frames[20:100]
            for p in f.persons
            if p.track_id == 2 and "zone_a" in p.zone_ids
        ]
        assert n == len(want) > 0
        reader = "read_parquet" if fmt == "parquet" else "read_csv"
        rows = duckdb.sql(
            f"SELECT epoch(time), ts, frame_id, track_id, confidence, keypoints FROM {reader}('{path}') ORDER BY ts"
        ).fetchall()
        assert [(r[1], r[2], r[3]) for r in rows] == [(t, fid, p.track_id) for t, fid, p in want]
        for (t_time, ts, _, _, conf, kp), (_, _, p) in zip(rows, want, strict=True):
            assert t_time == pytest.approx(ts, abs=1e-6)
            assert conf == pytest.approx(p.confidence, rel=1e-6)
            flat = [float(v) for v in (kp if fmt == "parquet" else kp.strip("[]").split(","))]
            assert flat == pytest.approx([v for k in p.keypoints for v in k], rel=1e-6)
        if fmt == "csv":
            with path.open() as fh:
                header = next(csv.reader(fh))
            assert header[:4] == ["time", "ts", "frame_id", "track_id"]


def test_export_frames_and_events(tmp_path):
    frames = make_frames(30, seed=9, t0=NOW)
    evs = [
        SystemStarted(timestamp=NOW, version="1", source="replay"),
        PersonDetected(timestamp=NOW + 1, track_id=1, confidence=0.5, zone_id="zone_a"),
    ]
    with Store() as store:
        with store.writer() as w:
            for f in frames:
                w.append(f)
        con = store.cursor()
        events.append_events(con, evs)
        assert export.export(con, tmp_path / "f.parquet", "frames") == 30
        got = duckdb.sql(
            f"SELECT frame_id, source, router_ids FROM read_parquet('{tmp_path / 'f.parquet'}') ORDER BY ts"
        ).fetchall()
        assert got == [(f.frame_id, f.source, f.router_ids) for f in frames]
        assert export.export(con, tmp_path / "e.csv", "events", zone_id="zone_a") == 1
        assert export.export(con, tmp_path / "o.parquet", "zone_occupancy", zone_id="zone_b") > 0
        with pytest.raises(ValueError):
            export.export(con, tmp_path / "x.json", "frames")
        with pytest.raises(ValueError):
            export.export(con, tmp_path / "x.csv", "frames", track_id=1)
