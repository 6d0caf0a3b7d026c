"""Batched pose appends: buffer frames as numpy columns, write each batch in one transaction.

Hot path: ``append(frame)`` converts one frame's persons to small numpy blocks (validating shapes, so a bad
frame is rejected up front instead of poisoning a batch) and returns; ``flush()`` concatenates the blocks,
registers them with DuckDB as numpy columns and runs one ``INSERT ... SELECT`` per table (frames, persons,
zone memberships, zone occupancy, track summary upsert) inside ONE transaction. No per-row inserts.
``append_arrays`` takes a whole batch already in columns (what a batched model produces) and skips the
per-frame Python work entirely.

Durability bound (tested by killing a writer process with SIGKILL): a batch is durable once ``flush()``
returns (its COMMIT is in DuckDB's write-ahead log; reopening replays it). A crash loses only frames still in
the buffer: at most ``max_frames`` frames, and with ``autoflush`` (or a caller calling ``flush_if_due``
regularly) no frame waits longer than ``flush_interval_s`` (plus one timer tick). Because each batch commits
atomically, a crash never leaves a partial batch: after reopening, every table holds whole frames only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import duckdb
import numpy as np

from wdp.schemas import N_KEYPOINTS, PoseFrame
from wdp.store.connection import transaction

_log = logging.getLogger(__name__)
_KP_WIDTH = N_KEYPOINTS * 3
_NO_POSITION = (np.nan, np.nan)
_ROUTER_SEP = "\x1f"  # joins router ids into one string column (numpy scans have no list type)
_KP_COLS = ", ".join(f"k{i}" for i in range(_KP_WIDTH))

_INSERT_FRAMES = f"""
INSERT INTO pose_frames
SELECT ts, frame_id, source, n_persons, latency_ms,
       CASE WHEN routers = '' THEN []::VARCHAR[] ELSE string_split(routers, chr({ord(_ROUTER_SEP)})) END
FROM _wdp_frames"""
_INSERT_PERSONS = f"""
INSERT INTO pose_persons
SELECT ts, frame_id, track_id, confidence, [b0, b1, b2, b3]::FLOAT[4], x, y, activity,
       [{_KP_COLS}]::FLOAT[{_KP_WIDTH}]
