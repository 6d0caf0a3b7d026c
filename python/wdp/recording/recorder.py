"""`wdp record`: CSI from a live source and camera frames from ffmpeg into one recording folder (layout.py).

Threads: the CSI reader (source.read -> csi.rec), the camera's ffmpeg reader (-> camera.rec) and the caller's
thread, which prints progress and decides when to stop. Each writer hands its records to the kernel at least
every ``flush_s`` so a kill -9 loses at most that much; the summary is written on a clean stop and can be
recomputed from the files (wdp.recording.summary) after a crash.
"""

from __future__ import annotations

import json
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

import msgspec
import numpy as np

from wdp.recording.camera import FfmpegCamera, camera_kind
from wdp.recording.layout import (
    CAMERA_FILE,
    CAMERA_MAGIC,
    CSI_FILE,
    CSI_MAGIC,
    EVENTS_FILE,
    INFO_FILE,
    SUMMARY_FILE,
    CameraFrame,
    RecordingInfo,
    make_chunk,
    write_json_atomic,
)
from wdp.recording.records import RecordWriter
from wdp.recording.summary import RecordingSummary, summarize_recording

_enc = msgspec.msgpack.Encoder()


class _Events:
    """events.jsonl: one line per event, written whole and flushed at once."""

    def __init__(self, path: Path) -> None:
        self._fh = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def __call__(self, event: Mapping[str, Any]) -> None:
        line = json.dumps(dict(event), default=str) + "\n"
        with self._lock:
            self._fh.write(line)
            self._fh.flush()

    def close(self) -> None:
        with self._lock:
            self._fh.close()


