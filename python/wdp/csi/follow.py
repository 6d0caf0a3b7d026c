"""A capture file that is still being written, followed like ``tail -F``: csitool's ``log_to_file`` .dat,
``tcpdump -w`` of nexmon_csi (a pcap), an ESP32 log being appended.

A reader thread polls the file, feeds appended bytes to the native streaming parser (which keeps a record
cut by the writer until its end arrives) and queues the frames. The capture's own clock gives the spacing of
packets, mapped onto the host clock at the first packet read; packets whose clock is unusable (missing,
not advancing, jumping back or ahead) take their arrival time instead.

The file may not exist yet (waited for), be truncated (``> file``: read again from its start) or be rotated
(a new file under the name: the old one is read to its end first, then the new one from its start).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wdp.csi.capture_file import Capture, StreamReader, stream_formats
from wdp.csi.sources import RouterInfo
from wdp.csi.threaded_source import ThreadedLiveSource

__all__ = ["FollowSource", "FollowStats"]

_BY_SUFFIX = {".pcap": "nexmon_pcap", ".csv": "esp32", ".txt": "esp32", ".log": "esp32", ".csi": "picoscenes"}
_SNIFF_BYTES = 64  # bytes a file needs before its format is guessed from them
# A capture clock running ahead of the host by more than this has jumped (device clock reset, wrap).
_AHEAD_S = 1.0


@dataclass(frozen=True)
class FollowStats:
    """Counters of a FollowSource since it was created."""

    bytes: int = 0  # read from the file(s)
    frames: int = 0  # records decoded (and queued)
    malformed: int = 0  # records the parser rejected
    skipped: int = 0  # records without CSI (other pcap packets, text lines)
    opens: int = 0  # files opened (first one, then after truncation or rotation)
    truncations: int = 0  # the file shrank under us: read again from the start
    rotations: int = 0  # a new file appeared under the name
    reanchors: int = 0  # times the capture clock was mapped onto the host clock anew
    lost: int = 0  # frames dropped because the reader fell behind (queue full)
    following: bool = False  # a file is open


class FollowSource(ThreadedLiveSource):
    """Frames appended to ``path`` as they are written.

    ``format``: one of the stream formats, or None to detect it (from the first bytes once there are some,
    else from the suffix). ``from_start``: false (default) starts at the file's current end like
    ``tail -f`` (what is there is still parsed, so the parser knows the pcap header or the record
    boundaries, but its frames are not delivered); true delivers the existing content first.
    """

    thread_label = "follow"
    counters = tuple("bytes frames malformed skipped opens truncations rotations reanchors".split())

    def __init__(
        self,
        *,
        path: str | Path,
        format: str | None = None,
        router_id: str | None = None,
        from_start: bool = False,
        poll_s: float = 0.05,
        expected_rate_hz: float | None = None,
        capacity: int = 8192,
        read_chunk: int = 1 << 20,
    ) -> None:
        if format is not None and format not in stream_formats():
            raise ValueError(f"unknown stream format {format!r} (one of {', '.join(stream_formats())})")
        if not poll_s > 0:
            raise ValueError("poll_s must be > 0")
        self.path = Path(path)
        super().__init__(router_id or f"follow-{self.path.name}", capacity)
        self.format = format
        self.from_start = bool(from_start)
        self.poll_s = float(poll_s)
        self.expected_rate_hz = expected_rate_hz
        self.read_chunk = int(read_chunk)
        self._following = False
        self._last_error = ""
        # clock mapping (reader thread only): host = capture + offset
        self._offset: float | None = None
        self._last_cap_t = -math.inf

    # ------------------------------------------------------------------------------ CsiSource

    def routers(self) -> list[RouterInfo]:
        return [RouterInfo(self.router_id, self.path.name, self.format or "", str(self.path), 0, self.expected_rate_hz)]

    # ---------------------------------------------------------------------------- status

    def stats(self) -> FollowStats:
        with self._lock:
            return FollowStats(**self._counts, lost=self._queue.lost, following=self._following)

    def status_details(self) -> dict[str, Any]:
        """Path, format and counters, for system status pages."""
        return {
            "path": str(self.path),
            "format": self.format,
            "from_start": self.from_start,
            "last_error": self._last_error,
            **asdict(self.stats()),
        }

    # ------------------------------------------------------------------------ reader thread

    def _format_of(self, fh: Any) -> str | None:
        if self.format is not None:
            return self.format
        head = os.pread(fh.fileno(), 4096, 0)
        if len(head) < _SNIFF_BYTES:
            return None  # too little to tell: wait for more
        from wdp import _native

        sniffed = _native.detect_format(head)
        if sniffed:
            return str(sniffed)
        if self.path.suffix.lower() in _BY_SUFFIX:
            return _BY_SUFFIX[self.path.suffix.lower()]
        self._last_error = f"cannot tell the CSI format of {self.path}; set format (one of {stream_formats()})"
        return None

    def _run(self) -> None:
        skip_existing = not self.from_start  # only the first file: later ones are new content
        while not self._stop.is_set():
            try:
                fh = self.path.open("rb")
            except OSError as e:  # not there yet (or between a rotation's rename and create)
                self._last_error = f"open: {e}"
                skip_existing = False  # whatever it holds once it appears was written after we started
                self._stop.wait(self.poll_s)
                continue
            try:
                skip_existing = self._follow(fh, skip_existing)
            except OSError as e:
                self._last_error = f"read: {e}"
                self._stop.wait(self.poll_s)
            finally:
                fh.close()
                with self._lock:
                    self._following = False

    def _follow(self, fh: Any, skip_existing: bool) -> bool:
        """Read one file until it is truncated or replaced (or the source closes); returns skip_existing
        for the next file."""
        fmt = None
        while fmt is None:
            fmt = self._format_of(fh)
            if fmt is None:
                if self._stop.wait(self.poll_s):
                    return skip_existing
                if self._replaced(fh):
                    return skip_existing
        self.format = fmt
        reader = StreamReader(fmt)
        st = os.fstat(fh.fileno())
        ino = (st.st_dev, st.st_ino)
        skip_until = st.st_size if skip_existing else 0
        pos = 0
        counted = [0, 0]  # the reader's malformed and skipped counts already added to ours
        with self._lock:
            self._following = True
            self._counts["opens"] += 1
        while not self._stop.is_set():
            chunk = fh.read(self.read_chunk)
            if chunk:
                # what was there when we came is parsed (pcap header, record boundaries) but not delivered
                old = max(0, min(len(chunk), skip_until - pos))
                pos += len(chunk)
                if old:
                    self._deliver(reader, reader.feed(chunk[:old]), counted, deliver=False, bytes_read=old)
                if old < len(chunk):
                    rest = chunk[old:]
                    self._deliver(reader, reader.feed(rest), counted, deliver=True, bytes_read=len(rest))
                continue
            # at the end: has the file shrunk, or been replaced?
            try:
                now_st = os.stat(self.path)
            except FileNotFoundError:
                now_st = None
            if now_st is not None and (now_st.st_dev, now_st.st_ino) != ino:
                self._deliver(reader, reader.finish(), counted, deliver=True, bytes_read=0)  # rest of the old one
                self._count(rotations=1)
                return False
            if os.fstat(fh.fileno()).st_size < pos:
                self._count(truncations=1)
                return False
            self._stop.wait(self.poll_s)
        return False

    def _replaced(self, fh: Any) -> bool:
        try:
            a, b = os.fstat(fh.fileno()), os.stat(self.path)
        except OSError:
            return True
        return (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino)

    def _deliver(
        self, reader: StreamReader, cap: Capture, counted: list[int], *, deliver: bool, bytes_read: int
    ) -> None:
        stats = reader.stats
        malformed, skipped = stats.malformed - counted[0], stats.skipped - counted[1]
        counted[:] = [stats.malformed, stats.skipped]
        keep = [i for i, c in enumerate(cap.csi) if c.size] if deliver else []
        self._count(bytes=bytes_read, frames=len(keep), malformed=malformed, skipped=skipped)
        if not keep:
            return
        arrival_perf, now = time.perf_counter(), time.time()
        cap_t = np.asarray(cap.meta["timestamp"], dtype=np.float64)[keep]
        if self._offset is None:
            # the first packets: the newest of them arrived now (a backlog read from the start lies before)
            finite = cap_t[np.isfinite(cap_t)]
            if finite.size:
                self._anchor(float(finite.max()), now)
                self._last_cap_t = -math.inf
        self._queue.put([self._host_time(float(t), now) for t in cap_t], arrival_perf, [cap.csi[i] for i in keep])

    def _anchor(self, cap_t: float, now: float) -> None:
        self._offset = now - cap_t
        self._last_cap_t = cap_t
        self._count(reanchors=1)

    def _host_time(self, cap_t: float, now: float) -> float:
        """Capture time -> host epoch with the offset set at the first packets, while the capture clock
        advances and stays behind the host's; a clock that stands still (no usable clock) gives the arrival
        time; one that jumps back (wrap, device reset) or ahead is anchored anew at the arrival time."""
        if not math.isfinite(cap_t) or cap_t == self._last_cap_t:
            return now  # the queue keeps timestamps increasing
        if self._offset is not None and cap_t > self._last_cap_t:
            t = cap_t + self._offset
            if t <= now + _AHEAD_S:
                self._last_cap_t = cap_t
                return t
        self._anchor(cap_t, now)
        return now