FROM _wdp_persons"""
_INSERT_ZONES = "INSERT INTO person_zones SELECT ts, frame_id, track_id, zone_id FROM _wdp_zones"
_INSERT_OCCUPANCY = """
INSERT INTO zone_occupancy
SELECT ts, frame_id, zone_id, count(DISTINCT track_id) FROM _wdp_zones GROUP BY ts, frame_id, zone_id"""
_UPSERT_TRACKS = """
INSERT INTO tracks
SELECT track_id, min(ts), max(ts), count(*), sum(confidence), arg_max(x, ts), arg_max(y, ts)
FROM _wdp_persons GROUP BY track_id
ON CONFLICT (track_id) DO UPDATE SET
    first_seen = least(first_seen, excluded.first_seen),
    last_seen = greatest(last_seen, excluded.last_seen),
    frames = frames + excluded.frames,
    sum_confidence = sum_confidence + excluded.sum_confidence,
    last_x = CASE WHEN excluded.last_seen >= last_seen THEN excluded.last_x ELSE last_x END,
    last_y = CASE WHEN excluded.last_seen >= last_seen THEN excluded.last_y ELSE last_y END"""


@dataclass
class WriterStats:
    frames_flushed: int = 0
    persons_flushed: int = 0
    flushes: int = 0
    flush_errors: int = 0
    frames_dropped: int = 0  # only when failing flushes let the buffer exceed max_pending_frames
    last_flush_s: float = 0.0  # duration of the last successful flush


@dataclass
class _Batch:
    """Buffered columns; each list holds one numpy block (or scalar list) per appended frame/chunk."""

    frames: int = 0
    f_ts: list[np.ndarray] = field(default_factory=list)
    f_id: list[np.ndarray] = field(default_factory=list)
    f_source: list[np.ndarray] = field(default_factory=list)
    f_n: list[np.ndarray] = field(default_factory=list)
    f_latency: list[np.ndarray] = field(default_factory=list)
    f_routers: list[np.ndarray] = field(default_factory=list)
    p_ts: list[np.ndarray] = field(default_factory=list)
    p_fid: list[np.ndarray] = field(default_factory=list)
    p_tid: list[np.ndarray] = field(default_factory=list)
    p_conf: list[np.ndarray] = field(default_factory=list)
    p_box: list[np.ndarray] = field(default_factory=list)
    p_pos: list[np.ndarray] = field(default_factory=list)
    p_act: list[np.ndarray] = field(default_factory=list)
    p_kp: list[np.ndarray] = field(default_factory=list)
    z_ts: list[float] = field(default_factory=list)
    z_fid: list[int] = field(default_factory=list)
    z_tid: list[int] = field(default_factory=list)
    z_zone: list[str] = field(default_factory=list)


def _cat(blocks: list[np.ndarray], dtype: type | np.dtype, width: int | None = None) -> np.ndarray:
    if not blocks:
        return np.empty((0,) if width is None else (0, width), dtype=dtype)
    return np.concatenate(blocks).astype(dtype, copy=False)


class PoseWriter:
    """Buffers PoseFrames and writes them in batches. Thread-safe (one lock around the buffer).

    Flushes when ``max_frames`` frames are buffered, when the oldest buffered frame is ``flush_interval_s``
    old (checked on append, by ``flush_if_due()`` and by the optional ``autoflush`` thread), and on close().
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        *,
        max_frames: int = 300,
        flush_interval_s: float = 1.0,
        max_pending_frames: int | None = None,
        autoflush: bool = False,
        owns_connection: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_frames < 1 or flush_interval_s <= 0:
            raise ValueError("max_frames must be >= 1 and flush_interval_s > 0")
        self._con = con
        self.max_frames = max_frames
        self.flush_interval_s = flush_interval_s
        self.max_pending_frames = max_pending_frames or 10 * max_frames
        self._owns_connection = owns_connection
        self._clock = clock
        self._lock = threading.RLock()
        self._batch = _Batch()
        self._oldest: float | None = None  # clock() when the oldest buffered frame arrived
        self._closed = False
        self.stats = WriterStats()
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        if autoflush:
            self._timer = threading.Thread(target=self._autoflush, name="wdp-store-autoflush", daemon=True)
            self._timer.start()

    # ------------------------------------------------------------------------------------------ appends
    @property
    def pending_frames(self) -> int:
        return self._batch.frames

    def append(self, frame: PoseFrame) -> bool:
        """Buffer one frame; returns True if this call flushed. Raises ValueError for malformed persons."""
        persons = frame.persons
        n = len(persons)
        ts = float(frame.timestamp)
        fid = int(frame.frame_id)
        if n:
            kp = np.array([p.keypoints for p in persons], dtype=np.float32)
            box = np.array([p.box for p in persons], dtype=np.float32)
            if kp.shape != (n, N_KEYPOINTS, 3) or box.shape != (n, 4):
                raise ValueError(
                    f"frame {fid}: keypoints must be ({N_KEYPOINTS}, 3) and box 4 values per person, "
                    f"got {kp.shape[1:]} and {box.shape[1:]}"
                )
            pos = np.array(
                [p.position if p.position is not None else _NO_POSITION for p in persons], dtype=np.float32
            )
            if pos.shape != (n, 2):
                raise ValueError(f"frame {fid}: position must be (x, y)")
            tid = np.array([p.track_id for p in persons], dtype=np.int32)
            conf = np.array([p.confidence for p in persons], dtype=np.float32)
            act = np.array([p.activity for p in persons], dtype=object)
        with self._lock:
            self._check_open()
            b = self._batch
            b.frames += 1
            b.f_ts.append(np.array([ts]))
            b.f_id.append(np.array([fid], dtype=np.int64))
            b.f_source.append(np.array([frame.source], dtype=object))
            b.f_n.append(np.array([n], dtype=np.int16))
            b.f_latency.append(np.array([frame.latency_ms], dtype=np.float32))
            b.f_routers.append(np.array([_ROUTER_SEP.join(frame.router_ids)], dtype=object))
            if n:
                b.p_ts.append(np.full(n, ts))
                b.p_fid.append(np.full(n, fid, dtype=np.int64))
                b.p_tid.append(tid)
                b.p_conf.append(conf)
                b.p_box.append(box)
                b.p_pos.append(pos)
                b.p_act.append(act)
                b.p_kp.append(kp.reshape(n, _KP_WIDTH))
                for p in persons:
                    for zone in p.zone_ids:
                        b.z_ts.append(ts)
                        b.z_fid.append(fid)
                        b.z_tid.append(p.track_id)
                        b.z_zone.append(zone)
            return self._after_append()

    def append_arrays(
        self,
        *,
        frame_id: Sequence[int] | np.ndarray,
        timestamp: Sequence[float] | np.ndarray,
        n_persons: Sequence[int] | np.ndarray,
        source: str,
        track_id: np.ndarray,
        confidence: np.ndarray,
        keypoints: np.ndarray,
        box: np.ndarray,
        position: np.ndarray | None = None,
        activity: Sequence[str | None] | None = None,
        zone_ids: Sequence[Sequence[str]] | None = None,
        latency_ms: Sequence[float] | np.ndarray | None = None,
        router_ids: Sequence[str] = (),
    ) -> bool:
        """Buffer F frames given as columns. Person rows are grouped by frame in frame order: the first
        ``n_persons[0]`` rows belong to frame 0, and so on. ``keypoints`` is (P, 17, 3) or (P, 51);
        ``position`` (P, 2) with NaN for "not localized"; ``zone_ids`` one list per person."""
        f_id = np.asarray(frame_id, dtype=np.int64).reshape(-1)
        f_ts = np.asarray(timestamp, dtype=np.float64).reshape(-1)
        f_n = np.asarray(n_persons, dtype=np.int64).reshape(-1)
        frames = f_id.shape[0]
        p = int(f_n.sum())
        if f_ts.shape[0] != frames or f_n.shape[0] != frames or (f_n < 0).any():
            raise ValueError("frame_id, timestamp and n_persons must have one non-negative entry per frame")
        kp = np.asarray(keypoints, dtype=np.float32).reshape(-1, _KP_WIDTH) if p else np.empty((0, _KP_WIDTH))
        box_a = np.asarray(box, dtype=np.float32).reshape(-1, 4) if p else np.empty((0, 4))
        tid = np.asarray(track_id, dtype=np.int32).reshape(-1)
        conf = np.asarray(confidence, dtype=np.float32).reshape(-1)
        pos = (
            np.full((p, 2), np.nan, dtype=np.float32)
            if position is None
            else np.asarray(position, dtype=np.float32).reshape(-1, 2)
        )
        act = np.array([None] * p if activity is None else list(activity), dtype=object).reshape(-1)
        if not all(a.shape[0] == p for a in (kp, box_a, tid, conf, pos, act)):
            raise ValueError(f"person columns must all have sum(n_persons) = {p} rows")
        if zone_ids is not None and len(zone_ids) != p:
            raise ValueError("zone_ids must have one entry per person")
        lat = (
            np.zeros(frames, dtype=np.float32)
            if latency_ms is None
            else np.asarray(latency_ms, dtype=np.float32).reshape(-1)
        )
        p_fid = np.repeat(f_id, f_n)
        p_ts = np.repeat(f_ts, f_n)
        with self._lock:
            self._check_open()
            b = self._batch
            b.frames += frames
            b.f_ts.append(f_ts)
            b.f_id.append(f_id)
            b.f_source.append(np.full(frames, source, dtype=object))
            b.f_n.append(f_n.astype(np.int16))
            b.f_latency.append(lat)
            b.f_routers.append(np.full(frames, _ROUTER_SEP.join(router_ids), dtype=object))
            if p:
                b.p_ts.append(p_ts)
                b.p_fid.append(p_fid)
                b.p_tid.append(tid)
                b.p_conf.append(conf)
                b.p_box.append(box_a)
                b.p_pos.append(pos)
                b.p_act.append(act)
                b.p_kp.append(kp)
                if zone_ids is not None:
                    for i, zones in enumerate(zone_ids):
                        for zone in zones:
                            b.z_ts.append(float(p_ts[i]))
                            b.z_fid.append(int(p_fid[i]))
                            b.z_tid.append(int(tid[i]))
                            b.z_zone.append(zone)
            return self._after_append()

    # ------------------------------------------------------------------------------------------ flushing
    def flush_if_due(self) -> bool:
        with self._lock:
            if self._oldest is not None and self._clock() - self._oldest >= self.flush_interval_s:
                self.flush()
                return True
        return False

    def flush(self) -> int:
        """Write everything buffered in one transaction. Returns the number of frames written.

        On a database error the transaction rolls back, the batch stays buffered for the next flush and the
        error propagates; if failures pile up past ``max_pending_frames`` the oldest frames are dropped
        (counted in ``stats.frames_dropped``) so memory stays bounded.
        """
        with self._lock:
            b = self._batch
            if b.frames == 0:
                return 0
            t0 = time.perf_counter()
            try:
                persons = self._write(b)
            except BaseException:
                self.stats.flush_errors += 1
                if b.frames > self.max_pending_frames:
                    self.stats.frames_dropped += b.frames
                    self._batch = _Batch()
                    self._oldest = None
                raise
            self.stats.flushes += 1
            self.stats.frames_flushed += b.frames
            self.stats.persons_flushed += persons
            self.stats.last_flush_s = time.perf_counter() - t0
            self._batch = _Batch()
            self._oldest = None
            return b.frames

    def close(self) -> None:
        """Stop the autoflush thread, flush what is buffered, close an owned connection. Idempotent."""
        if self._timer is not None:
            self._stop.set()
            self._timer.join()
            self._timer = None
        with self._lock:
            if self._closed:
                return
            try:
                self.flush()
            finally:
                self._closed = True
                if self._owns_connection:
                    self._con.close()

    def __enter__(self) -> PoseWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ internals
    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("writer is closed")

    def _after_append(self) -> bool:
        now = self._clock()
        if self._oldest is None:
            self._oldest = now
        if self._batch.frames >= self.max_frames or now - self._oldest >= self.flush_interval_s:
            self.flush()
            return True
        return False

    def _autoflush(self) -> None:
        tick = self.flush_interval_s / 4
        while not self._stop.wait(tick):
            try:
                self.flush_if_due()
            except Exception:  # counted in stats.flush_errors; the batch stays buffered, retried next tick
                _log.exception("pose history flush failed")

    def _write(self, b: _Batch) -> int:
        frames = {
            "ts": _cat(b.f_ts, np.float64),
            "frame_id": _cat(b.f_id, np.int64),
            "source": _cat(b.f_source, object),
            "n_persons": _cat(b.f_n, np.int16),
            "latency_ms": _cat(b.f_latency, np.float32),
            "routers": _cat(b.f_routers, object),
        }
        kp = _cat(b.p_kp, np.float32, _KP_WIDTH)
        box = _cat(b.p_box, np.float32, 4)
        pos = _cat(b.p_pos, np.float32, 2)
        kp_t = np.ascontiguousarray(kp.T)  # DuckDB scans 1-D numpy columns: one per array element
        box_t = np.ascontiguousarray(box.T)
        persons: dict[str, np.ndarray] = {
            "ts": _cat(b.p_ts, np.float64),
            "frame_id": _cat(b.p_fid, np.int64),
            "track_id": _cat(b.p_tid, np.int32),
            "confidence": _cat(b.p_conf, np.float32),
            "x": np.ascontiguousarray(pos[:, 0]),  # NaN reads as NULL in DuckDB's numpy scan
            "y": np.ascontiguousarray(pos[:, 1]),
            "activity": _cat(b.p_act, object),
        }
        for i in range(4):
            persons[f"b{i}"] = box_t[i]
        for i in range(_KP_WIDTH):
            persons[f"k{i}"] = kp_t[i]
        n_persons = persons["ts"].shape[0]
        con = self._con
        con.register("_wdp_frames", frames)
        con.register("_wdp_persons", persons)
        if b.z_zone:
            con.register(
                "_wdp_zones",
                {
                    "ts": np.array(b.z_ts, dtype=np.float64),
                    "frame_id": np.array(b.z_fid, dtype=np.int64),
                    "track_id": np.array(b.z_tid, dtype=np.int32),
                    "zone_id": np.array(b.z_zone, dtype=object),
                },
            )
        try:
            with transaction(con):
                con.execute(_INSERT_FRAMES)
                if n_persons:
                    con.execute(_INSERT_PERSONS)
                    con.execute(_UPSERT_TRACKS)
                if b.z_zone:
                    con.execute(_INSERT_ZONES)
                    con.execute(_INSERT_OCCUPANCY)
        finally:
            con.unregister("_wdp_frames")
            con.unregister("_wdp_persons")
            if b.z_zone:
                con.unregister("_wdp_zones")
        return n_persons
