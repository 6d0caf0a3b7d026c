"""A live source fed from outside the engine: remote capture boxes push CSI packets (the gRPC ``IngestCsi``
stream) and the engine reads them like any other live source.

``push(router_id, timestamps, csi)`` may be called from any thread; each router gets its own bounded
PacketQueue (full: the oldest packet goes and is counted as lost). A router appears on its first packet, up
to ``max_routers``; packets of further routers are refused with ValueError (counted by the caller).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np

from wdp.csi.packet_queue import PacketQueue
from wdp.csi.sources import CsiSource, PacketBatch, RouterInfo
from wdp.schemas import FrameSource

__all__ = ["PushSource"]


class PushSource(CsiSource):
    kind: ClassVar[FrameSource] = "live"
    realtime = True

    def __init__(
        self,
        capacity: int = 4096,
        max_routers: int = 64,
        expected_rate_hz: float | None = 100.0,
        kind_name: str = "grpc",
    ) -> None:
        self.capacity = int(capacity)
        self.max_routers = int(max_routers)
        self.expected_rate_hz = expected_rate_hz
        self.kind_name = kind_name
        self._queues: dict[str, PacketQueue] = {}
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._opened = False
        self._closed = False
        self.packets = 0

    def open(self, origin: float) -> None:
        self._opened = True

    def routers(self) -> list[RouterInfo]:
        with self._lock:
            ids = list(self._queues)
        return [RouterInfo(r, r, self.kind_name, expected_rate_hz=self.expected_rate_hz) for r in ids]

    def push(self, router_id: str, timestamps: Sequence[float], csi: Sequence[np.ndarray]) -> None:
        """Queue packets of one router (complex64 (subcarriers, rx, tx) arrays, epoch-second timestamps)."""
        if self._closed:
            raise ValueError("source is closed")
        arrival = time.perf_counter()
        with self._lock:
            queue = self._queues.get(router_id)
            if queue is None:
                if len(self._queues) >= self.max_routers:
                    raise ValueError(f"too many routers (max {self.max_routers})")
                queue = self._queues[router_id] = PacketQueue(router_id, self.capacity)
            self.packets += len(csi)
        queue.put(list(timestamps), arrival, list(csi))
        with self._wake:
            self._wake.notify_all()

    def read(self, timeout: float) -> list[PacketBatch]:
        if not self._opened:
            raise RuntimeError("source not opened")
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            with self._lock:
                queues = list(self._queues.values())
            out = [b for q in queues for b in q.take(0.0)]
            if out or self._closed:
                return out
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            with self._wake:
                self._wake.wait(min(left, 0.05))

    @property
    def exhausted(self) -> bool:
        return self._closed

    def stream_time(self) -> float | None:
        return time.time()

    def lost_packets(self) -> Mapping[str, int]:
        with self._lock:
            return {r: q.lost for r, q in self._queues.items() if q.lost}

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            queues = list(self._queues.values())
            self._wake.notify_all()
        for q in queues:
            q.close()
