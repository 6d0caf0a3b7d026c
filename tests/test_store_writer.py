"""PoseWriter: exact round trips, flush triggers, columnar appends, bad input, threads."""

from __future__ import annotations

import threading

import duckdb
import msgspec
import numpy as np
import psycopg
import pytest
from _store_frames import make_frames

from wdp.schemas import Person, PoseFrame
from wdp.store import PoseWriter, Store, queries
from wdp.store.postgres import open_store


@pytest.fixture()
def store(store_backend):
    with open_store(store_backend) as s:
        yield s


def _count(store: Store, table: str) -> int:
    return store.cursor().execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def test_round_trip_is_exact(store):
    frames = make_frames(200, n_tracks=4, seed=1)
    with store.writer(max_frames=64) as w:
        for f in frames:
            w.append(f)
    con = store.cursor()
    got = queries.pose_history(con, frames[0].timestamp, frames[-1].timestamp + 1, limit=1000)
    assert got == frames
    assert _count(store, "pose_persons") == sum(len(f.persons) for f in frames)
    assert _count(store, "person_zones") == sum(len(p.zone_ids) for f in frames for p in f.persons)


def test_flushes_on_size_and_interval():
    clock = [0.0]
    with Store() as store:
        w = PoseWriter(
            store.new_cursor(), max_frames=10, flush_interval_s=2.0, clock=lambda: clock[0], owns_connection=True
        )
        frames = make_frames(25)
        flushed = [w.append(f) for f in frames[:10]]
        assert flushed == [False] * 9 + [True]  # the 10th frame filled the batch
        assert _count(store, "pose_frames") == 10 and w.pending_frames == 0
        w.append(frames[10])
        clock[0] = 1.9
        assert not w.flush_if_due() and _count(store, "pose_frames") == 10
        clock[0] = 2.0
        assert w.flush_if_due() and _count(store, "pose_frames") == 11
        clock[0] = 3.0
        w.append(frames[11])  # oldest buffered frame is 0 s old: no flush
        clock[0] = 5.5
        assert w.append(frames[12])  # oldest is now 2.5 s old: this append flushes
        assert _count(store, "pose_frames") == 13
        assert w.stats.flushes == 3 and w.stats.frames_flushed == 13
        w.close()
        assert w.pending_frames == 0


def test_autoflush_thread_flushes_idle_buffer(store):
    w = store.writer(max_frames=1000, flush_interval_s=0.05, autoflush=True)
    w.append(make_frames(1)[0])
    for _ in range(200):
        if _count(store, "pose_frames") == 1:
            break
        threading.Event().wait(0.01)
    assert _count(store, "pose_frames") == 1
    w.close()


def test_append_arrays_matches_append(store):
    frames = make_frames(50, n_tracks=3, seed=2)
    persons = [p for f in frames for p in f.persons]
    with store.writer() as w:
        w.append_arrays(
            frame_id=[f.frame_id for f in frames],
            timestamp=[f.timestamp for f in frames],
            n_persons=[len(f.persons) for f in frames],
            source="simulator",
            track_id=np.array([p.track_id for p in persons]),
            confidence=np.array([p.confidence for p in persons]),
            keypoints=np.array([p.keypoints for p in persons]),
            box=np.array([p.box for p in persons]),
            position=np.array([p.position or (np.nan, np.nan) for p in persons]),
            activity=[p.activity for p in persons],
            zone_ids=[p.zone_ids for p in persons],
            latency_ms=[f.latency_ms for f in frames],
            router_ids=["r1", "r2"],
        )
    got = queries.pose_history(store.cursor(), 0, 2e9, limit=1000)
    assert got == frames


def test_frames_without_persons_and_routers(store):
    empty = PoseFrame(frame_id=7, timestamp=5.0, source="live")
    with store.writer() as w:
        w.append(empty)
    assert queries.pose_history(store.cursor(), 0, 10) == [empty]
    assert _count(store, "tracks") == 0


def test_malformed_person_is_rejected_without_poisoning_the_batch(store):
    good = make_frames(3)
    bad_kp = PoseFrame(
        frame_id=99,
        timestamp=good[0].timestamp,
        source="live",
        persons=[Person(track_id=1, keypoints=[[0.0, 0.0, 1.0]] * 16, box=(0, 0, 1, 1), confidence=1.0)],
    )
    bad_box = PoseFrame(
        frame_id=98,
        timestamp=good[0].timestamp,
        source="live",
        persons=[Person(track_id=1, keypoints=[[0.0, 0.0, 1.0]] * 17, box=(0, 0, 1), confidence=1.0)],
    )  # type: ignore[arg-type]
    with store.writer() as w:
        w.append(good[0])
        for bad in (bad_kp, bad_box):
            with pytest.raises(ValueError):
                w.append(bad)
        w.append(good[1])
        w.append(good[2])
    assert queries.pose_history(store.cursor(), 0, 2e9) == good
    short = [[0.0, 0.0, 1.0]] * 16 + [[0.0, 0.0]]
    short_kp = PoseFrame(
        frame_id=97,
        timestamp=good[0].timestamp,
        source="live",
        persons=[Person(track_id=1, keypoints=short, box=(0, 0, 1, 1), confidence=1.0)],
    )  # type: ignore[arg-type]
    with store.writer() as w:
        with pytest.raises(ValueError):
            w.append(short_kp)
        assert w.pending_frames == 0
    with store.writer() as w, pytest.raises(ValueError):
        w.append_arrays(
            frame_id=[1],
            timestamp=[1.0],
            n_persons=[2],
            source="live",
            track_id=np.array([1]),
            confidence=np.array([1.0]),
            keypoints=np.zeros((1, 17, 3)),
            box=np.zeros((1, 4)),
        )


