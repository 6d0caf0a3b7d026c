"""Batched pose appends: buffer frames as numpy columns, write each batch in one transaction.

Hot path: ``append(frame)`` checks shapes (so a bad frame is rejected up front instead of poisoning a batch)
and appends references to plain lists; the batch is converted to numpy columns once per flush. ``flush()``
registers the columns with DuckDB and runs one ``INSERT ... SELECT`` per table (frames, persons, zone
memberships, zone occupancy, track summary upsert) inside ONE transaction. No per-row inserts.
``append_arrays`` takes frames already in columns (what a batched model produces) and skips the per-frame
Python work entirely. The cost per flush is a few ms of fixed statement/commit overhead plus a few us per
person row, so larger batches (replay, backfill) reach higher rates; see bench/bench_store.py.

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
from itertools import chain

import duckdb
import numpy as np

from wdp.schemas import N_KEYPOINTS, PoseFrame
from wdp.store.transaction import transaction

_log = logging.getLogger(__name__)
_flatten = chain.from_iterable
_KP_WIDTH = N_KEYPOINTS * 3
_NO_POSITION = (np.nan, np.nan)
_KP_LENGTHS = {3}
_ROUTER_SEP = "\x1f"  # joins router ids into one string column (numpy scans have no list type)
_KP_COLS = ", ".join(f"k{i}" for i in range(_KP_WIDTH))

_INSERT_FRAMES = f"""
INSERT INTO pose_frames
SELECT ts, frame_id, source, n_persons, latency_ms,
       CASE WHEN routers = '' THEN ARRAY[]::VARCHAR[] ELSE string_to_array(routers, chr({ord(_ROUTER_SEP)})) END
FROM _wdp_frames"""
_INSERT_PERSONS = f"""
INSERT INTO pose_persons
SELECT ts, frame_id, track_id, confidence, ARRAY[b0, b1, b2, b3]::FLOAT[4], x, y, activity,
       ARRAY[{_KP_COLS}]::FLOAT[{_KP_WIDTH}]
