"""DensePose output kept on demand (store.dense): the engine's store sink writes the dense twin frames of
Topic.DENSE, history reads attach them, retention deletes them with the poses; without the option nothing."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest
from _store_frames import make_frames

from wdp.densepose_codec import encode_dense
from wdp.engine.bus import Bus, Topic
from wdp.engine.storage import StoreSink
from wdp.schemas import DensePose, PoseFrame
from wdp.store import Store, queries, retention
from wdp.store import dense as store_dense


def _dense(track_id: int) -> DensePose:
    parts = np.full((3, 2), track_id % 24 + 1, np.uint8)
    return encode_dense(parts, np.full((2, 3, 2), 0.5), (1, 2, 2, 3), (64, 64))


def _twin(frame: PoseFrame) -> PoseFrame:
    return msgspec.structs.replace(
        frame, persons=[msgspec.structs.replace(p, dense=_dense(p.track_id)) for p in frame.persons]
    )


@pytest.mark.parametrize("dense", [True, False])
def test_store_sink_keeps_dense_only_when_asked(dense: bool) -> None:
    frames = make_frames(12)
    with Store(":memory:") as store:
        bus = Bus()
        sink = StoreSink(store, bus, flush_interval_s=0.05, dense=dense)
        sink.start()
        for f in frames:
            bus.publish(Topic.POSE, f)
            bus.publish(Topic.DENSE, _twin(f))
        sink.stop()
        con = store.cursor()
        rows = con.execute("SELECT count(*) FROM pose_dense").fetchone()[0]
        people = sum(len(f.persons) for f in frames)
        assert rows == (people if dense else 0) and people > 0
        page = queries.pose_history(con, 0, 2e9, limit=1000)
        assert page == frames  # the plain history is unchanged
        attached = store_dense.attach(con, page)
        want = [_twin(f) for f in frames] if dense else frames
        assert attached == want


def test_attach_skips_undecodable_rows_and_retention_deletes() -> None:
    frames = make_frames(4)
    with Store(":memory:") as store:
        con = store.cursor()
        with store.writer() as w:
            for f in frames:
                w.append(f)
        store_dense.append_frames(con, [_twin(f) for f in frames])
        f0, p0 = frames[0], frames[0].persons[0]
        con.execute(
            "UPDATE pose_dense SET dense = '\\xFF'::BLOB WHERE frame_id = ? AND track_id = ?",
            [f0.frame_id, p0.track_id],
        )
        got = store_dense.attach(con, queries.pose_history(con, 0, 2e9))
        assert got[0].persons[0].dense is msgspec.UNSET  # the bad row is skipped, the page still comes back
        assert got[1] == _twin(frames[1])
        deleted = retention.delete_older_than(con, 0, now=2e9)
        assert deleted["pose_dense"] == sum(len(f.persons) for f in frames)