class Recorder:
    """Records ``source`` (a wdp CsiSource) and optionally ``camera`` into ``out_dir`` until stop()."""

    def __init__(
        self,
        out_dir: str | Path,
        source: Any,
        *,
        source_config: Mapping[str, Any] | None = None,
        camera: str | None = None,
        camera_size: tuple[int, int] | None = None,
        camera_fps: float | None = None,
        camera_latency_s: float = 0.0,
        camera_reconnect: bool | None = None,
        flush_s: float = 0.2,
    ) -> None:
        self.out = Path(out_dir)
        if camera is not None:  # before anything is written: a bad camera leaves no half-made folder
            if shutil.which("ffmpeg") is None:
                raise FileNotFoundError("ffmpeg is not on PATH (apt-get install ffmpeg): it reads the camera")
            if camera_kind(camera) == "file" and not Path(camera).is_file():
                raise FileNotFoundError(f"camera file {camera} does not exist")
        if self.out.exists() and any(self.out.iterdir()):
            raise FileExistsError(f"{self.out} exists and is not empty: a recording folder is written once")
        self.out.mkdir(parents=True, exist_ok=True)
        self.source = source
        self.flush_s = float(flush_s)
        from wdp import __version__

        self.info = RecordingInfo(
            created=time.time(),
            host=socket.gethostname(),
            wdp_version=__version__,
            source=dict(source_config or {"_target_": f"{type(source).__module__}.{type(source).__name__}"}),
            camera=camera,
            camera_size=list(camera_size) if camera_size else None,
            camera_fps=camera_fps,
            camera_latency_s=float(camera_latency_s),
        )
        write_json_atomic(self.out / INFO_FILE, self.info)
        self.events = _Events(self.out / EVENTS_FILE)
        self._csi = RecordWriter(self.out / CSI_FILE, CSI_MAGIC)
        self._cam = RecordWriter(self.out / CAMERA_FILE, CAMERA_MAGIC) if camera else None
        self._cam_lock = threading.Lock()
        self._cam_flushed = time.monotonic()
        self.packets: dict[str, int] = {}
        self.camera_frames = 0
        self.errors = 0
        self._stop = threading.Event()
        self._csi_thread = threading.Thread(target=self._read_csi, name="record-csi", daemon=True)
        self.camera = (
            FfmpegCamera(
                camera,
                self._on_frame,
                size=camera_size,
                fps=camera_fps,
                reconnect=camera_reconnect,
                on_event=self.events,
            )
            if camera
            else None
        )
        self.started = 0.0

    # ------------------------------------------------------------------------------------------ running
    def start(self) -> Recorder:
        self.started = time.time()
        self.source.open(self.started)
        self.events({"event": "recording_started", "t": self.started})
        self._csi_thread.start()
        if self.camera is not None:
            self.camera.start()
        return self

    def _read_csi(self) -> None:
        last_flush = time.monotonic()
        try:
            while not self._stop.is_set():
                batches = self.source.read(0.05)
                for b in batches:
                    self._write_batch(b)
                now = time.monotonic()
                if now - last_flush >= self.flush_s:
                    self._csi.flush()
                    last_flush = now
                if not batches and self.source.exhausted:
                    break
        except Exception as e:  # a broken source ends the CSI side, said in the events and the summary
            self.errors += 1
            self.events({"event": "csi_error", "t": time.time(), "error": f"{type(e).__name__}: {e}"})
        finally:
            self._csi.flush()

    def _write_batch(self, b: Any) -> None:
        shapes: dict[tuple[int, ...], list[int]] = {}
        for i, a in enumerate(b.csi):
            shapes.setdefault(tuple(np.shape(a)), []).append(i)
        for shape, idx in shapes.items():
            if len(shape) != 3:
                self.errors += 1
                continue
            csi = np.stack([b.csi[i] for i in idx]).astype(np.complex64, copy=False)
            mac = None if b.mac is None else np.asarray(b.mac)[idx]
            self._csi.append(_enc.encode(make_chunk(b.router_id, np.asarray(b.timestamps)[idx], csi, mac)))
        self.packets[b.router_id] = self.packets.get(b.router_id, 0) + len(b)

    def _on_frame(self, index: int, session: int, arrival: float, pts: float | None, jpeg: bytes) -> None:
        assert self._cam is not None
        rec = _enc.encode(CameraFrame(index=index, session=session, arrival=arrival, pts=pts, jpeg=jpeg))
        with self._cam_lock:
            self._cam.append(rec)
            self.camera_frames += 1
            now = time.monotonic()
            if now - self._cam_flushed >= self.flush_s:
                self._cam.flush()
                self._cam_flushed = now

    @property
    def bytes_written(self) -> int:
        return self._csi.bytes_written + (self._cam.bytes_written if self._cam else 0)

    def lost_packets(self) -> dict[str, int]:
        return dict(self.source.lost_packets())

    def done(self) -> bool:
        """The CSI source ended (a file source, a finite simulation) or failed."""
        return not self._csi_thread.is_alive()

    def stop(self) -> RecordingSummary:
        self._stop.set()
        if self.camera is not None:
            self.camera.stop()
        self._csi_thread.join(5.0)
        try:
            self.source.close()
        except Exception:  # noqa: BLE001 - closing must not lose the recording
            pass
        with self._cam_lock:
            if self._cam is not None:
                self._cam.close()
        self._csi.close()
        cam = self.camera.stats if self.camera else None
        self.events(
            {
                "event": "recording_stopped",
                "t": time.time(),
                "packets": self.packets,
                "source_lost": self.lost_packets(),
                "camera": None
                if cam is None
                else {
                    "frames": cam.frames,
                    "sessions": cam.sessions,
                    "disconnects": cam.disconnects,
                    "pts_missing": cam.pts_missing,
                    "gap_frames": cam.gap_frames,
                    "bad_parts": cam.bad_parts,
                    "last_error": cam.last_error,
                },
            }
        )
        self.events.close()
        summary = summarize_recording(self.out)
        write_json_atomic(self.out / SUMMARY_FILE, summary)
        return summary


def progress_line(rec: Recorder) -> str:
    el = time.time() - rec.started
    routers = " ".join(f"{r}:{n}" for r, n in sorted(rec.packets.items())) or "-"
    lost = sum(rec.lost_packets().values())
    cam = rec.camera.stats if rec.camera else None
    cam_s = "no camera" if cam is None else f"camera {cam.frames} frames ({cam.frames / max(el, 1e-9):.1f}/s)"
    if cam is not None and (cam.gap_frames or cam.disconnects):
        cam_s += f", {cam.gap_frames} skipped, {cam.disconnects} disconnects"
    return f"[{el:7.1f} s] CSI {routers} (dropped in capture {lost}) | {cam_s} | disk {rec.bytes_written / 1e6:.1f} MB"


def run_recording(
    rec: Recorder,
    *,
    duration_s: float | None = None,
    progress_s: float = 1.0,
    out: TextIO | None = sys.stderr,
    should_stop: Callable[[], bool] = lambda: False,
) -> RecordingSummary:
    """Start, print progress every ``progress_s`` until duration, the source's end or should_stop(), stop."""
    rec.start()
    t_end = None if duration_s is None else rec.started + duration_s
    next_line = time.monotonic() + progress_s
    try:
        while not should_stop() and not rec.done():
            if t_end is not None and time.time() >= t_end:
                break
            time.sleep(0.05)
            if out is not None and progress_s > 0 and time.monotonic() >= next_line:
                next_line += progress_s
                print(progress_line(rec), file=out, flush=True)
    finally:
        summary = rec.stop()
    return summary