FROM _wdp_persons"""
_INSERT_ZONES = "INSERT INTO person_zones SELECT ts, frame_id, track_id, zone_id FROM _wdp_zones"
_INSERT_OCCUPANCY = """
INSERT INTO zone_occupancy
SELECT ts, frame_id, zone_id, count(DISTINCT track_id) FROM _wdp_zones GROUP BY ts, frame_id, zone_id"""
_UPSERT_TRACKS = """
INSERT INTO tracks
SELECT track_id, first_seen, last_seen, frames, sum_confidence, last_x, last_y FROM _wdp_tracks
ON CONFLICT (track_id) DO UPDATE SET
    first_seen = least(tracks.first_seen, excluded.first_seen),
    last_seen = greatest(tracks.last_seen, excluded.last_seen),
    frames = tracks.frames + excluded.frames,
    sum_confidence = tracks.sum_confidence + excluded.sum_confidence,
    last_x = CASE WHEN excluded.last_seen >= tracks.last_seen THEN excluded.last_x ELSE tracks.last_x END,
    last_y = CASE WHEN excluded.last_seen >= tracks.last_seen THEN excluded.last_y ELSE tracks.last_y END"""


@dataclass
class WriterStats:
    frames_flushed: int = 0
    persons_flushed: int = 0
    flushes: int = 0
    flush_errors: int = 0
    frames_dropped: int = 0  # only when failing flushes let the buffer exceed max_pending_frames
    frames_rejected: int = 0  # frames with malformed person values or an id already stored (dropped at flush)
    last_flush_s: float = 0.0  # duration of the last successful flush


@dataclass
class _Blocks:
    """Buffered columns as numpy blocks, one per sealed chunk of frames, concatenated at flush."""

    frames: dict[str, list[np.ndarray]] = field(default_factory=lambda: {k: [] for k in _FRAME_COLS})
    persons: dict[str, list[np.ndarray]] = field(default_factory=lambda: {k: [] for k in _PERSON_COLS})
    zones: dict[str, list[np.ndarray]] = field(default_factory=lambda: {k: [] for k in _ZONE_COLS})


@dataclass
class _Rows:
    """Frames appended as Structs since the last seal: plain Python lists (cheapest per append); converted to
    numpy blocks in one go per column when sealed."""

    f_ts: list[float] = field(default_factory=list)
    f_id: list[int] = field(default_factory=list)
    f_source: list[str] = field(default_factory=list)
    f_n: list[int] = field(default_factory=list)
    f_latency: list[float] = field(default_factory=list)
    f_routers: list[str] = field(default_factory=list)
    p_tid: list[int] = field(default_factory=list)
    p_conf: list[float] = field(default_factory=list)
    p_box: list[Sequence[float]] = field(default_factory=list)
    p_pos: list[Sequence[float]] = field(default_factory=list)
    p_act: list[str | None] = field(default_factory=list)
    p_kp: list[Sequence[Sequence[float]]] = field(default_factory=list)
    z_ts: list[float] = field(default_factory=list)
    z_fid: list[int] = field(default_factory=list)
    z_tid: list[int] = field(default_factory=list)
    z_zone: list[str] = field(default_factory=list)


_FRAME_COLS = ("ts", "frame_id", "source", "n_persons", "latency_ms", "routers")
_PERSON_COLS = ("ts", "frame_id", "track_id", "confidence", "box", "position", "activity", "keypoints")
_ZONE_COLS = ("ts", "frame_id", "track_id", "zone_id")


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
        self._blocks = _Blocks()
        self._rows = _Rows()
        self._pending = 0
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
        return self._pending

    def append(self, frame: PoseFrame) -> bool:
        """Buffer one frame; returns True if this call flushed.

        Raises ValueError for a person without 17 (x, y, score) keypoints, 4 box values or an (x, y)
        position. A value that is not a number is caught when the batch is converted: that frame alone is
        dropped and counted in ``stats.frames_rejected`` (the rest of the batch is written).
        """
        persons = frame.persons
        for p in persons:
            if (
                len(p.keypoints) != N_KEYPOINTS
                or _KP_LENGTHS != set(map(len, p.keypoints))
                or len(p.box) != 4
                or (p.position is not None and len(p.position) != 2)
            ):
                raise ValueError(
                    f"frame {frame.frame_id}, track {p.track_id}: need {N_KEYPOINTS} keypoints, 4 box values "
                    f"and position (x, y) or None"
                )
        ts = float(frame.timestamp)
        fid = int(frame.frame_id)
        latency = float(frame.latency_ms)
        with self._lock:
            self._check_open()
            r = self._rows
            r.f_ts.append(ts)
            r.f_id.append(fid)
            r.f_source.append(frame.source)
            r.f_n.append(len(persons))
            r.f_latency.append(latency)
            r.f_routers.append(_ROUTER_SEP.join(frame.router_ids))
            for p in persons:
                r.p_tid.append(p.track_id)
                r.p_conf.append(p.confidence)
                r.p_box.append(p.box)
                r.p_pos.append(_NO_POSITION if p.position is None else p.position)
                r.p_act.append(p.activity)
                r.p_kp.append(p.keypoints)
                for zone in p.zone_ids:
                    r.z_ts.append(ts)
                    r.z_fid.append(fid)
                    r.z_tid.append(p.track_id)
                    r.z_zone.append(zone)
            self._pending += 1
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
        kp = np.asarray(keypoints, dtype=np.float32).reshape(-1, _KP_WIDTH)
        box_a = np.asarray(box, dtype=np.float32).reshape(-1, 4)
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
        if lat.shape[0] != frames:
            raise ValueError("latency_ms must have one entry per frame")
        p_fid = np.repeat(f_id, f_n)
        p_ts = np.repeat(f_ts, f_n)
        zones: dict[str, np.ndarray] | None = None
        if zone_ids is not None:
            counts = np.fromiter((len(z) for z in zone_ids), dtype=np.int64, count=p)
            if counts.sum():
                zones = {
                    "ts": np.repeat(p_ts, counts),
                    "frame_id": np.repeat(p_fid, counts),
                    "track_id": np.repeat(tid, counts),
                    "zone_id": np.array([z for zs in zone_ids for z in zs], dtype=object),
                }
        with self._lock:
            self._check_open()
            self._seal_rows()  # keep buffer order = append order
            b = self._blocks
            for key, col in zip(
                _FRAME_COLS,
                (
                    f_ts,
                    f_id,
                    np.full(frames, source, dtype=object),
                    f_n.astype(np.int16),
                    lat,
                    np.full(frames, _ROUTER_SEP.join(router_ids), dtype=object),
                ),
                strict=True,
            ):
                b.frames[key].append(col)
            if p:
                for key, col in zip(_PERSON_COLS, (p_ts, p_fid, tid, conf, box_a, pos, act, kp), strict=True):
                    b.persons[key].append(col)
            if zones is not None:
                for key in _ZONE_COLS:
                    b.zones[key].append(zones[key])
            self._pending += frames
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
        error propagates; if failures pile up past ``max_pending_frames`` the buffer is dropped (counted in
        ``stats.frames_dropped``) so memory stays bounded.
        """
        with self._lock:
            if self._pending == 0:
                return 0
            t0 = time.perf_counter()
            self._seal_rows()
            frames = self._pending
            try:
                duplicates = self._drop_duplicate_ids(self._blocks)
                self.stats.frames_rejected += duplicates
                self._pending -= duplicates
                frames -= duplicates
                persons = self._write(self._blocks)
            except BaseException:
                self.stats.flush_errors += 1
                if frames > self.max_pending_frames:
                    self.stats.frames_dropped += frames
                    self._reset()
                raise
            self.stats.flushes += 1
            self.stats.frames_flushed += frames
            self.stats.persons_flushed += persons
            self.stats.last_flush_s = time.perf_counter() - t0
            self._reset()
            return frames

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

    def _reset(self) -> None:
        self._blocks = _Blocks()
        self._rows = _Rows()
        self._pending = 0
        self._oldest = None

    def _after_append(self) -> bool:
        now = self._clock()
        if self._oldest is None:
            self._oldest = now
        if self._pending >= self.max_frames or now - self._oldest >= self.flush_interval_s:
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

    def _seal_rows(self) -> None:
        """Convert the Struct-path lists into numpy blocks (one conversion per column per batch)."""
        r = self._rows
        if not r.f_id:
            return
        try:
            persons = _person_block(r.p_tid, r.p_conf, r.p_box, r.p_pos, r.p_act, r.p_kp)
        except (ValueError, TypeError):
            persons = self._drop_malformed(r)
        f_ts = np.array(r.f_ts, dtype=np.float64)
        f_id = np.array(r.f_id, dtype=np.int64)
        f_n = np.array(r.f_n, dtype=np.int64)
        b = self._blocks
        for key, col in zip(
            _FRAME_COLS,
            (
                f_ts,
                f_id,
                np.array(r.f_source, dtype=object),
                f_n.astype(np.int16),
                np.array(r.f_latency, dtype=np.float32),
                np.array(r.f_routers, dtype=object),
            ),
            strict=True,
        ):
            b.frames[key].append(col)
        if f_n.sum():
            cols = (np.repeat(f_ts, f_n), np.repeat(f_id, f_n), *persons)
            for key, col in zip(_PERSON_COLS, cols, strict=True):
                b.persons[key].append(col)
        if r.z_zone:
            for key, col in zip(
                _ZONE_COLS,
                (
                    np.array(r.z_ts, dtype=np.float64),
                    np.array(r.z_fid, dtype=np.int64),
                    np.array(r.z_tid, dtype=np.int32),
                    np.array(r.z_zone, dtype=object),
                ),
                strict=True,
            ):
                b.zones[key].append(col)
        self._rows = _Rows()

    def _drop_malformed(self, r: _Rows) -> tuple[np.ndarray, ...]:
        """Slow path: find the frames whose persons do not convert, drop them, convert the rest."""
        keep = _Rows()
        start = 0
        bad: set[tuple[float, int]] = set()
        for i, n in enumerate(r.f_n):
            sl = slice(start, start + n)
            start += n
            try:
                _person_block(r.p_tid[sl], r.p_conf[sl], r.p_box[sl], r.p_pos[sl], r.p_act[sl], r.p_kp[sl])
            except (ValueError, TypeError):
                bad.add((r.f_ts[i], r.f_id[i]))
                _log.warning("dropping frame %d: malformed person data", r.f_id[i])
                continue
            for name in ("f_ts", "f_id", "f_source", "f_n", "f_latency", "f_routers"):
                getattr(keep, name).append(getattr(r, name)[i])
            for name in ("p_tid", "p_conf", "p_box", "p_pos", "p_act", "p_kp"):
                getattr(keep, name).extend(getattr(r, name)[sl])
        for j, key in enumerate(zip(r.z_ts, r.z_fid, strict=True)):
            if key not in bad:
                keep.z_ts.append(r.z_ts[j])
                keep.z_fid.append(r.z_fid[j])
                keep.z_tid.append(r.z_tid[j])
                keep.z_zone.append(r.z_zone[j])
        self.stats.frames_rejected += len(r.f_id) - len(keep.f_id)
        self._pending -= len(r.f_id) - len(keep.f_id)
        r.__dict__.update(keep.__dict__)
        return _person_block(r.p_tid, r.p_conf, r.p_box, r.p_pos, r.p_act, r.p_kp)

    def _drop_duplicate_ids(self, b: _Blocks) -> int:
        """Drop frames whose id is already stored or repeats an earlier frame of this batch (with their
        persons and zone rows); returns how many. The store-level guarantee behind unique frame ids: history
        queries join persons to frames by id, so a reused id would mix two runs. Cheap for the engine's
        increasing ids: the range scan below is pruned by the zonemaps to the newest row group at most."""
        if not b.frames["frame_id"]:
            return 0
        f_id = np.concatenate(b.frames["frame_id"])
        stored = self._con.execute(
            "SELECT DISTINCT frame_id FROM pose_frames WHERE frame_id BETWEEN ? AND ?",
            [int(f_id.min()), int(f_id.max())],
        ).fetchall()
        drop = np.isin(f_id, np.array([r[0] for r in stored], dtype=np.int64))
        repeat = np.ones(f_id.size, bool)
        repeat[np.unique(f_id, return_index=True)[1]] = False
        drop |= repeat
        if not drop.any():
            return 0
        _log.warning("dropping %d frame(s) whose id is already in the history (first: %d)", drop.sum(), f_id[drop][0])
        keep = ~drop
        f_ts = np.concatenate(b.frames["ts"])
        n_persons = np.concatenate(b.frames["n_persons"]).astype(np.int64)
        b.frames = {k: [np.concatenate(v)[keep]] for k, v in b.frames.items()}
        if b.persons["ts"]:
            keep_p = keep[np.repeat(np.arange(f_id.size), n_persons)]
            b.persons = {k: [np.concatenate(v)[keep_p]] for k, v in b.persons.items()}
        if b.zones["ts"]:
            # zone rows carry no frame index: keep those of kept (id, ts) pairs, each membership once (a
            # repeat with the same timestamp would otherwise double its frame's memberships)
            kept = set(zip(f_id[keep].tolist(), f_ts[keep].tolist(), strict=True))
            z = {k: np.concatenate(v) for k, v in b.zones.items()}
            seen: set[tuple[int, float, int, str]] = set()
            keep_z = np.zeros(z["ts"].size, bool)
            for j, key in enumerate(
                zip(
                    z["frame_id"].tolist(), z["ts"].tolist(), z["track_id"].tolist(), z["zone_id"].tolist(), strict=True
                )
            ):
                if key[:2] in kept and key not in seen:
                    seen.add(key)
                    keep_z[j] = True
            b.zones = {k: [v[keep_z]] for k, v in z.items()}
        return int(drop.sum())

    def _write(self, b: _Blocks) -> int:
        f = {k: np.concatenate(v) if v else np.empty(0) for k, v in b.frames.items()}
        frames: dict[str, np.ndarray] = {
            "ts": f["ts"],
            "frame_id": f["frame_id"],
            "source": f["source"],
            "n_persons": f["n_persons"],
            "latency_ms": f["latency_ms"],
            "routers": f["routers"],
        }
        n_persons = sum(len(x) for x in b.persons["ts"])
        con = self._con
        registered = ["_wdp_frames"]
        con.register("_wdp_frames", frames)
        if n_persons:
            p = {k: np.concatenate(v) for k, v in b.persons.items()}
            # DuckDB scans 1-D numpy columns: one column per array element, rebuilt as FLOAT[n] in SQL
            kp_t = np.ascontiguousarray(p["keypoints"].T)
            box_t = np.ascontiguousarray(p["box"].T)
            pos = p["position"]
            persons: dict[str, np.ndarray] = {
                "ts": p["ts"],
                "frame_id": p["frame_id"],
                "track_id": p["track_id"],
                "confidence": p["confidence"],
                "x": np.ascontiguousarray(pos[:, 0]),  # NaN reads as NULL in DuckDB's numpy scan
                "y": np.ascontiguousarray(pos[:, 1]),
                "activity": p["activity"],
            }
            for i in range(4):
                persons[f"b{i}"] = box_t[i]
            for i in range(_KP_WIDTH):
                persons[f"k{i}"] = kp_t[i]
            con.register("_wdp_persons", persons)
            registered.append("_wdp_persons")
            con.register("_wdp_tracks", _track_summary(p["track_id"], p["ts"], p["confidence"], pos))
            registered.append("_wdp_tracks")
        if b.zones["ts"]:
            con.register("_wdp_zones", {k: np.concatenate(v) for k, v in b.zones.items()})
            registered.append("_wdp_zones")
        try:
            with transaction(con):
                con.execute(_INSERT_FRAMES)
                if n_persons:
                    con.execute(_INSERT_PERSONS)
                    con.execute(_UPSERT_TRACKS)
                if b.zones["ts"]:
                    con.execute(_INSERT_ZONES)
                    con.execute(_INSERT_OCCUPANCY)
        finally:
            for name in registered:
                con.unregister(name)
        return n_persons


