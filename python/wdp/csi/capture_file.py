"""Reading CSI captures from files and byte streams through the native parsers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from wdp import _native

# Extension -> format; .dat is shared by Intel 5300 and Atheros and is sniffed.
_BY_SUFFIX = {".pcap": "nexmon_pcap", ".csv": "esp32", ".csi": "picoscenes"}
META_FIELDS = (
    "timestamp",
    "timestamp_raw",
    "rssi",
    "rssi_ant",
    "noise",
    "agc",
    "channel",
    "frequency_mhz",
    "bandwidth_mhz",
    "mac",
    "seq",
    "core",
    "spatial_stream",
    "rate",
    "chip",
    "perm",
    "record_index",
)
NO_VALUE = np.iinfo(np.int32).min  # native sentinel for "format lacks this field"
ESPECTRE_NPZ = "espectre_npz"
# Formats read from whole files only (no StreamReader): archives rather than byte streams.
FILE_ONLY_FORMATS = [ESPECTRE_NPZ]
# Files that sit beside captures in the real datasets but hold no CSI.
_NOT_CAPTURES = {".json": "a JSON metadata file", ".md": "a Markdown document"}


class ParseStats(msgspec.Struct, frozen=True, kw_only=True):
    bytes: int
    records: int
    frames: int
    malformed: int
    skipped: int
    truncated: int


class CsiFrame(msgspec.Struct, frozen=True, kw_only=True):
    """One CSI measurement: csi is complex64 shaped (subcarriers, rx, tx)."""

    csi: Any
    timestamp: float
    rssi: int | None
    noise: int | None
    channel: int | None
    bandwidth_mhz: int | None
    mac: str
    seq: int
    core: int
    spatial_stream: int
    subcarrier_index: Any = None


class Capture(msgspec.Struct, frozen=True, kw_only=True):
    """Frames of one capture: a list of CSI arrays plus metadata columns (numpy arrays)."""

    format: str
    csi: list[Any]
    meta: dict[str, Any]
    subcarrier_index: list[Any]
    stats: ParseStats

    def __len__(self) -> int:
        return len(self.csi)

    def frame(self, i: int) -> CsiFrame:
        m = self.meta

        def opt(name: str) -> int | None:
            v = int(m[name][i])
            return None if v == NO_VALUE else v

        return CsiFrame(
            csi=self.csi[i],
            timestamp=float(m["timestamp"][i]),
            rssi=opt("rssi"),
            noise=opt("noise"),
            channel=opt("channel"),
            bandwidth_mhz=opt("bandwidth_mhz"),
            mac=":".join(f"{b:02x}" for b in m["mac"][i]),
            seq=int(m["seq"][i]),
            core=int(m["core"][i]),
            spatial_stream=int(m["spatial_stream"][i]),
            subcarrier_index=self.subcarrier_index[i],
        )

    def __iter__(self) -> Iterator[CsiFrame]:
        return (self.frame(i) for i in range(len(self)))

    def shapes(self) -> dict[tuple[int, ...], int]:
        out: dict[tuple[int, ...], int] = {}
        for a in self.csi:
            out[a.shape] = out.get(a.shape, 0) + 1
        return out


def _capture(fmt: str, frames: dict[str, Any], stats: dict[str, int]) -> Capture:
    return Capture(
        format=fmt,
        csi=frames["csi"],
        subcarrier_index=frames["subcarrier_index"],
        meta={k: frames[k] for k in META_FIELDS},
        stats=ParseStats(**stats),
    )


class UnknownFormatError(ValueError):
    """detect_format found no format: ``path`` and the ``formats`` one may pass instead (a command line says
    how its own flag is spelled)."""

    def __init__(self, path: Path, formats: list[str]) -> None:
        self.path = path
        self.formats = formats
        super().__init__(f"cannot tell the CSI format of {path}; pass format= explicitly (one of {', '.join(formats)})")


def detect_format(path: str | Path) -> str:
    """Guess a capture's format from its suffix, then from its first bytes."""
    path = Path(path)
    with path.open("rb") as fh:
        head = fh.read(4096)
    # File-only formats (archives, not byte streams) are sniffed here, before the native stream sniffers.
    if looks_like_espectre_npz(path, head):
        return ESPECTRE_NPZ
    sniffed = _native.detect_format(head)
    if sniffed:
        return sniffed
    if path.suffix.lower() in _BY_SUFFIX:
        return _BY_SUFFIX[path.suffix.lower()]
    if path.suffix.lower() in _NOT_CAPTURES:
        raise ValueError(f"{path} is {_NOT_CAPTURES[path.suffix.lower()]}, not a CSI capture")
    raise UnknownFormatError(path, stream_formats() + FILE_ONLY_FORMATS)


def stream_formats() -> list[str]:
    return list(_native.stream_formats())


def read_espectre_npz(path: str | Path | bytes) -> Capture:
    """ESPectre `.npz` (see wdp.csi.espectre_npz); imported on use, that module builds on this one."""
    from wdp.csi.espectre_npz import read_espectre_npz as read

    return read(path)


def looks_like_espectre_npz(path: Path, head: bytes) -> bool:
    return path.suffix.lower() == ".npz" and head.startswith(b"PK\x03\x04")


def read_capture(path: str | Path, format: str | None = None) -> Capture:
    """Parse a whole capture file. Malformed records are counted in stats and skipped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such capture file: {path}")
    fmt = format or detect_format(path)
    if fmt == ESPECTRE_NPZ:
        return read_espectre_npz(path)
    frames, stats = _native.read_file(str(path), fmt)
    return _capture(fmt, frames, stats)


def parse_bytes(data: bytes, format: str) -> Capture:
    if format == ESPECTRE_NPZ:
        return read_espectre_npz(bytes(data))
    frames, stats = _native.parse_bytes(format, bytes(data))
    return _capture(format, frames, stats)


class StreamReader:
    """Incremental parser: feed chunks as they arrive, get the frames completed so far."""

    def __init__(self, format: str) -> None:
        if format in FILE_ONLY_FORMATS:
            raise ValueError(
                f"{format!r} is a file-only format (a whole archive, not a byte stream); "
                "use read_capture(path) or parse_bytes(data, format) instead of StreamReader"
            )
        self.format = format
        self._parser = _native.StreamParser(format)

    def feed(self, data: bytes) -> Capture:
        return _capture(self.format, self._parser.feed(bytes(data)), self._parser.stats)

    def finish(self) -> Capture:
        return _capture(self.format, self._parser.finish(), self._parser.stats)

    @property
    def stats(self) -> ParseStats:
        return ParseStats(**self._parser.stats)


def read_nexmon_grouped(path: str | Path) -> Capture:
    """Nexmon pcap with per-(core, stream) records merged by sequence number into (sub, core, stream)."""
    frames, stats = _native.group_nexmon(str(path))
    return _capture("nexmon_pcap", frames, stats)
