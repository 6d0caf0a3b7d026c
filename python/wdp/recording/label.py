"""`wdp label`: the pose teacher on every camera frame of a recording -> labels.npz + labels.json.

labels.npz (one row per camera frame, in recording order):
    t          float64 (n,)   frame time on the host/CSI clock: the camera clock fit of its session applied
                              to pts (arrival time where a frame has no pts), less camera_latency_s
    session    int64 (n,)     camera session (a new one after each disconnect)
    index      int64 (n,)     frame number within the session
    found      bool (n,)      a confident person (score >= min_score); False rows are "empty" labels
    keypoints  float32 (n, 17, 3)  COCO-17 x, y in frame pixels, score 0..1 (zeros when not found)
    box        float32 (n, 4)      x0, y0, x1, y1 frame pixels (zeros when not found)
    score      float32 (n,)        person score (0 when the teacher saw nobody)
    size       int64 (2,)          frame width, height
Written to a temporary file and renamed: a label run killed halfway leaves the previous labels (or none).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TextIO

import msgspec
import numpy as np

from wdp.recording.layout import LABEL_INFO_FILE, LABELS_FILE, write_json_atomic
from wdp.recording.reader import camera_times, iter_camera, read_info
from wdp.recording.summary import camera_fit
from wdp.recording.teacher import TEACHER_PACKAGE, Teacher, TeacherUnavailable

__all__ = ["LabelInfo", "TeacherUnavailable", "frame_times", "label_recording", "load_labels"]


class LabelInfo(msgspec.Struct, frozen=True, kw_only=True):
    teacher: str
    teacher_version: str
    teacher_package: str
    model_complexity: int
    min_score: float
    frames: int
    with_person: int
    empty: int
    seconds: float  # wall time of the teacher pass
    frames_per_s: float
    created: float


def frame_times(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t on the host clock, session, index) of every camera frame: each session's clock fit, less latency."""
    info = read_info(folder)
    ct = camera_times(folder)
    t = ct.arrival.copy()
    for s in np.unique(ct.session):
        fit = camera_fit(ct, int(s))
        m = (ct.session == s) & np.isfinite(ct.pts)
        if fit is not None:
            t[m] = fit.to_host(ct.pts[m])
    return t - info.camera_latency_s, ct.session, ct.index


def label_recording(
    folder: str | Path,
    *,
    teacher_python: str | None = None,
    min_score: float = 0.5,
    model_complexity: int = 1,
    progress: TextIO | None = None,
    progress_s: float = 2.0,
) -> LabelInfo:
    folder = Path(folder)
    info = read_info(folder)
    if not info.camera:
        raise ValueError(f"{folder} was recorded without a camera: nothing to label")
    t, session, index = frame_times(folder)
    n = len(t)
    if n == 0:
        raise ValueError(f"{folder} holds no camera frames")
    kp = np.zeros((n, 17, 3), np.float32)
    box = np.zeros((n, 4), np.float32)
    score = np.zeros(n, np.float32)
    size = np.zeros(2, np.int64)
    t_start = time.perf_counter()
    next_line = t_start + progress_s
    with Teacher(teacher_python, complexity=model_complexity) as teacher:
        jpegs = (f.jpeg for f in iter_camera(folder))
        i = -1
        for i, pose in enumerate(teacher.poses(jpegs)):
            if pose is not None:
                kp[i], box[i], score[i] = pose.keypoints, pose.box, pose.score
                size[:] = pose.size
            if progress is not None and time.perf_counter() >= next_line:
                next_line += progress_s
                el = time.perf_counter() - t_start
                print(f"[label] {i + 1}/{n} frames, {(i + 1) / el:.1f} frames/s", file=progress, flush=True)
        if i + 1 != n:
            raise ValueError(f"camera.rec changed while labelling ({i + 1} frames read, {n} expected)")
        name, version = teacher.name, teacher.version
    seconds = time.perf_counter() - t_start
    if not size.any():  # nobody found anywhere: take the size from a frame
        from io import BytesIO

        from PIL import Image

        with Image.open(BytesIO(next(iter_camera(folder)).jpeg)) as im:
            size[:] = im.size
    found = score >= min_score
    kp[~found] = 0
    box[~found] = 0
    tmp = folder / f".{LABELS_FILE}.tmp.npz"
    np.savez(tmp, t=t, session=session, index=index, found=found, keypoints=kp, box=box, score=score, size=size)
    os.replace(tmp, folder / LABELS_FILE)
    li = LabelInfo(
        teacher=name,
        teacher_version=version,
        teacher_package=TEACHER_PACKAGE,
        model_complexity=model_complexity,
        min_score=min_score,
        frames=n,
        with_person=int(found.sum()),
        empty=int((~found).sum()),
        seconds=seconds,
        frames_per_s=n / seconds if seconds > 0 else 0.0,
        created=time.time(),
    )
    write_json_atomic(folder / LABEL_INFO_FILE, li)
    return li


def load_labels(folder: str | Path) -> tuple[dict[str, np.ndarray], LabelInfo]:
    folder = Path(folder)
    p = folder / LABELS_FILE
    if not p.is_file():
        raise FileNotFoundError(f"{folder} has no {LABELS_FILE}: run `wdp label {folder}` first")
    with np.load(p) as z:
        arrays = {k: z[k] for k in z.files}
    return arrays, msgspec.json.decode((folder / LABEL_INFO_FILE).read_bytes(), type=LabelInfo)
