"""Frame and track ids that stay unique across engine runs (restarts, /system/stop + start, new processes).

With a history store, ids come in blocks reserved in the store (wdp.store.ids): the block's high-water mark
is committed before its first id is used, so ids of a run that crashed are never handed out again, and the
history never mixes two runs under one id. Ids stay small, increasing integers (gaps of at most one block
per run). Without a store, a run counts up from the wall clock (microseconds for frames, milliseconds for
tracks): a later run starts above every id an earlier one can have used, as long as neither produced more
than one frame per microsecond or one track per millisecond on average, and the clock does not step back.
Both stay below 2**53, so JavaScript clients read them exactly.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

FRAME_BLOCK = 10_000  # frames per reservation: one store transaction every few minutes at 20-100 fps
TRACK_BLOCK = 100


class StoreIdBlocks:
    """A thread-safe ``() -> int`` over blocks of the store's id sequence ``name`` ("frame" or "track", see
    wdp.store.ids). Uses its own store connection, opened on the first reservation; ``close()`` closes it."""

    def __init__(self, store: Any, name: str, block: int) -> None:
        if block < 1:
            raise ValueError("block must be >= 1")
        self.store = store
        self.name = name
        self.block = block
        self._lock = threading.Lock()
        self._con: Any = None
        self._next = 0
        self._end = 0  # exclusive end of the reserved block

    def __call__(self) -> int:
        with self._lock:
            if self._next >= self._end:
                self._reserve()
            value = self._next
            self._next += 1
            return value

    def prime(self) -> None:
        """Reserve the first block now (so a store that cannot reserve fails at start, not mid-stream)."""
        with self._lock:
            if self._next >= self._end:
                self._reserve()

    def _reserve(self) -> None:
        from wdp.store import ids

        if self._con is None:
            self._con = self.store.new_cursor()
        first = ids.reserve(self._con, self.name, self.block)
        self._next, self._end = first, first + self.block

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None
            self._end = self._next  # the rest of the block is abandoned: the next call reserves anew


def clock_ids(per_second: int, clock: Callable[[], float] = time.time) -> Callable[[], int]:
    """Ids counting up from ``clock() * per_second`` (runs without a store)."""
    return itertools.count(int(clock() * per_second) + 1).__next__


def counting_ids(start: int = 1) -> Callable[[], int]:
    """1, 2, 3, ... (tests and tools that want reproducible ids and keep no history)."""
    return itertools.count(start).__next__
