"""History queries against answers computed in Python from the frames that were written."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest
from _store_frames import make_frames

from wdp.schemas import (
    AlertHighOccupancy,
    FloorGrid,
    PersonEnteredZone,
    PersonFallDetected,
    PersonLeftZone,
    PoseFrame,
    RouterConnected,
    SystemStarted,
)
from wdp.store import Store, events, queries
from wdp.store.postgres import open_store

FPS = 30.0
T0 = 1_700_000_000.0


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def history(request):
    frames = make_frames(600, n_tracks=4, seed=11, fps=FPS, t0=T0)
    target = ":memory:" if request.param == "duckdb" else request.getfixturevalue("postgres").fresh_database()
    with open_store(target) as store:
        with store.writer(max_frames=128) as w:
            for f in frames:
                w.append(f)
        yield store, frames


def _filtered(frames, *, track_id=None, zone_id=None, min_confidence=None):
    out = []
    for f in frames:
        persons = [
            p
            for p in f.persons
            if (track_id is None or p.track_id == track_id)
            and (zone_id is None or zone_id in p.zone_ids)
            and (min_confidence is None or p.confidence >= min_confidence)
        ]
        if persons:
            out.append(msgspec.structs.replace(f, persons=persons))
    return out


def test_time_range_is_half_open(history):
    store, frames = history
    con = store.cursor()
    got = queries.pose_history(con, frames[10].timestamp, frames[20].timestamp, limit=1000)
    assert got == frames[10:20]
    assert queries.count_history(con, frames[10].timestamp, frames[20].timestamp) == 10
    assert queries.pose_history(con, T0 - 10, T0 - 5) == []
    with pytest.raises(ValueError):
        queries.pose_history(con, 10.0, 5.0)


@pytest.mark.parametrize(
    "filters",
    [
        {"track_id": 2},
        {"zone_id": "zone_a"},
        {"min_confidence": 0.8},
        {"track_id": 3, "zone_id": "zone_b"},
        {"track_id": 1, "zone_id": "zone_a", "min_confidence": 0.7},
        {"zone_id": "nowhere"},
    ],
)
def test_person_filters(history, filters):
    store, frames = history
    con = store.cursor()
    want = _filtered(frames, **filters)
    got = queries.pose_history(con, T0, T0 + 100, limit=1000, **filters)
    assert got == want
    assert queries.count_history(con, T0, T0 + 100, **filters) == len(want)


def test_pagination_walks_every_frame_once(history):
    store, frames = history
    con = store.cursor()
    for filters, want in (({}, frames), ({"track_id": 4}, _filtered(frames, track_id=4))):
        pages, offset = [], 0
        while page := queries.pose_history(con, T0, T0 + 100, limit=37, offset=offset, **filters):
            assert len(page) <= 37
            pages += page
            offset += len(page)
        assert pages == want
    with pytest.raises(ValueError):
        queries.pose_history(con, T0, T0 + 1, limit=1001)
    with pytest.raises(ValueError):
        queries.pose_history(con, T0, T0 + 1, limit=10, offset=-1)


def test_pages_split_frames_sharing_a_timestamp():
    # Three sources can stamp the same instant: pages must neither repeat nor skip tied frames.
    base = make_frames(60, n_tracks=2, seed=3)
    frames = [msgspec.structs.replace(f, timestamp=T0 + (i // 3) * 0.1) for i, f in enumerate(base)]
    with Store() as store:
        with store.writer() as w:
            for f in frames:
                w.append(f)
        con = store.cursor()
        for filters, want in (({}, frames), ({"track_id": 2}, _filtered(frames, track_id=2))):
            got, offset = [], 0
            while page := queries.pose_history(con, T0, T0 + 10, limit=4, offset=offset, **filters):
                got += page
                offset += 4
            assert got == want


def test_source_filter_tells_simulated_from_live():
    sim = make_frames(10, seed=1, source="simulator")
    live = make_frames(10, seed=2, source="live", t0=T0 + 0.01, first_id=10)
    with Store() as store:
        with store.writer() as w:
            for f in sorted(sim + live, key=lambda f: f.timestamp):
                w.append(f)
        con = store.cursor()
        assert queries.pose_history(con, 0, 2e9, source="live", limit=100) == live
        assert queries.count_history(con, 0, 2e9, source="live") == 10
        want = _filtered(sim, track_id=1)
        assert queries.pose_history(con, 0, 2e9, source="simulator", track_id=1, limit=100) == want
        assert queries.count_history(con, 0, 2e9, source="simulator", track_id=1) == len(want)
        want = _filtered(live, zone_id="zone_a", track_id=2)
        assert queries.pose_history(con, 0, 2e9, source="live", zone_id="zone_a", track_id=2) == want
        assert queries.count_history(con, 0, 2e9, source="live", zone_id="zone_a", track_id=2) == len(want)


def test_person_summary(history):
    store, frames = history
    con = store.cursor()
    for tid in (1, 2, 3, 4):
        seen = [(f.timestamp, p) for f in frames for p in f.persons if p.track_id == tid]
        s = queries.person_summary(con, tid)
        assert s is not None
        assert (s.first_seen, s.last_seen, s.frames) == (seen[0][0], seen[-1][0], len(seen))
        assert s.average_confidence == pytest.approx(np.mean([p.confidence for _, p in seen]), rel=1e-6)
        acts: dict[str, int] = {}
        for _, p in seen:
            if p.activity is not None:
                acts[p.activity] = acts.get(p.activity, 0) + 1
        assert s.activities == acts
        assert s.current_zone_ids == seen[-1][1].zone_ids
        assert s.last_position == seen[-1][1].position
    assert queries.person_summary(con, 999) is None


def test_trajectory(history):
    store, frames = history
    con = store.cursor()
    want = [(f.timestamp, *p.position) for f in frames for p in f.persons if p.track_id == 2 and p.position is not None]
    got = queries.trajectory(con, 2)
    assert [(p.timestamp, p.x, p.y) for p in got] == want
    window = queries.trajectory(con, 2, frames[100].timestamp, frames[200].timestamp)
    lo, hi = frames[100].timestamp, frames[200].timestamp
    assert [(p.timestamp, p.x, p.y) for p in window] == [w for w in want if lo <= w[0] < hi]
    # 1 s buckets: mean of each second's points
    arr = np.array(want)
    b = np.floor((arr[:, 0] - arr[0, 0]) / 1.0)
    means = np.array([arr[b == k].mean(axis=0) for k in np.unique(b)])
    cols = queries.trajectory_arrays(con, 2, bucket_s=1.0)
    np.testing.assert_allclose(cols["timestamp"], means[:, 0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(cols["x"], means[:, 1], atol=1e-5)
    np.testing.assert_allclose(cols["y"], means[:, 2], atol=1e-5)
    assert queries.trajectory(con, 999) == []


@pytest.mark.parametrize(
    ("grid", "filters"),
    [
        (FloorGrid(x0=0.0, y0=0.0, cell_m=0.5, nx=20, ny=16), {}),
        (FloorGrid(x0=1.0, y0=2.0, cell_m=0.25, nx=12, ny=9), {}),  # points off the grid are dropped
        (FloorGrid(x0=0.0, y0=0.0, cell_m=1.0, nx=10, ny=8), {"zone_id": "zone_b"}),
        (FloorGrid(x0=0.0, y0=0.0, cell_m=1.0, nx=10, ny=8), {"track_id": 3}),
    ],
)
def test_heatmap_matches_numpy_histogram(history, grid, filters):
    store, frames = history
    start, end = frames[50].timestamp, frames[450].timestamp
    pts = np.array(
        [
            p.position
            for f in frames[50:450]
            for p in f.persons
            if p.position is not None
            and (filters.get("zone_id") is None or filters["zone_id"] in p.zone_ids)
            and (filters.get("track_id") is None or p.track_id == filters["track_id"])
        ]
    )
    xe = grid.x0 + grid.cell_m * np.arange(grid.nx + 1)
    ye = grid.y0 + grid.cell_m * np.arange(grid.ny + 1)
    want, _, _ = np.histogram2d(pts[:, 0], pts[:, 1], bins=[xe, ye])
    got = queries.occupancy_heatmap(store.cursor(), grid, start, end, **filters)
    assert got.shape == (grid.ny, grid.nx)
    np.testing.assert_array_equal(got, want.T.astype(np.int64))
    assert got.sum() > 0
    hm = queries.heatmap(store.cursor(), grid, start, end, **filters)
    assert hm.counts == got.tolist()


def test_zone_occupancy_series(history):
    store, frames = history
    start, end, bucket = frames[30].timestamp, frames[400].timestamp, 2.0
    got = queries.zone_occupancy_series(store.cursor(), "zone_a", start, end, bucket)
    per_bucket: dict[int, list[int]] = {}
    for f in frames:
        if start <= f.timestamp < end:
            b = int(np.floor((f.timestamp - start) / bucket))
            per_bucket.setdefault(b, []).append(sum("zone_a" in p.zone_ids for p in f.persons))
    assert [b.start for b in got] == [start + k * bucket for k in sorted(per_bucket)]
    assert [b.frames for b in got] == [len(v) for _, v in sorted(per_bucket.items())]
    assert [b.max for b in got] == [max(v) for _, v in sorted(per_bucket.items())]
    np.testing.assert_allclose([b.mean for b in got], [np.mean(v) for _, v in sorted(per_bucket.items())])


def test_latest_frame(history):
    store, frames = history
    assert queries.latest_frame(store.cursor()) == frames[-1]
    with Store() as empty:
        assert queries.latest_frame(empty.cursor()) is None


def test_events_round_trip_and_filters():
    evs = [
        SystemStarted(timestamp=T0, version="0.1.0", source="simulator"),
        PersonEnteredZone(timestamp=T0 + 1, track_id=1, zone_id="zone_a", position=(1.0, 2.0)),
        PersonFallDetected(timestamp=T0 + 2, track_id=1, confidence=0.9, severity="high", zone_id="zone_a"),
        PersonEnteredZone(timestamp=T0 + 3, track_id=2, zone_id="zone_b"),
        AlertHighOccupancy(
            timestamp=T0 + 4, zone_id="zone_a", current_occupancy=5, max_occupancy=4, duration_seconds=30.0
        ),
        PersonLeftZone(timestamp=T0 + 5, track_id=1, zone_id="zone_a", dwell_s=4.0),
        RouterConnected(timestamp=T0 + 6, router_id="r1", host="10.0.0.2"),
    ]
    with Store() as store:
        con = store.cursor()
        assert events.append_events(con, evs) == len(evs)
        events.append_events(con, evs[:2])  # same ids again: ignored
        assert con.execute("SELECT count(*) FROM events").fetchone() == (len(evs),)
        assert queries.events(con, T0, T0 + 10) == evs
        assert queries.events(con, T0, T0 + 10, newest_first=True) == evs[::-1]
        assert queries.events(con, T0, T0 + 10, track_id=1) == [evs[1], evs[2], evs[5]]
        assert queries.events(con, T0, T0 + 10, zone_id="zone_a") == [evs[1], evs[2], evs[4], evs[5]]
        assert queries.events(con, T0, T0 + 10, types=["person.entered_zone", "router.connected"]) == [
            evs[1],
            evs[3],
            evs[6],
        ]
        assert queries.events(con, T0, T0 + 10, types=[]) == []
        assert queries.events(con, T0 + 1, T0 + 4, limit=2, offset=1) == [evs[2], evs[3]]
        row = con.execute(
            "SELECT type, severity, track_id FROM events WHERE event_id = ?", [evs[2].event_id]
        ).fetchone()
        assert row == ("person.fall_detected", "high", 1)


def test_history_of_a_real_shape_frame_roundtrips_through_json(history):
    # What the REST layer does: page -> JSON -> typed decode gives the same frames back.
    store, frames = history
    page = queries.pose_history(store.cursor(), T0, T0 + 1, limit=30)
    raw = msgspec.json.encode(page)
    assert msgspec.json.decode(raw, type=list[PoseFrame]) == frames[:30]