def _person_block(
    tid: list[int],
    conf: list[float],
    box: list[Sequence[float]],
    pos: list[Sequence[float]],
    act: list[str | None],
    kp: list[Sequence[Sequence[float]]],
) -> tuple[np.ndarray, ...]:
    """Person lists -> (track_id, confidence, box (P,4), position (P,2), activity, keypoints (P,51)).
    Raises ValueError/TypeError if any value is not numeric or any shape is off."""
    n = len(tid)
    # append() checked 17 keypoints x 3 values per person, so a flat read is aligned (and 2x faster than
    # np.array on the nested lists); a non-number raises here and sends the batch down the slow path
    kp_a = np.fromiter(_flatten(_flatten(kp)), dtype=np.float32, count=n * _KP_WIDTH).reshape(n, _KP_WIDTH)
    box_a = np.array(box, dtype=np.float32).reshape(n, -1) if n else np.empty((0, 4), np.float32)
    pos_a = np.array(pos, dtype=np.float32).reshape(n, -1) if n else np.empty((0, 2), np.float32)
    if kp_a.shape[1] != _KP_WIDTH or box_a.shape[1] != 4 or pos_a.shape[1] != 2:
        raise ValueError("malformed person data")
    return (
        np.array(tid, dtype=np.int32),
        np.array(conf, dtype=np.float32),
        box_a,
        pos_a,
        np.array(act, dtype=object),
        kp_a,
    )


def _track_summary(tid: np.ndarray, ts: np.ndarray, conf: np.ndarray, pos: np.ndarray) -> dict[str, np.ndarray]:
    """Per-track first/last seen, rows, confidence sum and last position of this batch (numpy: a handful of
    tracks per batch, so the upsert that follows touches a handful of rows)."""
    order = np.lexsort((ts, tid))
    tid_s, ts_s = tid[order], ts[order]
    starts = np.flatnonzero(np.r_[True, tid_s[1:] != tid_s[:-1]])
    ends = np.r_[starts[1:], tid_s.size] - 1
    last = order[ends]
    return {
        "track_id": tid_s[starts],
        "first_seen": ts_s[starts],
        "last_seen": ts_s[ends],
        "frames": (ends - starts + 1).astype(np.int64),
        "sum_confidence": np.add.reduceat(conf[order].astype(np.float64), starts),
        "last_x": pos[last, 0],
        "last_y": pos[last, 1],
    }