def test_non_numeric_values_drop_only_their_frame(store):
    good = make_frames(6, seed=2)
    p = good[2].persons[0]
    bad = msgspec.structs.replace(
        good[2], persons=[msgspec.structs.replace(p, keypoints=[["x", 0.0, 1.0]] + list(p.keypoints[1:]))]
    )
    with store.writer() as w:
        for f in [*good[:2], bad, *good[3:]]:
            w.append(f)
        assert w.flush() == 5
        assert w.stats.frames_rejected == 1
    assert queries.pose_history(store.cursor(), 0, 2e9) == good[:2] + good[3:]
    kept = good[:2] + good[3:]
    assert _count(store, "person_zones") == sum(len(q.zone_ids) for f in kept for q in f.persons)


def test_failed_flush_keeps_batch_for_retry(store):
    frames = make_frames(5)
    w = store.writer(max_frames=100)
    for f in frames:
        w.append(f)
    store.cursor().execute("ALTER TABLE pose_frames RENAME TO pose_frames_away")
    with pytest.raises((duckdb.CatalogException, psycopg.errors.UndefinedTable), match="pose_frames"):
        w.flush()
    assert w.pending_frames == 5 and w.stats.flush_errors == 1
    assert _count(store, "pose_persons") == 0  # the whole batch rolled back
    store.cursor().execute("ALTER TABLE pose_frames_away RENAME TO pose_frames")
    assert w.flush() == 5
    assert queries.pose_history(store.cursor(), 0, 2e9) == frames
    w.close()


def test_tracks_summary_accumulates_across_flushes(store):
    frames = make_frames(90, n_tracks=2, seed=3)
    with store.writer(max_frames=7) as w:
        for f in frames:
            w.append(f)
    rows = (
        store.cursor()
        .execute(
            "SELECT track_id, first_seen, last_seen, frames, sum_confidence, last_x, last_y FROM tracks ORDER BY 1"
        )
        .fetchall()
    )
    for tid, first, last, n, sum_conf, lx, ly in rows:
        seen = [(f.timestamp, p) for f in frames for p in f.persons if p.track_id == tid]
        assert (first, last, n) == (seen[0][0], seen[-1][0], len(seen))
        assert sum_conf == pytest.approx(sum(p.confidence for _, p in seen), rel=1e-6)
        last_pos = seen[-1][1].position
        assert (lx, ly) == (last_pos if last_pos is not None else (None, None))


def test_concurrent_writers_and_readers(tmp_path):
    frames = make_frames(400, n_tracks=2, seed=5)
    with Store(tmp_path / "t.duckdb") as store:
        w = store.writer(max_frames=25)
        errors: list[BaseException] = []
        stop = threading.Event()

        def produce(part: list[PoseFrame]) -> None:
            try:
                for f in part:
                    w.append(f)
            except BaseException as e:
                errors.append(e)

        def read() -> None:
            try:
                con = store.cursor()  # this thread's own connection
                while not stop.is_set():
                    page = queries.pose_history(con, 0, 2e9, limit=50)
                    assert all(len(f.persons) <= 2 for f in page)
            except BaseException as e:
                errors.append(e)

        producers = [threading.Thread(target=produce, args=(frames[i::2],)) for i in range(2)]
        reader = threading.Thread(target=read)
        reader.start()
        for t in producers:
            t.start()
        for t in producers:
            t.join()
        w.close()
        stop.set()
        reader.join()
        assert not errors
        assert queries.pose_history(store.cursor(), 0, 2e9, limit=1000) == frames


def test_closed_store_closes_its_writers(tmp_path):
    path = tmp_path / "c.duckdb"
    frames = make_frames(10)
    store = Store(path).open()
    w = store.writer(max_frames=1000)
    for f in frames:
        w.append(f)
    store.close()  # flushes the writer
    with pytest.raises(RuntimeError):
        w.append(frames[0])
    with Store(path) as again:
        assert queries.pose_history(again.cursor(), 0, 2e9) == frames
