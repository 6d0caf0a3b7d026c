"""Reading a recording folder back (whole, or the readable prefix of one that was killed)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import numpy as np

from wdp.recording.layout import (
    CAMERA_FILE,
    CAMERA_MAGIC,
    CSI_FILE,
    CSI_MAGIC,
    INFO_FILE,
    CameraFrame,
    CsiChunk,
    RecordingInfo,
    chunk_arrays,
)
from wdp.recording.records import ReadStats, iter_records

_chunk_dec = msgspec.msgpack.Decoder(CsiChunk)
_frame_dec = msgspec.msgpack.Decoder(CameraFrame)


def read_info(folder: str | Path) -> RecordingInfo:
    path = Path(folder) / INFO_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a wdp recording (no {INFO_FILE})")
    return msgspec.json.decode(path.read_bytes(), type=RecordingInfo)


@dataclass
class RouterCsi:
    """One router's packets in arrival order. Packets of several shapes keep their own arrays."""

    router: str
    t: np.ndarray  # (n,) float64
    csi: list[np.ndarray] = field(default_factory=list)  # per packet (S, R, T) complex64

    @property
    def shapes(self) -> dict[tuple[int, ...], int]:
        out: dict[tuple[int, ...], int] = {}
        for a in self.csi:
            out[a.shape] = out.get(a.shape, 0) + 1
        return out


def iter_csi_chunks(folder: str | Path, stats: ReadStats | None = None) -> Iterator[CsiChunk]:
    path = Path(folder) / CSI_FILE
    if not path.is_file():
        return
    for payload in iter_records(path, CSI_MAGIC, stats):
        yield _chunk_dec.decode(payload)


def read_csi(folder: str | Path, stats: ReadStats | None = None) -> dict[str, RouterCsi]:
    """Every router's packets (time order per router, as received)."""
    ts: dict[str, list[np.ndarray]] = {}
    arrs: dict[str, list[np.ndarray]] = {}
    for c in iter_csi_chunks(folder, stats):
        t, csi, _ = chunk_arrays(c)
        ts.setdefault(c.router, []).append(t)
        arrs.setdefault(c.router, []).extend(csi)
    return {r: RouterCsi(r, np.concatenate(ts[r]), arrs[r]) for r in ts}


def iter_camera(folder: str | Path, stats: ReadStats | None = None, with_jpeg: bool = True) -> Iterator[CameraFrame]:
    path = Path(folder) / CAMERA_FILE
    if not path.is_file():
        return
    for payload in iter_records(path, CAMERA_MAGIC, stats):
        f = _frame_dec.decode(payload)
        yield f if with_jpeg else msgspec.structs.replace(f, jpeg=b"")


@dataclass(frozen=True)
class CameraTimes:
    index: np.ndarray  # (n,) int64 frame number within its session
    session: np.ndarray  # (n,) int64
    arrival: np.ndarray  # (n,) float64 host clock
    pts: np.ndarray  # (n,) float64 camera clock (nan: none)


def camera_times(folder: str | Path, stats: ReadStats | None = None) -> CameraTimes:
    idx, ses, arr, pts = [], [], [], []
    for f in iter_camera(folder, stats, with_jpeg=False):
        idx.append(f.index)
        ses.append(f.session)
        arr.append(f.arrival)
        pts.append(np.nan if f.pts is None else f.pts)
    return CameraTimes(np.array(idx, np.int64), np.array(ses, np.int64), np.array(arr), np.array(pts))
