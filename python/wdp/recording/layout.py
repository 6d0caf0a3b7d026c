"""The recording folder (``wdp record OUT_DIR``): what each file holds. Everything is append-only or
written once by rename, so a recording killed at any instant (kill -9) reads back as a prefix.

    OUT_DIR/
      recording.json  RecordingInfo, written once at the start (temp file + rename)
      csi.rec         record file (wdp.recording.records), magic b"WDPCSI1\\n": one CsiChunk per record
      camera.rec      record file, magic b"WDPCAM1\\n": one CameraFrame (a JPEG) per record
      events.jsonl    one JSON object per line: camera start / end / disconnect, source errors, stop
      summary.json    RecordingSummary, written when `wdp record` stops (recomputed by
                      `wdp record --summarize OUT_DIR` or on reading when it is missing, e.g. after kill -9)
      labels.npz      `wdp label`: per camera frame the teacher's COCO-17 keypoints, box, score (see label.py)
      labels.json     LabelInfo: teacher, its version, thresholds, counts, frames/s

Clock: every time in the folder is seconds since the epoch on the recording host's clock (``time.time()``).
CSI from the live sources (UDP, serial, file follow) is stamped on arrival on that clock (UDP: by the kernel).
Camera frames carry their arrival time and the camera's own presentation time (pts, seconds on the camera's
clock); the camera clock is mapped onto the host clock by the fit in wdp.recording.clock.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

FORMAT_VERSION = 1
INFO_FILE = "recording.json"
CSI_FILE = "csi.rec"
CAMERA_FILE = "camera.rec"
EVENTS_FILE = "events.jsonl"
SUMMARY_FILE = "summary.json"
LABELS_FILE = "labels.npz"
LABEL_INFO_FILE = "labels.json"
CSI_MAGIC = b"WDPCSI1\n"
CAMERA_MAGIC = b"WDPCAM1\n"


class RecordingInfo(msgspec.Struct, frozen=True, kw_only=True):
    format_version: int = FORMAT_VERSION
    created: float  # epoch s
    host: str
    wdp_version: str
    source: dict[str, Any]  # the CSI source's config (serve-style, with _target_)
    camera: str | None  # device / URL / file given to ffmpeg
    camera_size: list[int] | None  # [width, height] asked of ffmpeg (None: as the camera gives)
    camera_fps: float | None
    camera_latency_s: float  # subtracted from camera times (exposure -> ffmpeg; measured by the user, default 0)


class CsiChunk(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """Consecutive packets of one router with one frame shape."""

    router: str
    t: bytes  # float64 (k,) host-clock epoch seconds
    shape: tuple[int, int, int, int]  # (k, subcarriers, rx, tx)
    csi: bytes  # complex64 C-order
    mac: bytes | None = None  # int64 (k,) 48-bit transmitter MAC, -1 unknown


class CameraFrame(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    index: int  # frame number since the camera (re)started
    session: int  # camera session: increases when the camera is reopened after a disconnect
    arrival: float  # host clock when the frame left ffmpeg (epoch s)
    pts: float | None  # camera presentation time (s, the camera's clock); None if ffmpeg gave none
    jpeg: bytes


def chunk_arrays(c: CsiChunk) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(t (k,), csi (k, S, R, T) complex64, mac (k,) or None) of a chunk."""
    t = np.frombuffer(c.t, np.float64)
    csi = np.frombuffer(c.csi, np.complex64).reshape(c.shape)
    mac = None if c.mac is None else np.frombuffer(c.mac, np.int64)
    return t, csi, mac


def make_chunk(router: str, t: np.ndarray, csi: np.ndarray, mac: np.ndarray | None = None) -> CsiChunk:
    csi = np.ascontiguousarray(csi, np.complex64)
    return CsiChunk(
        router=router,
        t=np.ascontiguousarray(t, np.float64).tobytes(),
        shape=tuple(int(v) for v in csi.shape),  # type: ignore[arg-type]
        csi=csi.tobytes(),
        mac=None if mac is None else np.ascontiguousarray(mac, np.int64).tobytes(),
    )


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON beside ``path`` and rename it into place: readers see the old file or the new, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    data = msgspec.json.format(msgspec.json.encode(obj), indent=2)
    with tmp.open("wb") as fh:
        fh.write(data + b"\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_events(path: Path) -> list[dict[str, Any]]:
    """The complete lines of events.jsonl (a torn last line is skipped)."""
    out = []
    if not path.is_file():
        return out
    for line in path.read_bytes().split(b"\n"):
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out
