"""Settings of the browser dashboard and the server-side visualization stream (``dashboard`` and
``visualization`` sections of ServeSettings)."""

from __future__ import annotations

from typing import Annotated

import msgspec


class DashboardSettings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    enabled: bool = True  # the page at / and its assets under /dashboard/


class VisualizationSettings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Skeleton frames rendered on the server (Pillow) as MJPEG, HLS and an optional RTMP push (ffmpeg)."""

    enabled: bool = True
    width: Annotated[int, msgspec.Meta(ge=64, le=3840)] = 640
    height: Annotated[int, msgspec.Meta(ge=64, le=2160)] = 360
    fps: Annotated[float, msgspec.Meta(gt=0.0, le=60.0)] = 10.0  # rendered frames per second while watched
    jpeg_quality: Annotated[int, msgspec.Meta(ge=10, le=95)] = 80
    dense: bool = True  # paint the persons' body parts (DensePose colouring) when the engine makes them
    max_mjpeg_clients: int = 16
    ffmpeg: str = "ffmpeg"  # executable name or path; HLS and RTMP report themselves unavailable without it
    x264_preset: str = "ultrafast"  # live encoding on a small CPU
    hls_segment_s: Annotated[float, msgspec.Meta(ge=0.5, le=10.0)] = 1.0
    hls_list_size: Annotated[int, msgspec.Meta(ge=2, le=60)] = 6
    hls_idle_s: float = 30.0  # the HLS encoder stops this long after the last playlist/segment request
    hls_start_timeout_s: float = 4.0  # a playlist request waits this long for the first segment
    hls_dir: str | None = None  # where segments are written (default: a temporary directory)
    rtmp_url: str | None = None  # push the rendered stream here (rtmp://host[:port]/app/key) while running
    rtmp_retry_s: float = 5.0  # wait before restarting a failed push
