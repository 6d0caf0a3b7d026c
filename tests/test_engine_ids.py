"""Frame and track ids are unique across engine runs: on one history store (runs in one process, as after
/system/stop + /system/start, and after reopening the store, as after a restart), and without a store (ids
from the wall clock). The store refuses a frame id it already holds."""

from __future__ import annotations

import msgspec
from _store_frames import make_frames
from engine_fixtures import BED, two_person_scene

from wdp import schemas
from wdp.csi.sources import SimulatorSource
from wdp.engine import Engine, EngineConfig, Topic
from wdp.store import Store, queries

GT = EngineConfig(detector="ground_truth")


def _run(store: Store | None) -> tuple[list[schemas.PoseFrame], list[schemas.PersonDetected]]:
    """One engine over the scripted two-person scene to its end; its frames and person.detected events."""
    src = SimulatorSource(routers=2, scene=two_person_scene(), loop=False, realtime=False)
    engine = Engine([src], config=GT, zones=[BED], store=store)
    sub = engine.bus.subscribe({Topic.POSE, Topic.EVENT}, maxsize=100_000)
    with engine:
        assert engine.wait(60)
    msgs = sub.drain()
    frames = [m.payload for m in msgs if m.topic is Topic.POSE]
    detected = [m.payload for m in msgs if isinstance(m.payload, schemas.PersonDetected)]
    assert frames and len(detected) == 2
    return frames, detected


def test_runs_on_one_store_never_share_frame_or_track_ids(tmp_path) -> None:
    db = tmp_path / "h.duckdb"
    runs = []
    with Store(db) as store:  # two runs in one process (what /system/stop + /system/start does)
        runs.append(_run(store))
        runs.append(_run(store))
    with Store(db) as store:  # a restart: the store reopened
        runs.append(_run(store))
        cur = store.cursor()
        frame_ids = [f.frame_id for frames, _ in runs for f in frames]
        track_ids = [e.track_id for _, detected in runs for e in detected]
        assert len(set(frame_ids)) == len(frame_ids)
        assert len(set(track_ids)) == len(track_ids) == 6
        stored = cur.execute("SELECT count(*), count(DISTINCT frame_id) FROM pose_frames").fetchone()
        assert stored == (len(frame_ids), len(frame_ids))
        assert cur.execute("SELECT count(*) FROM tracks").fetchone()[0] == 6
        # each track's summary lies within its own run (the bug: first_seen of one run, last_seen of another)
        for frames, detected in runs:
            t0, t1 = frames[0].timestamp, frames[-1].timestamp
            for e in detected:
                summary = queries.person_summary(cur, e.track_id)
                assert summary is not None and t0 <= summary.first_seen <= summary.last_seen <= t1


def test_runs_without_a_store_never_share_ids() -> None:
    first_frames, first_detected = _run(None)
    second_frames, second_detected = _run(None)
    assert min(f.frame_id for f in second_frames) > max(f.frame_id for f in first_frames)
    assert min(e.track_id for e in second_detected) > max(e.track_id for e in first_detected)
    assert max(f.frame_id for f in second_frames) < 2**53  # exact in JavaScript clients


def test_writer_drops_frames_whose_id_is_already_stored(tmp_path) -> None:
    frames = make_frames(20)
    with Store(tmp_path / "h.duckdb") as store:
        with store.writer() as w:
            for f in frames[:10]:
                w.append(f)
        later = [msgspec.structs.replace(f, timestamp=f.timestamp + 1000.0) for f in frames[5:]]
        with store.writer() as w:
            for f in later:  # ids 5..9 are stored already; 10..19 are new
                w.append(f)
            w.append(later[-1])  # a repeat within one batch
            w.flush()
            assert w.stats.frames_rejected == 6 and w.stats.frames_flushed == 10
        cur = store.cursor()
        assert cur.execute("SELECT count(*), count(DISTINCT frame_id) FROM pose_frames").fetchone() == (20, 20)
        assert queries.pose_history(cur, 0, 2e9, limit=1000) == frames[:10] + later[5:]
