"""A live source whose packets come from one reader thread of its own (a serial port, a followed file)."""

from __future__ import annotations

import threading
import time
from abc import abstractmethod
from collections.abc import Mapping
from typing import ClassVar

from wdp.csi.packet_queue import PacketQueue
from wdp.csi.sources import CsiSource, PacketBatch
from wdp.schemas import FrameSource

__all__ = ["ThreadedLiveSource"]


class ThreadedLiveSource(CsiSource):
    """One router fed by a reader thread (``_run``, started by ``open``) through a bounded PacketQueue.

    Packets carry host epoch times. ``_counts`` holds one count per name in ``counters`` (added to with
    ``_count``);
    ``_lock`` guards them, ``_closed`` and whatever other state the subclass shares with its reader thread.
    ``_stop`` is set on close, and ``_run`` returns once it is. Subclasses give ``thread_label`` (the
    thread is named ``wdp-{thread_label}-{router_id}``), ``counters``, ``_run``, ``routers`` and their own
    status.
    """

    kind: ClassVar[FrameSource] = "live"
    realtime = True
    thread_label: ClassVar[str]
    counters: ClassVar[tuple[str, ...]]

    def __init__(self, router_id: str, capacity: int) -> None:
        self.router_id = router_id
        self._queue = PacketQueue(router_id, capacity)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._counts = dict.fromkeys(self.counters, 0)

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for k, v in deltas.items():
                self._counts[k] += v

    @abstractmethod
    def _run(self) -> None:
        """The reader thread: put packets on ``_queue`` until ``_stop`` is set."""

    def open(self, origin: float) -> None:
        if self._thread is not None:
            raise RuntimeError("source already opened")
        self._thread = threading.Thread(target=self._run, name=f"wdp-{self.thread_label}-{self.router_id}", daemon=True)
        self._thread.start()

    def read(self, timeout: float) -> list[PacketBatch]:
        if self._thread is None:
            raise RuntimeError("source not opened")
        return self._queue.take(timeout)

    @property
    def exhausted(self) -> bool:
        return self._closed

    def stream_time(self) -> float | None:
        return time.time()

    def lost_packets(self) -> Mapping[str, int]:
        lost = self._queue.lost
        return {self.router_id: lost} if lost else {}

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._queue.close()
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
