"""Labelled recording -> training windows: a window is paired with the camera frame nearest its middle instant
only within max_label_dt_s; camera outages and CSI gaps are skipped and counted, never misaligned."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from wdp import schemas_sample as S
from wdp.recording.label import LabelInfo
from wdp.recording.layout import CSI_FILE, CSI_MAGIC, INFO_FILE, LABEL_INFO_FILE, RecordingInfo, make_chunk
from wdp.recording.records import RecordWriter
from wdp.recording.windows import WindowCounts, recording_samples, time_split

T0 = 1_800_000_000.0


def _recording(folder, csi_gap=(1.0, 1.5), camera_out=(2.0, 3.0), nobody=(3.5, 4.0)):
    folder.mkdir()
    info = RecordingInfo(
        created=T0,
        host="h",
        wdp_version="0",
        source={},
        camera="cam.mp4",
        camera_size=None,
        camera_fps=30.0,
        camera_latency_s=0.0,
    )
    (folder / INFO_FILE).write_bytes(msgspec.json.encode(info))
    rng = np.random.default_rng(0)
    t = T0 + np.arange(0, 4.0, 0.01)
    t = t[~((t - T0 >= csi_gap[0]) & (t - T0 < csi_gap[1]))]
    csi = (rng.normal(size=(len(t), 30, 3, 3)) + 1j * rng.normal(size=(len(t), 30, 3, 3))).astype(np.complex64)
    enc = msgspec.msgpack.Encoder()
    with RecordWriter(folder / CSI_FILE, CSI_MAGIC) as w:
        for a in range(0, len(t), 37):
            w.append(enc.encode(make_chunk("r0", t[a : a + 37], csi[a : a + 37])))
    ft = T0 + 0.004 + np.arange(0, 4.0, 1 / 30)  # camera frames, 4 ms after the grid
    ft = ft[~((ft - T0 >= camera_out[0]) & (ft - T0 < camera_out[1]))]
    n = len(ft)
    kp = np.zeros((n, 17, 3), np.float32)
    kp[:, :, 0] = ((ft - T0) * 100)[:, None]  # x encodes the frame's own time: the pairing is checkable
    kp[:, :, 1] = 200
    kp[:, :, 2] = 0.9
    found = ~((ft - T0 >= nobody[0]) & (ft - T0 < nobody[1]))
    box = np.tile(np.array([[0, 100, 400, 300]], np.float32), (n, 1))
    np.savez(
        folder / "labels.npz",
        t=ft,
        session=np.zeros(n, np.int64),
        index=np.arange(n),
        found=found,
        keypoints=kp,
        box=box,
        score=np.where(found, 0.9, 0.0).astype(np.float32),
        size=np.array([640, 360]),
    )
    li = LabelInfo(
        teacher="t",
        teacher_version="1",
        teacher_package="p",
        model_complexity=1,
        min_score=0.5,
        frames=n,
        with_person=int(found.sum()),
        empty=int((~found).sum()),
        seconds=1.0,
        frames_per_s=n,
        created=T0,
    )
    (folder / LABEL_INFO_FILE).write_bytes(msgspec.json.encode(li))
    return folder


def test_windows_pair_only_near_frames_and_count_the_rest(tmp_path) -> None:
    rec = _recording(tmp_path / "rec")
    c = WindowCounts()
    s = recording_samples(rec, counts=c)
    t = s["t"] - T0
    assert c.windows == c.labelled + c.empty + c.no_camera_frame and len(t) == c.labelled + c.empty
    assert c.no_camera_frame >= 19  # the 1-s camera outage at 20 windows/s
    assert not ((t > 2.0 + 0.02) & (t < 3.0 - 0.02)).any()  # nothing labelled inside the outage
    assert not ((t >= 1.0) & (t < 1.5)).any()  # nor inside the CSI gap (no packets: no windows)
    # windows restart after the gap: the first one after it ends 5 grid frames (50 ms) in
    assert t[t > 1.5].min() == pytest.approx(1.52, abs=1e-6)
    people = s["num_people"] == 1
    frame_t = s["keypoints"][people, 0, 0, 0] / (S.IMAGE_W / 640) / 100  # the paired frame's own time
    assert np.abs(frame_t - t[people]).max() <= 0.025 + 1e-6  # never further than max_label_dt_s
    assert np.abs(frame_t - t[people]).max() <= 1 / 60 + 1e-3  # and it is the nearest frame
    empty = ~people
    assert empty.any() and ((t[empty] >= 3.5 - 0.02) & (t[empty] < 4.0)).all()  # "nobody" frames: empty windows
    assert (s["keypoints"][people, 0, :, 2] == S.VIS_VISIBLE).all()
    np.testing.assert_allclose(s["keypoints"][people, 0, 0, 1], 200 * S.IMAGE_H / 360, rtol=1e-6)
    assert c.as_dict()["label_dt_ms_max"] <= 25.0


def test_time_split_holds_out_the_end_with_guards() -> None:
    t = np.arange(0, 100, 0.05)
    sp = time_split(t, 0.1, 0.2, guard_s=1.0)
    assert t[sp["test"]].min() >= 81.0 and t[sp["val"]].max() < 79.0 and t[sp["val"]].min() >= 71.0
    assert t[sp["train"]].max() < 69.0
    assert not set(sp["train"]) & set(sp["test"])


def test_recording_datamodule_with_a_whole_test_recording(tmp_path) -> None:
    from wheel_layout import ensure_wheel_layout

    ensure_wheel_layout()
    from wdp.train.recording_data import RecordingDataModule

    a = _recording(tmp_path / "a")
    b = _recording(tmp_path / "b", camera_out=(0.0, 0.0), nobody=(0.0, 0.0))
    with pytest.raises(ValueError, match="both"):
        RecordingDataModule(path=str(a), test_path=[str(a)], cache_dir=str(tmp_path / "c"))
    dm = RecordingDataModule(
        path=str(a), test_path=[str(b)], cache_dir=str(tmp_path / "c"), val_fraction=0.25, guard_s=0.1
    )
    dm.prepare_data()
    whole = WindowCounts()
    recording_samples(b, counts=whole)
    assert len(dm.split("test")) == whole.labelled + whole.empty  # every window of b, none of a
    assert dm.counts[str(a.resolve())]["test_windows"] == 0
    n_a = dm.counts[str(a.resolve())]
    assert len(dm.split("train")) == n_a["train_windows"] > 0 and len(dm.split("val")) == n_a["val_windows"] > 0
    d = dm.describe()
    assert [r["role"] for r in d["recordings"]] == ["train/val/test by time", "test"]
    assert d["recordings"][1]["teacher"]["name"] == "t"


def test_recording_source_replays_its_routers_in_time_order(tmp_path) -> None:
    from wdp.recording.source import RecordingSource

    rec = _recording(tmp_path / "rec")
    src = RecordingSource(rec, realtime=False, start_fraction=0.5)
    src.open(100.0)
    got = []
    while not src.exhausted:
        got += src.read(0.1)
    t = np.concatenate([b.timestamps for b in got])
    assert (np.diff(t) > 0).all() and t[0] == pytest.approx(100.0, abs=0.01) and {b.router_id for b in got} == {"r0"}
    assert len(t) == 200 and src.routers()[0].id == "r0"  # the last 2 s of 4 (the CSI gap is in the first half)
    with pytest.raises(ValueError, match="start_fraction"):
        RecordingSource(rec, start_fraction=0.9, end_fraction=0.5)
