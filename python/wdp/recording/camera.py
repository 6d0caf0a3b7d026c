"""A camera through ffmpeg: a V4L2 device (/dev/videoN), an RTSP/HTTP URL or a video file (played at its own
rate with -re, standing in for a camera). ffmpeg encodes every frame as a JPEG into a multipart stream on its
stdout (-f mpjpeg: each part carries its Content-length) and its showinfo filter prints each frame's
presentation time on stderr; this module pairs the two by frame number (-fps_mode passthrough: no frame is
duplicated or dropped between the filter and the output).
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

_SHOWINFO = re.compile(rb"\[Parsed_showinfo_\d+ @ [^\]]+\] n:\s*(\d+) pts:\s*(-?\d+) pts_time:(-?[\d.eE+-]+)")
_PAIR_WAIT_S = 0.5  # a frame whose pts line has not come by then is kept with pts None


def camera_kind(camera: str) -> str:
    """'device' (V4L2), 'url' (rtsp://, http://, ...) or 'file'."""
    if camera.startswith("/dev/video"):
        return "device"
    if re.match(r"^[a-z][a-z0-9+.-]*://", camera):
        return "url"
    return "file"


def ffmpeg_command(
    camera: str, size: tuple[int, int] | None = None, fps: float | None = None, quality: int = 5
) -> list[str]:
    kind = camera_kind(camera)
    cmd = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "info", "-nostats"]
    if kind == "device":
        cmd += ["-f", "v4l2"]
        if fps:
            cmd += ["-framerate", f"{fps:g}"]
        if size:
            cmd += ["-video_size", f"{size[0]}x{size[1]}"]
    elif kind == "url" and camera.startswith("rtsp"):
        cmd += ["-rtsp_transport", "tcp"]
    elif kind == "file":
        cmd += ["-re"]  # at the file's own pace: a stand-in camera
    cmd += ["-i", camera, "-map", "0:v:0"]
    filters = []
    if size and kind != "device":
        filters.append(f"scale={size[0]}:{size[1]}")
    filters.append("showinfo=checksum=0")
    cmd += ["-vf", ",".join(filters), "-fps_mode", "passthrough", "-c:v", "mjpeg", "-q:v", str(quality)]
    cmd += ["-f", "mpjpeg", "-"]
    return cmd


@dataclass
class CameraStats:
    frames: int = 0  # frames received from ffmpeg
    sessions: int = 0  # ffmpeg runs started
    disconnects: int = 0  # ffmpeg runs that ended while the recording went on
    pts_missing: int = 0  # frames whose presentation time never came
    gap_frames: int = 0  # frames the camera skipped (pts gaps beyond 1.5 frame periods)
    bad_parts: int = 0  # multipart parts that were not a JPEG (skipped)
    last_error: str = ""
    stderr_tail: list[str] = field(default_factory=list)


OnFrame = Callable[[int, int, float, float | None, bytes], None]  # (index, session, arrival, pts, jpeg)


