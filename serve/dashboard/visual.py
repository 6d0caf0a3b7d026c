"""The visualization stream: the engine's current frame rendered at a fixed rate while anyone watches, fanned
out to MJPEG clients and to ffmpeg encoders (HLS segments on disk, an RTMP push).

- ``FrameTicker`` renders (in a worker thread, Pillow) only while it has consumers, and only when the frame
  changed or a second passed (the clock in the picture), so an unwatched stream costs nothing. Consumers get
  the JPEG bytes through a non-blocking ``offer``: a slow consumer loses frames, never slows the others.
- ``FfmpegEncoder`` is one ffmpeg process fed JPEGs on stdin (image2pipe at the ticker's rate). Its stdin
  buffer is bounded: frames are dropped when ffmpeg falls behind.
- ``HlsStream`` starts its encoder on the first playlist request and stops it ``hls_idle_s`` after the last
  request; ``RtmpPush`` keeps pushing to a configured URL, restarting ffmpeg after a failure.
- Without ffmpeg both say so (``available() -> (False, reason)``): the API answers 503 with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import shutil
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import anyio.to_thread

from wdp.schemas import PoseFrame
from wdp.serve.dashboard.render import render_jpeg
from wdp.serve.dashboard.settings import VisualizationSettings
from wdp.serve.engine_view import EngineView

log = logging.getLogger("wdp.serve.visual")

STDIN_BUFFER_LIMIT = 4 * 1024 * 1024  # bytes queued to an ffmpeg stdin before frames are dropped
SEGMENT_NAME = re.compile(r"^seg_\d{6}\.ts$")
PLAYLIST = "index.m3u8"


class HlsFailed(RuntimeError):
    """The HLS encoder exited (the reason is ffmpeg's last error line)."""


class FrameConsumer(Protocol):
    def offer(self, jpeg: bytes) -> None: ...


def find_ffmpeg(name: str) -> str | None:
    """The ffmpeg executable (a path or a name on PATH), or None."""
    if os.sep in name:
        return name if os.path.isfile(name) and os.access(name, os.X_OK) else None
    return shutil.which(name)


def redact_url(url: str) -> str:
    """scheme://host[:port]/app — the stream key and credentials left out (they are secrets)."""
    parts = urlsplit(url)
    app = parts.path.strip("/").split("/", 1)[0]
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/{app}" + ("/***" if "/" in parts.path.strip("/") else "")


# ------------------------------------------------------------------------------------------------ ticker


class LatestJpeg:
    """A consumer that keeps only the newest frame (one MJPEG client)."""

    def __init__(self) -> None:
        self.jpeg: bytes | None = None
        self._ready = asyncio.Event()
        self.skipped = 0

    def offer(self, jpeg: bytes) -> None:
        if self._ready.is_set():
            self.skipped += 1  # the client has not taken the previous one yet
        self.jpeg = jpeg
        self._ready.set()

    async def next(self) -> bytes:
        await self._ready.wait()
        self._ready.clear()
        assert self.jpeg is not None
        return self.jpeg


class FrameTicker:
    def __init__(self, engine: EngineView, settings: VisualizationSettings) -> None:
        self.engine = engine
        self.settings = settings
        self._consumers: set[FrameConsumer] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.latest: bytes | None = None
        self._latest_key: tuple[Any, ...] | None = None
        self.frames_rendered = 0
        self.ticks = 0

    @property
    def consumers(self) -> int:
        return len(self._consumers)

    def add(self, consumer: FrameConsumer) -> None:
        self._consumers.add(consumer)
        self._wake.set()
        if self.latest is not None:
            consumer.offer(self.latest)  # something to show at once

    def discard(self, consumer: FrameConsumer) -> None:
        self._consumers.discard(consumer)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="wdp-visual-ticker")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def render_now(self) -> bytes:
        """The current frame as JPEG (rendered if it changed since the last render)."""
        frame = self.engine.current_frame()
        dense = self.engine.current_dense_frame() if self.settings.dense else None
        now = time.time()
        key = (id(frame), frame.frame_id if frame is not None else None, id(dense), int(now))
        if key != self._latest_key or self.latest is None:
            s = self.settings
            self.latest = await anyio.to_thread.run_sync(
                lambda: render_jpeg(frame, s.width, s.height, s.jpeg_quality, now, dense)
            )
            self._latest_key = key
            self.frames_rendered += 1
        return self.latest

    async def _run(self) -> None:
        period = 1.0 / self.settings.fps
        loop = asyncio.get_running_loop()
        while True:
            if not self._consumers:
                self._wake.clear()
                await self._wake.wait()
            started = loop.time()
            try:
                jpeg = await self.render_now()
            except Exception:  # a bad frame must not end the stream
                log.exception("rendering a frame failed")
                jpeg = self.latest
            if jpeg is not None:
                self.ticks += 1
                for consumer in tuple(self._consumers):
                    try:
                        consumer.offer(jpeg)
                    except Exception:
                        log.exception("a visualization consumer failed; removing it")
                        self._consumers.discard(consumer)
            # a fixed rate (the encoders time frames by their count), catching up without bursts
            await asyncio.sleep(max(0.0, period - (loop.time() - started)))


# ------------------------------------------------------------------------------------------------ ffmpeg


class FfmpegEncoder:
    """One ffmpeg process reading JPEGs from stdin at ``fps`` and writing ``output_args``."""

    def __init__(self, ffmpeg: str, fps: float, output_args: list[str], name: str) -> None:
        self.ffmpeg = ffmpeg
        self.fps = fps
        self.output_args = output_args
        self.name = name
        self.proc: asyncio.subprocess.Process | None = None
        self._stderr_task: asyncio.Task[None] | None = None
        self.stderr_tail: deque[str] = deque(maxlen=20)
        self.frames_written = 0
        self.frames_dropped = 0

    @property
    def command(self) -> list[str]:
        return [
            self.ffmpeg,
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "image2pipe",
            "-framerate",
            f"{self.fps:g}",
            "-c:v",
            "mjpeg",
            "-i",
            "pipe:0",
            *self.output_args,
        ]

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        self._stderr_task = asyncio.create_task(self._read_stderr(), name=f"wdp-{self.name}-stderr")

    async def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            text = line.decode(errors="replace").rstrip()
            if text:
                self.stderr_tail.append(text)
                log.debug("%s: %s", self.name, text)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def offer(self, jpeg: bytes) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None or proc.stdin is None or proc.stdin.is_closing():
            self.frames_dropped += 1
            return
        transport = proc.stdin.transport
        if transport.get_write_buffer_size() > STDIN_BUFFER_LIMIT:  # type: ignore[attr-defined]
            self.frames_dropped += 1  # ffmpeg is behind: drop rather than queue without bound
            return
        proc.stdin.write(jpeg)
        self.frames_written += 1

    async def wait(self) -> int:
        assert self.proc is not None
        code = await self.proc.wait()
        if self._stderr_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._stderr_task
        return code

    async def stop(self, timeout: float = 5.0) -> int | None:
        """Close stdin (ffmpeg finishes the file/stream), then wait; kill if it does not exit in time."""
        proc = self.proc
        if proc is None:
            return None
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        if self._stderr_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._stderr_task
        if proc.stdin is not None:
            with contextlib.suppress(Exception):
                await proc.stdin.wait_closed()
        return proc.returncode

    @property
    def last_error(self) -> str:
        return self.stderr_tail[-1] if self.stderr_tail else ""


def x264_args(settings: VisualizationSettings, gop: int) -> list[str]:
    return [
        "-an",
        "-c:v",
        "libx264",
        "-preset",
        settings.x264_preset,
        "-tune",
        "zerolatency",
        "-pix_fmt",
        "yuv420p",
        "-g",
        str(gop),
        "-keyint_min",
        str(gop),
        "-sc_threshold",
        "0",
    ]


# ------------------------------------------------------------------------------------------------ HLS


class HlsStream:
    def __init__(self, ticker: FrameTicker, settings: VisualizationSettings) -> None:
        self.ticker = ticker
        self.settings = settings
        self.ffmpeg = find_ffmpeg(settings.ffmpeg)
        self._own_dir: tempfile.TemporaryDirectory[str] | None = None
        self.dir: Path | None = None
        self.encoder: FfmpegEncoder | None = None
        self._lock = asyncio.Lock()
        self._last_access = 0.0
        self._idle_task: asyncio.Task[None] | None = None
        self.starts = 0

    def available(self) -> tuple[bool, str]:
        if self.ffmpeg is None:
            return False, f"ffmpeg not found ({self.settings.ffmpeg!r}): install ffmpeg to enable HLS"
        return True, ""

    @property
    def running(self) -> bool:
        return self.encoder is not None and self.encoder.running

    def _directory(self) -> Path:
        if self.dir is None:
            if self.settings.hls_dir:
                self.dir = Path(self.settings.hls_dir)
                self.dir.mkdir(parents=True, exist_ok=True)
            else:
                self._own_dir = tempfile.TemporaryDirectory(prefix="wdp-hls-")
                self.dir = Path(self._own_dir.name)
        return self.dir

    async def ensure_running(self) -> Path:
        """Start the encoder if it is not running; record the access (keeps it alive)."""
        self._last_access = time.monotonic()
        async with self._lock:
            d = self._directory()
            if not self.running:
                if self.encoder is not None:
                    await self._stop_encoder()
                for old in d.iterdir():  # a restarted encoder numbers its segments from 0 again
                    if old.name == PLAYLIST or SEGMENT_NAME.match(old.name) or old.suffix == ".tmp":
                        old.unlink(missing_ok=True)
                s = self.settings
                gop = max(1, round(s.fps * s.hls_segment_s))
                assert self.ffmpeg is not None
                self.encoder = FfmpegEncoder(
                    self.ffmpeg,
                    s.fps,
                    [
                        *x264_args(s, gop),
                        "-f",
                        "hls",
                        "-hls_time",
                        f"{s.hls_segment_s:g}",
                        "-hls_list_size",
                        str(s.hls_list_size),
                        "-hls_flags",
                        "delete_segments+independent_segments+temp_file",
                        "-hls_segment_filename",
                        str(d / "seg_%06d.ts"),
                        str(d / PLAYLIST),
                    ],
                    "hls",
                )
                try:
                    await self.encoder.start()
                except OSError as exc:
                    self.encoder = None
                    raise HlsFailed(f"cannot start ffmpeg: {exc}") from exc
                self.ticker.add(self.encoder)
                self.starts += 1
                if self._idle_task is None:
                    self._idle_task = asyncio.create_task(self._stop_when_idle(), name="wdp-hls-idle")
        return d

    def touch(self) -> None:
        self._last_access = time.monotonic()

    async def playlist(self) -> str:
        """The live playlist, waiting up to hls_start_timeout_s for the first segment; until then an empty
        live playlist (players reload it). Raises HlsFailed when the encoder exited."""
        d = await self.ensure_running()
        encoder = self.encoder
        deadline = time.monotonic() + self.settings.hls_start_timeout_s
        path = d / PLAYLIST
        while True:
            if path.is_file():
                text = path.read_text()
                if "#EXTINF" in text:
                    return text
            if encoder is None or not encoder.running:
                if encoder is not None:
                    await encoder.wait()  # its stderr read to the end: the last line says why
                error = encoder.last_error if encoder is not None else ""
                raise HlsFailed("the HLS encoder stopped" + (f": {error}" if error else ""))
            if time.monotonic() > deadline:
                target = math.ceil(self.settings.hls_segment_s)
                return f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:0\n"
            await asyncio.sleep(0.1)

    def segment_path(self, name: str) -> Path | None:
        if self.dir is None or not SEGMENT_NAME.match(name):
            return None
        self.touch()
        path = self.dir / name
        return path if path.is_file() else None

    async def _stop_when_idle(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.settings.hls_idle_s / 2))
            if self.running and time.monotonic() - self._last_access > self.settings.hls_idle_s:
                async with self._lock:
                    await self._stop_encoder()

    async def _stop_encoder(self) -> None:
        enc, self.encoder = self.encoder, None
        if enc is not None:
            self.ticker.discard(enc)
            await enc.stop()

    async def close(self) -> None:
        if self._idle_task is not None:
            self._idle_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._idle_task
            self._idle_task = None
        async with self._lock:
            await self._stop_encoder()
        if self._own_dir is not None:
            self._own_dir.cleanup()
            self._own_dir = None
            self.dir = None

    def status(self) -> dict[str, Any]:
        ok, reason = self.available()
        enc = self.encoder
        return {
            "available": ok,
            "reason": reason,
            "running": self.running,
            "starts": self.starts,
            "frames_written": enc.frames_written if enc else 0,
            "last_error": enc.last_error if enc else "",
        }


# ------------------------------------------------------------------------------------------------ RTMP


class RtmpPush:
    """Pushes the rendered stream (H.264 in FLV) to ``rtmp_url`` from start until close, restarting ffmpeg
    ``rtmp_retry_s`` after it exits (receiver gone, network error)."""

    def __init__(self, ticker: FrameTicker, settings: VisualizationSettings) -> None:
        self.ticker = ticker
        self.settings = settings
        self.url = settings.rtmp_url
        self.ffmpeg = find_ffmpeg(settings.ffmpeg)
        self.encoder: FfmpegEncoder | None = None
        self._task: asyncio.Task[None] | None = None
        self.state = "off" if not self.url else "starting"
        self.attempts = 0
        self.last_error = ""
        self.frames_written = 0

    def available(self) -> tuple[bool, str]:
        if not self.url:
            return False, "no visualization.rtmp_url configured"
        if self.ffmpeg is None:
            return (
                False,
                f"ffmpeg not found ({self.settings.ffmpeg!r}): install ffmpeg to enable the RTMP push",
            )
        return True, ""

    def start(self) -> None:
        ok, reason = self.available()
        if not ok:
            self.state = "unavailable" if self.url else "off"
            if self.url:
                self.last_error = reason
                log.warning("RTMP push disabled: %s", reason)
            return
        self._task = asyncio.create_task(self._run(), name="wdp-rtmp-push")

    async def _run(self) -> None:
        s = self.settings
        assert self.url is not None and self.ffmpeg is not None
        gop = max(1, round(s.fps * 2))
        while True:
            self.attempts += 1
            enc = self.encoder = FfmpegEncoder(self.ffmpeg, s.fps, [*x264_args(s, gop), "-f", "flv", self.url], "rtmp")
            try:
                await enc.start()
                self.state = "pushing"
                self.ticker.add(enc)
                code = await enc.wait()
                self.last_error = enc.last_error or f"ffmpeg exited with code {code}"
            except OSError as exc:
                self.last_error = f"cannot start ffmpeg: {exc}"
            finally:
                self.ticker.discard(enc)
                self.frames_written += enc.frames_written
            self.state = "retrying"
            log.warning(
                "RTMP push to %s stopped (%s); retrying in %g s",
                redact_url(self.url),
                self.last_error,
                s.rtmp_retry_s,
            )
            await asyncio.sleep(s.rtmp_retry_s)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.encoder is not None:
            self.ticker.discard(self.encoder)
            await self.encoder.stop()
            self.encoder = None
        if self.url and self.state != "unavailable":
            self.state = "stopped"

    def status(self) -> dict[str, Any]:
        ok, reason = self.available()
        enc = self.encoder
        return {
            "configured": bool(self.url),
            "available": ok,
            "reason": reason,
            "state": self.state,
            "url": redact_url(self.url) if self.url else None,
            "attempts": self.attempts,
            "frames_written": self.frames_written + (enc.frames_written if enc and enc.running else 0),
            "last_error": self.last_error,
        }


# ------------------------------------------------------------------------------------------------ facade


class Visualization:
    """The ticker, the HLS stream and the RTMP push of one app (opened and closed in its lifespan)."""

    def __init__(self, engine: EngineView, settings: VisualizationSettings) -> None:
        self.settings = settings
        self.ticker = FrameTicker(engine, settings)
        self.hls = HlsStream(self.ticker, settings)
        self.rtmp = RtmpPush(self.ticker, settings)
        self.mjpeg_clients = 0

    async def open(self) -> None:
        self.ticker.start()
        self.rtmp.start()

    async def close(self) -> None:
        await self.rtmp.close()
        await self.hls.close()
        await self.ticker.stop()

    def status(self, frame: PoseFrame | None) -> dict[str, Any]:
        s = self.settings
        return {
            "width": s.width,
            "height": s.height,
            "fps": s.fps,
            "source": frame.source if frame is not None else None,
            "mjpeg": {"available": True, "clients": self.mjpeg_clients, "max_clients": s.max_mjpeg_clients},
            "hls": self.hls.status(),
            "rtmp": self.rtmp.status(),
            "frames_rendered": self.ticker.frames_rendered,
        }
