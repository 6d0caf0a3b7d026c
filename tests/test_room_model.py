"""A model for one's own room end to end: simulated routers streaming over real UDP + a video file (a real
camera frame of a person, moved about) as the camera -> wdp record -> wdp label (the real BlazePose teacher)
-> training for a few steps (data=recording) -> export -> the engine serving that export over live UDP."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from wheel_layout import conf_dir, ensure_wheel_layout

from wdp.csi.sources import LiveUdpSource
from wdp.engine.config import compose_serve_config, serve
from wdp.recording import Recorder
from wdp.recording.label import label_recording, load_labels
from wdp.recording.sim_router import SimulatedRouters, simulated_packets
from wdp.recording.teacher import TeacherUnavailable, find_teacher_python
from wdp.store import Store

ensure_wheel_layout()
from wdp.train.training import train  # noqa: E402

torch.set_num_threads(1)
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning"),
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is installed by .ci/setup"),
]
POSE_MAT = "pose/wisppn_intel5300_pose_sample_oct17set1_fw_1814.mat"


def teacher_python() -> str:
    try:
        return find_teacher_python()
    except TeacherUnavailable as e:
        if os.environ.get("CI"):
            raise  # .ci/setup makes .venv-teacher: a missing teacher is a broken setup, not a skip
        pytest.skip(str(e))


def wisppn_frame(csi_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(frame RGB 360x640x3, OpenPose-18 joints (18, 3) in frame pixels) of the shared WiSPPN sample."""
    h5py = pytest.importorskip("h5py")
    with h5py.File(csi_dir / POSE_MAT, "r") as f:
        frame = np.array(f["frame"]).transpose(2, 1, 0)
        jv = np.array(f["jointsVector"]).ravel()
    # the joints are in pixels of the frame shown at 1280x720 (WiSPPN's test_pam.py); the frame is 640x360
    joints = np.stack([jv[:18] * 0.5, jv[18:36] * 0.5, jv[36:54]], axis=1)
    return frame, joints


def person_video(csi_dir: Path, out: Path, seconds: float = 8.0) -> Path:
    from PIL import Image

    frame, _ = wisppn_frame(csi_dir)
    png = out.with_suffix(".png")
    Image.fromarray(frame).save(png)
    vf = "crop=480:270:x='80+60*sin(2*t)':y='45+20*cos(3*t)',scale=640:360,format=yuv420p"
    subprocess.run(
        ["ffmpeg", "-y", "-hide_banner", "-loglevel", "error", "-loop", "1", "-framerate", "30", "-i", str(png)]
        + ["-vf", vf, "-t", str(seconds), "-c:v", "mjpeg", "-q:v", "4", str(out)],
        check=True,
    )
    return out


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_record_label_train_export_serve(csi_dir, tmp_path) -> None:
    teacher_python()
    video = person_video(csi_dir, tmp_path / "person.mkv")
    packets = simulated_packets(1, 4.0)

    # 1. record: one simulated router over UDP + the video as the camera
    src = LiveUdpSource(host="127.0.0.1", port=0, format="raw", shape=(30, 3, 3))
    rec = Recorder(tmp_path / "rec", src, camera=str(video)).start()
    sender = SimulatedRouters(src.port, routers=1, packets=packets, duration_s=8.5).start()
    sender.wait(30)
    assert rec.camera.finished.wait(30)
    summary = rec.stop()
    assert summary.routers[0].packets == sender.stats.sent[0] and summary.camera.frames == 240

    # 2. label: the teacher finds the person in (nearly) every frame
    info = label_recording(tmp_path / "rec")
    assert info.teacher == "mediapipe-blazepose" and info.teacher_version == "0.10.21"
    assert info.with_person >= 0.9 * info.frames
    labels, _ = load_labels(tmp_path / "rec")
    assert np.isfinite(labels["t"]).all() and labels["t"].min() > summary.routers[0].duration_s  # epoch times

    # 3. train a few steps on it and export
    out = tmp_path / "run"
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "experiment=room",
                f"data.path={tmp_path / 'rec'}",
                f"data.cache_dir={tmp_path / 'cache'}",
                f"paths.output_dir={out}",
                "model=wdpnet_tiny",
                "data.val_fraction=0.2",
                "data.test_fraction=0.2",
                "data.guard_s=0.2",
                "data.batch_size=16",
                "trainer.max_epochs=1",
                "+trainer.limit_train_batches=4",
                "trainer.log_every_n_steps=1",
                "+trainer.enable_model_summary=false",
                "export.onnx_optimize=false",
                "plots.enabled=false",
            ],
        )
    metrics, objects = train(cfg)
    assert np.isfinite(metrics["test/loss"])
    counts = objects["datamodule"].counts[str((tmp_path / "rec").resolve())]
    assert counts["labelled"] > 100 and counts["label_dt_ms_max"] <= 25.0
    export = out / "export"
    card = json.loads((export / "model_card.json").read_text())
    data = card["training"]["data"]
    assert data["kind"] == "recording" and data["recordings"][0]["path"] == str((tmp_path / "rec").resolve())
    assert data["recordings"][0]["teacher"]["version"] == "0.10.21"

    # 4. serve that export on the same kind of live stream: the served poses come from it
    port = _free_udp_port()
    db = tmp_path / "h.duckdb"
    scfg = compose_serve_config(
        [
            "source=live",
            "source.host=127.0.0.1",
            f"source.port={port}",
            "source.format=raw",
            "source.shape=[30,3,3]",
            f"model.path={export}",
            f"store.path={db}",
            "duration_s=4",
            "engine.dense=false",
            "activity.detector=keypoints",
            "status_interval_s=0",
        ]
    )
    sender = SimulatedRouters(port, routers=1, packets=packets, duration_s=5.0).start()
    text = io.StringIO()
    try:
        assert serve(scfg, out=text, install_signals=False) == 0
    finally:
        sender.stop()
    assert f"({export}" in text.getvalue() or str(export) in text.getvalue(), text.getvalue()
    with Store(db, read_only=True) as store:
        frames, with_people = (
            store.cursor().execute("SELECT count(*), count(*) FILTER (WHERE n_persons > 0) FROM pose_frames").fetchone()
        )
    assert frames > 20 and with_people > 0, text.getvalue()

    # 5. the recording's own held-out end through the same export (source=recording), as fast as possible
    db2 = tmp_path / "h2.duckdb"
    rcfg = compose_serve_config(
        [
            "source=recording",
            f"source.path={tmp_path / 'rec'}",
            "source.start_fraction=0.8",
            "source.realtime=false",
            f"model.path={export}",
            f"store.path={db2}",
            "engine.dense=false",
            "activity.detector=keypoints",
            "status_interval_s=0",
        ]
    )
    text = io.StringIO()
    assert serve(rcfg, out=text, install_signals=False) == 0
    assert "end of stream" in text.getvalue()
    with Store(db2, read_only=True) as store:
        frames2 = store.cursor().execute("SELECT count(*) FROM pose_frames").fetchone()[0]
    assert frames2 >= 25, text.getvalue()  # ~1.7 s at 20 windows/s