class FfmpegCamera:
    """Runs ffmpeg (restarting a device or URL after it drops, with backoff; a file plays once unless
    ``reconnect``) and calls ``on_frame`` from its reader thread for every frame."""

    def __init__(
        self,
        camera: str,
        on_frame: OnFrame,
        *,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        reconnect: bool | None = None,
        on_event: Callable[[dict], None] | None = None,
        ffmpeg: str = "ffmpeg",
    ) -> None:
        if camera_kind(camera) == "file" and not Path(camera).is_file():
            raise FileNotFoundError(f"camera file {camera} does not exist")
        self.camera = camera
        self.size, self.fps = size, fps
        self.reconnect = camera_kind(camera) != "file" if reconnect is None else reconnect
        self.on_frame = on_frame
        self.on_event = on_event or (lambda e: None)
        self.cmd = ffmpeg_command(camera, size, fps)
        self.cmd[0] = ffmpeg
        self.stats = CameraStats()
        self._stop = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._run, name="camera", daemon=True)
        self.finished = threading.Event()

    def start(self) -> FfmpegCamera:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        p = self._proc
        if p is not None and p.poll() is None:
            p.terminate()
        self._thread.join(timeout)
        if p is not None and p.poll() is None:
            p.kill()

    # ---------------------------------------------------------------------------------------- internals
    def _run(self) -> None:
        backoff = 0.5
        try:
            while not self._stop.is_set():
                session = self.stats.sessions
                self.stats.sessions += 1
                self.on_event({"event": "camera_started", "t": time.time(), "session": session})
                got = self._session(session)
                if self._stop.is_set():
                    break
                self.on_event(
                    {
                        "event": "camera_disconnected" if self.reconnect else "camera_ended",
                        "t": time.time(),
                        "session": session,
                        "frames": got,
                        "error": self.stats.last_error,
                    }
                )
                if not self.reconnect:
                    break
                self.stats.disconnects += 1
                backoff = 0.5 if got else min(backoff * 2, 10.0)
                self._stop.wait(backoff)
        finally:
            self.finished.set()

    def _session(self, session: int) -> int:
        try:
            proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        except OSError as e:
            self.stats.last_error = f"cannot start ffmpeg: {e}"
            return 0
        self._proc = proc
        pts: dict[int, float] = {}
        cond = threading.Condition()
        err = threading.Thread(target=self._read_stderr, args=(proc, pts, cond), daemon=True)
        err.start()
        pending: list[tuple[int, float, bytes]] = []
        index = 0
        last_pts: float | None = None
        period: float | None = 1.0 / self.fps if self.fps else None
        assert proc.stdout is not None

        def emit(i: int, arrival: float, jpeg: bytes, p: float | None) -> None:
            nonlocal last_pts, period
            if p is None:
                self.stats.pts_missing += 1
            else:
                if last_pts is not None:
                    dp = p - last_pts
                    if period is None and dp > 0:
                        period = dp
                    if period and dp > 1.5 * period:
                        self.stats.gap_frames += int(round(dp / period)) - 1
                last_pts = p
            self.stats.frames += 1
            self.on_frame(i, session, arrival, p, jpeg)

        def pair(final: bool) -> None:
            now = time.time()
            with cond:
                while pending:
                    i, arrival, jpeg = pending[0]
                    if i in pts:
                        p: float | None = pts.pop(i)
                    elif final or now - arrival > _PAIR_WAIT_S:
                        p = None
                    else:
                        break
                    pending.pop(0)
                    emit(i, arrival, jpeg, p)

        for jpeg in _iter_parts(proc.stdout, self.stats):
            pending.append((index, time.time(), jpeg))
            index += 1
            pair(False)
        proc.wait()
        err.join(2.0)
        proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()
        pair(True)
        self.stats.last_error = "" if proc.returncode == 0 else " | ".join(self.stats.stderr_tail[-3:])
        return index

    def _read_stderr(self, proc: subprocess.Popen[bytes], pts: dict[int, float], cond: threading.Condition) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            m = _SHOWINFO.search(line)
            if m:
                with cond:
                    pts[int(m.group(1))] = float(m.group(3))
            elif b"showinfo" not in line:
                tail = self.stats.stderr_tail
                tail.append(line.decode(errors="replace").strip())
                del tail[:-20]


def _iter_parts(stream, stats: CameraStats):
    """JPEGs of ffmpeg's mpjpeg stream (--ffmpeg boundary, headers with Content-length, body)."""
    while True:
        line = stream.readline()
        if not line:
            return
        if not line.startswith(b"--"):
            continue
        length = None
        while True:
            h = stream.readline()
            if not h:
                return
            if h in (b"\r\n", b"\n"):
                break
            k, _, v = h.partition(b":")
            if k.strip().lower() == b"content-length":
                try:
                    length = int(v.strip())
                except ValueError:
                    length = None
        if length is None:
            stats.bad_parts += 1
            continue
        body = stream.read(length)
        if len(body) < length:
            return
        if body[:2] != b"\xff\xd8":
            stats.bad_parts += 1
            continue
        yield body
