"""The engine's history sink: a bus subscriber that appends every PoseFrame, event and SensingState to the
DuckDB store.

It runs in its own thread so a flush (a DuckDB transaction, milliseconds) never delays the pipeline. Frames go
through wdp.store's batched PoseWriter; events are buffered and written with one batched INSERT per flush,
on the same cadence (``flush_interval_s`` or ``max_frames``); sensing states likewise, one batched INSERT in
one transaction per flush (wdp.store.sensing). ``stop()`` drains the queue and flushes
everything, so Ctrl-C loses nothing the bus delivered. The subscription is bounded: if the store falls
hopelessly behind, the oldest messages are dropped and counted rather than memory growing.

``dense=True`` (the store.dense option) also keeps the persons' DensePose output: the dense twin frames of
Topic.DENSE (the engine's dense option must be on) go to wdp.store.dense on the same flush cadence.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from wdp import schemas
from wdp.engine.bus import Bus, Message, Topic
from wdp.engine.metrics import StoreStatus
from wdp.store import Store
from wdp.store import config as store_config
from wdp.store import dense as store_dense
from wdp.store import events as store_events
from wdp.store import sensing as store_sensing

_log = logging.getLogger(__name__)


class StoreSink:
    def __init__(
        self,
        store: Store,
        bus: Bus,
        *,
        flush_interval_s: float = 1.0,
        max_frames: int = 300,
        queue_size: int = 20000,
        dense: bool = False,
    ) -> None:
        self.store = store
        self.flush_interval_s = flush_interval_s
        self.max_frames = max_frames
        topics = {Topic.POSE, Topic.EVENT, Topic.SENSING} | ({Topic.DENSE} if dense else set())
        self._sub = bus.subscribe(topics, maxsize=queue_size, name="store")
        self._dense: list[schemas.PoseFrame] = []
        self.dense_written = 0
        self._writer: Any = None
        self._events: list[schemas.EventBase] = []
        self._events_written = 0
        self._event_errors = 0
        self._states: list[schemas.SensingState] = []
        self._states_written = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._last_event_flush = time.monotonic()

    def start(self) -> None:
        self._writer = self.store.writer(max_frames=self.max_frames, flush_interval_s=self.flush_interval_s)
        self._thread = threading.Thread(target=self._run, name="wdp-engine-store", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        con = self.store.new_cursor()
        try:
            while not self._stop.is_set():
                msg = self._sub.get(timeout=min(0.2, self.flush_interval_s))
                if msg is not None:
                    self._handle(msg)
                    for m in self._sub.drain():
                        self._handle(m)
                self._flush_due(con)
            for m in self._sub.drain():  # stop: everything published so far
                self._handle(m)
            self._flush(con)
        finally:
            con.close()

    def _handle(self, msg: Message) -> None:
        if msg.topic is Topic.POSE:
            try:
                self._writer.append(msg.payload)
            except Exception:  # a bad frame must not kill the sink
                _log.exception("store: frame %s rejected", getattr(msg.payload, "frame_id", "?"))
        elif msg.topic is Topic.SENSING:
            self._states.append(msg.payload)
        elif msg.topic is Topic.DENSE:
            self._dense.append(msg.payload)
        else:
            self._events.append(msg.payload)

    def _flush_due(self, con: Any) -> None:
        try:
            self._writer.flush_if_due()
        except Exception:
            _log.exception("store: pose flush failed (kept for the next flush)")
        now = time.monotonic()
        pending = len(self._events) + len(self._states) + len(self._dense)
        if pending and (now - self._last_event_flush >= self.flush_interval_s or pending >= 1000):
            self._flush_events(con)

    def _flush_events(self, con: Any) -> None:
        self._last_event_flush = time.monotonic()
        self._flush_states(con)
        self._flush_dense(con)
        if not self._events:
            return
        try:
            # Transactional outbox: the events and their webhook deliveries commit together, from this one
            # writer (a second writer of the same events would race it on the event_id key).
            store_events.record_events(con, self._events, store_config.active_webhooks(con), now=time.time())
            self._events_written += len(self._events)
            self._events = []
        except Exception:
            self._event_errors += 1
            _log.exception("store: event flush failed (kept for the next flush)")
            if len(self._events) > 100_000:
                self._events = self._events[-100_000:]

    def _flush_states(self, con: Any) -> None:
        if not self._states:
            return
        try:
            store_sensing.append_states(con, self._states)
            self._states_written += len(self._states)
            self._states = []
        except Exception:
            self._event_errors += 1
            _log.exception("store: sensing flush failed (kept for the next flush)")
            if len(self._states) > 100_000:
                self._states = self._states[-100_000:]

    def _flush_dense(self, con: Any) -> None:
        if not self._dense:
            return
        try:
            self.dense_written += store_dense.append_frames(con, self._dense)
            self._dense = []
        except Exception:
            self._event_errors += 1
            _log.exception("store: dense flush failed (kept for the next flush)")
            if len(self._dense) > 10_000:
                self._dense = self._dense[-10_000:]

    def _flush(self, con: Any) -> None:
        try:
            self._writer.flush()
        except Exception:
            _log.exception("store: final pose flush failed")
        self._flush_events(con)

    def stop(self) -> None:
        """Drain, flush and stop (idempotent). The store itself stays open (its owner closes it)."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        self._sub.close()
        if self._writer is not None:
            self._writer.close()

    def status(self) -> StoreStatus:
        w = self._writer.stats if self._writer is not None else None
        return StoreStatus(
            frames_written=w.frames_flushed if w else 0,
            events_written=self._events_written,
            flushes=w.flushes if w else 0,
            flush_errors=(w.flush_errors if w else 0) + self._event_errors,
            dropped=self._sub.dropped,
            sensing_written=self._states_written,
            pending=len(self._sub)
            + len(self._events)
            + len(self._states)
            + len(self._dense)
            + (self._writer.pending_frames if self._writer is not None else 0),
        )
