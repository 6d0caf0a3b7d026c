"""Live CSI over UDP: a native receiver thread parses datagrams into a lock-free ring of fixed-shape frames,
and the consumer reads runs of frames as zero-copy numpy views.

Formats: ``nexmon_udp`` (nexmon_csi, port 5500), ``esp32`` (one ESP32-CSI-Tool CSV line per datagram) and
``raw``, wdp's own relay format for senders that already hold complex CSI (simulators, relays)::

    u32 n_sub | u16 n_rx | u16 n_tx | f64 timestamp | complex64 csi[n_sub * n_rx * n_tx]   (little-endian)

Example::

    with UdpSource(port=5500, format="nexmon_udp", shape=(256, 1, 1)) as src:
        for batch in src.iter_batches():
            amplitude = np.abs(batch.csi)      # (k, 256, 1, 1) view into the ring, valid in this loop body
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import msgspec
import numpy as np

from wdp import _native

RELAY_FORMAT = "raw"
FORMATS = ("nexmon_udp", "esp32", RELAY_FORMAT)
NEXMON_PORT = 5500
_RELAY_HEADER = struct.Struct("<IHHd")
_BATCH_FIELDS = (
    "csi",
    "timestamp",
    "seq",
    "arrival_ns",
    "rssi",
    "noise",
    "core",
    "spatial_stream",
    "source_id",
    "mac",
)


class CaptureStats(msgspec.Struct, frozen=True, kw_only=True):
    """Receiver counters since the source was opened."""

    packets: int  # datagrams received
    bytes: int  # payload bytes received
    frames: int  # frames parsed with the ring's shape
    malformed: int  # datagrams the parser rejected (or longer than max_datagram)
    skipped: int  # well-formed datagrams without CSI
    shape_mismatch: int  # frames of another shape than the ring's (skipped)
    dropped_overflow: int  # frames lost because the reader fell behind (= dropped_oldest + dropped_incoming)
    dropped_oldest: int  # the oldest unread frame made room for a new one
    dropped_incoming: int  # a new frame found every recyclable slot held by the reader's open batches
    unknown_sources: int  # frames from senders beyond the source table (source_id -1)


class CaptureBatch:
    """Consecutive frames viewed in place in the ring: csi is complex64 (k, n_sub, n_rx, n_tx), the metadata
    fields are (k,) arrays (mac is (k, 6)). The arrays are read-only views that stay valid until
    :meth:`release` (called on leaving a ``with`` block); :meth:`copy` gives owned arrays to keep.
    """

    __slots__ = ("first", "_views", "_owner", "_released")

    def __init__(self, first: int, views: dict[str, Any], owner: UdpSource | None) -> None:
        self.first = first  # stream position of the first frame (frames stored in the ring before it)
        self._views = views
        self._owner = owner
        self._released = owner is None

    def __len__(self) -> int:
        return int(self._views["csi"].shape[0])

    def _field(self, name: str) -> Any:
        if self._released and self._owner is not None:
            raise RuntimeError("CaptureBatch was released: its views may now hold newer frames (use copy())")
        return self._views[name]

    csi = property(lambda self: self._field("csi"))
    timestamp = property(lambda self: self._field("timestamp"))  # format's own clock (s); NaN if none
    seq = property(lambda self: self._field("seq"))
    arrival_ns = property(lambda self: self._field("arrival_ns"))  # kernel receive time, ns since epoch
    rssi = property(lambda self: self._field("rssi"))
    noise = property(lambda self: self._field("noise"))
    core = property(lambda self: self._field("core"))
    spatial_stream = property(lambda self: self._field("spatial_stream"))
    source_id = property(lambda self: self._field("source_id"))  # index into UdpSource.sources
    mac = property(lambda self: self._field("mac"))

    @property
    def released(self) -> bool:
        return self._released

    def copy(self) -> CaptureBatch:
        """Owned copies of the arrays (a batch that needs no release)."""
        return CaptureBatch(self.first, {k: np.array(self._field(k)) for k in _BATCH_FIELDS}, None)

    def release(self) -> None:
        """Hand the slots back to the receiver. Idempotent; batches may be released in any order."""
        if not self._released:
            self._released = True
            assert self._owner is not None
            self._owner._on_release(self)

    def __enter__(self) -> CaptureBatch:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


class UdpSource:
    """A bound UDP socket plus a native receiver thread feeding a ring of ``capacity`` frames of ``shape``.

    The socket is bound on construction (``port=0`` picks a free port, see :attr:`port`); receiving starts
    with :meth:`start` or on entering a ``with`` block. One thread should read from a source.
    When the reader falls behind, the oldest unread frames are dropped and counted (stats.dropped_overflow).
    """

    def __init__(
        self,
        *,
        host: str = "0.0.0.0",
        port: int = NEXMON_PORT,
        format: str = "nexmon_udp",
        shape: tuple[int, int, int] = (256, 1, 1),
        capacity: int = 4096,
        rcvbuf_bytes: int = 32 << 20,
        batch: int = 64,
        max_datagram: int = 65536,
    ) -> None:
        if format not in FORMATS:
            raise ValueError(f"unknown UDP CSI format {format!r}; expected one of {', '.join(FORMATS)}")
        n_sub, n_rx, n_tx = (int(v) for v in shape)
        self.format = format
        self._cap = _native.UdpCapture(
            host,
            int(port),
            format,
            n_sub,
            n_rx,
            n_tx,
            capacity=int(capacity),
            rcvbuf_bytes=int(rcvbuf_bytes),
            batch=int(batch),
            max_datagram=int(max_datagram),
        )
        self._open: deque[CaptureBatch] = deque()  # acquired batches, oldest first

    # ---- lifecycle ----
    def start(self) -> UdpSource:
        self._cap.start()
        return self

    def stop(self) -> None:
        """Stop the receiver thread (prompt: it is woken, not polled). Unread frames stay readable."""
        self._cap.stop()

    close = stop

    def __enter__(self) -> UdpSource:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # ---- state ----
    @property
    def port(self) -> int:
        return int(self._cap.port)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self._cap.shape)  # type: ignore[return-value]

    @property
    def capacity(self) -> int:
        return int(self._cap.capacity)

    @property
    def running(self) -> bool:
        return bool(self._cap.running)

    @property
    def available(self) -> int:
        """Frames received and not yet read."""
        return int(self._cap.available)

    @property
    def rcvbuf_bytes(self) -> int:
        """Socket receive buffer the kernel granted (Linux reports twice the usable size)."""
        return int(self._cap.rcvbuf_bytes)

    @property
    def stats(self) -> CaptureStats:
        return CaptureStats(**self._cap.stats)

    @property
    def sources(self) -> list[str]:
        """Sender addresses ("ip:port") indexed by a frame's source_id."""
        return list(self._cap.sources)

    # ---- reading ----
    def wait_for(self, n: int, timeout: float) -> bool:
        """Block (without the GIL) until n frames are unread or timeout seconds pass; True if they are.
        Returns at once when the receiver is not running. n is capped at the capacity."""
        return bool(self._cap.wait_for(int(n), float(timeout)))

    def read(self, max_frames: int | None = None, *, timeout: float = 0.0, min_frames: int = 1) -> CaptureBatch:
        """The oldest unread frames, up to max_frames, as one zero-copy batch (maybe empty).

        With timeout > 0 first waits for min_frames. A batch never wraps around the ring's end, so it can
        hold fewer frames than are available; read again for the rest. Release it when done.
        """
        if timeout > 0 and self.available < min_frames:
            self.wait_for(min_frames, timeout)
        first, views = self._cap.acquire(self.capacity if max_frames is None else max(0, int(max_frames)))
        if views["csi"].shape[0] == 0:
            return CaptureBatch(int(first), views, None)  # nothing claimed: nothing to release
        batch = CaptureBatch(int(first), views, self)
        self._open.append(batch)
        return batch

    def iter_batches(self, max_frames: int | None = None, *, timeout: float = 0.2) -> Iterator[CaptureBatch]:
        """Yield non-empty batches until the receiver stops and everything is read. Each batch is released
        when the loop asks for the next one (copy() what must outlive the loop body)."""
        while True:
            batch = self.read(max_frames, timeout=timeout)
            if not len(batch):
                if not self.running and self.available == 0:
                    return
                continue
            try:
                yield batch
            finally:
                batch.release()

    def _on_release(self, batch: CaptureBatch) -> None:
        # The ring frees its oldest held frames first: free the released prefix of the open batches.
        count = 0
        while self._open and self._open[0]._released:
            count += len(self._open.popleft())
        if count:
            self._cap.release(count)


def encode_relay_datagram(csi: np.ndarray, timestamp: float = float("nan")) -> bytes:
    """One datagram of the ``raw`` relay format for a (n_sub, n_rx, n_tx) CSI array."""
    a = np.asarray(csi)
    if a.ndim != 3:
        raise ValueError(f"csi must be (n_sub, n_rx, n_tx), got shape {a.shape}")
    header = _RELAY_HEADER.pack(a.shape[0], a.shape[1], a.shape[2], float(timestamp))
    return header + np.ascontiguousarray(a, dtype="<c8").tobytes()
