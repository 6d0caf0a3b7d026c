"""The hand-over between a source's reader thread and ``CsiSource.read``: packets of one router, bounded."""

from __future__ import annotations

import collections
import threading
import time

import numpy as np

from wdp.csi.sources import PacketBatch

__all__ = ["PacketQueue"]


class PacketQueue:
    """Packets (timestamp, perf_counter arrival, csi) of one router, from one producer thread to ``take``.

    Full: the oldest packet goes (a live stream cannot wait for its reader) and is counted in ``lost``.
    Timestamps are made strictly increasing: lines or records read together share their arrival time.
    """

    def __init__(self, router_id: str, capacity: int = 8192) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.router_id = router_id
        self.capacity = int(capacity)
        self.lost = 0
        self._items: collections.deque[tuple[float, float, np.ndarray]] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._last_t = -np.inf

    def put(self, timestamps: list[float], arrival: float, csi: list[np.ndarray]) -> None:
        with self._cond:
            for t, c in zip(timestamps, csi, strict=True):
                t = max(float(t), self._last_t + 1e-6)
                self._last_t = t
                if len(self._items) >= self.capacity:
                    self._items.popleft()
                    self.lost += 1
                self._items.append((t, arrival, c))
            if csi:
                self._cond.notify_all()

    @property
    def last_timestamp(self) -> float:
        return self._last_t

    def take(self, timeout: float) -> list[PacketBatch]:
        """Everything queued, waiting up to ``timeout`` s for something; [] when nothing came or closed."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            while not self._items and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            items = list(self._items)
            self._items.clear()
        if not items:
            return []
        t = np.array([i[0] for i in items])
        arrival = np.array([i[1] for i in items])
        return [PacketBatch(self.router_id, t, [i[2] for i in items], arrival)]

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
