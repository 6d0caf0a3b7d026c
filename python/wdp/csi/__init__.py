"""CSI input: file/stream parsers, sanitization and live capture (backed by wdp._native)."""

from __future__ import annotations

from wdp.csi.capture_file import (
    Capture,
    CsiFrame,
    ParseStats,
    StreamReader,
    UnknownFormatError,
    detect_format,
    parse_bytes,
    read_capture,
    read_nexmon_grouped,
    stream_formats,
)
from wdp.csi.sanitize import (
    HampelStream,
    SanitizeConfig,
    Sanitizer,
    StreamResampler,
    hampel_filter,
    interpolate_subcarriers,
    normalize_amplitude,
    remove_linear_phase,
    resample,
    sanitize_phase,
    unwrap_phase,
)

__all__ = [
    "Capture",
    "CsiFrame",
    "ParseStats",
    "StreamReader",
    "UnknownFormatError",
    "detect_format",
    "parse_bytes",
    "read_capture",
    "read_nexmon_grouped",
    "stream_formats",
]
__all__ += [
    "HampelStream",
    "SanitizeConfig",
    "Sanitizer",
    "StreamResampler",
    "hampel_filter",
    "interpolate_subcarriers",
    "normalize_amplitude",
    "remove_linear_phase",
    "resample",
    "sanitize_phase",
    "unwrap_phase",
]
from wdp.csi.udp import CaptureBatch, CaptureStats, UdpSource, encode_relay_datagram  # noqa: E402

__all__ += ["CaptureBatch", "CaptureStats", "UdpSource", "encode_relay_datagram"]
from wdp.csi.follow import FollowSource, FollowStats  # noqa: E402
from wdp.csi.serial_source import SerialSource, SerialStats  # noqa: E402

__all__ += ["FollowSource", "FollowStats", "SerialSource", "SerialStats"]
