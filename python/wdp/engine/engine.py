"""The realtime engine: CSI sources -> windows -> batched inference -> fusion -> tracking + analytics ->
PoseFrames and events on the bus (and into the DuckDB history through the store sink).

Threads (all owned by the Engine object; nothing global):

* one reader per source: packets -> per-router windows (wdp.engine.windowing) -> the window queue;
* the worker: takes queued windows, groups them by time slot (windows of different routers ending on the
  same grid instant), waits at most ``fusion_wait_s`` for the connected routers to complete a slot, runs
  every ready window through the model in batches (or takes the simulator's ground truth), fuses each
  slot's detections across routers (OKS-NMS), tracks and analyses (wdp.analytics.AnalyticsPipeline) and
  publishes one PoseFrame per slot plus its events;
* housekeeping: router timeouts and periodic router status;
* the store sink (wdp.engine.storage), a bus subscriber.

Training-free sensing (wdp.engine.sensing_stage, on unless ``config.sensing.enabled`` is false) runs in the
reader threads: every batch of a router's packets, whatever their shape, goes to that router's LinkSensor
(one call per batch), and the SensingStates it completes (once a second per router and per configured zone)
go on Topic.SENSING, their events (motion.started, ...) on Topic.EVENT. ``detector="none"`` runs sensing
only (no pose windows, no model).

The activity/fall model (wdp.engine.activity_stage, ``config.activity``) also reads every router's packets in
the reader threads, cuts its windows there and classifies them in a worker thread of its own; its
person.activity_detected / person.fall_detected (``detector="model"``) go on Topic.EVENT. ``activity.detector``
chooses whose activity/fall events are published: the model's, the keypoint heuristic's (analytics), or both.

DensePose (``config.dense``, off unless asked for; ``wdp serve`` turns it on): each frame's persons get their
share of the model's part/UV map (wdp.engine.dense_stage), published as the frame's dense twin on
Topic.DENSE; the frame on Topic.POSE is unchanged.

Backpressure: the window queue holds at most ``queue_windows`` windows. When a realtime source finds it full
the OLDEST window is dropped (counted in ``windows_dropped_overflow``); windows that have waited longer than
``max_window_age_s`` by the time the worker gets to them are dropped as stale. Sources that are not
realtime (replay as fast as possible) block instead, so they lose nothing. The bus and the store sink have
bounded queues of their own: memory never grows without bound.

Usage::

    engine = Engine([SimulatorSource(routers=2)], model=ModelRunner.load("default"), store=store)
    with engine:                       # or: async with engine
        sub = engine.bus.subscribe({Topic.POSE})
        ...
        engine.metrics()               # EngineMetrics snapshot
        engine.swap_model("other/v2")  # at run time, no restart
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np

import wdp
from wdp import schemas
from wdp.analytics import AnalyticsPipeline, PipelineConfig
from wdp.csi.sources import CsiSource, RouterInfo
from wdp.engine.activity_stage import ActivitySettings, ActivityStage
from wdp.engine.bus import Bus, Topic
from wdp.engine.dense_stage import DenseStage
from wdp.engine.fusion import fuse_detections
from wdp.engine.ids import FRAME_BLOCK, TRACK_BLOCK, StoreIdBlocks, clock_ids
from wdp.engine.metrics import EngineMetrics, LatencyRecorder, ModelStatus, RateMeter, SubscriberStats
from wdp.engine.models import DenseMaps, ModelInfo, ModelRunner, truth_detections
from wdp.engine.routers import RouterMonitor
from wdp.engine.sensing_stage import SensingSettings, SensingStage
from wdp.engine.windowing import RouterWindower, Window, WindowSpec, stack_windows
from wdp.tracking.detections import Detections

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineConfig:
    detector: Literal["model", "ground_truth", "none"] = "model"  # none: no poses, sensing only
    max_batch: int = 16  # windows per forward pass
    queue_windows: int = 32  # window queue bound (backpressure)
    fusion_wait_s: float = 0.02  # longest wait for the other routers' windows of a slot
    max_window_age_s: float = 0.25  # realtime windows older than this when dequeued are dropped
    fusion_oks: float = 0.5  # OKS above which detections of two routers are one person
    min_keypoint_score: float = 0.3
    min_detection_score: float | None = None  # person score threshold; None: the model card's
    torch_threads: int | None = 1  # intra-op threads for inference (None: leave torch's setting)
    disconnect_after_s: float = 2.0
    status_interval_s: float = 1.0
    alert_cooldown_s: float = 60.0  # at most one alert.performance_degraded (windows dropped) per this time
    # window overrides (None: as the model card says, see WindowSpec)
    hop: int | None = None
    hampel_k: int | None = None
    antenna_map: str | None = None
    max_gap_s: float | None = None
    dense: bool = False  # per-person DensePose (model detector): each frame's dense twin on Topic.DENSE
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    sensing: SensingSettings = field(default_factory=SensingSettings)
    activity: ActivitySettings = field(default_factory=ActivitySettings)

    def window_overrides(self) -> dict[str, Any]:
        return {
            "hop": self.hop,
            "hampel_k": self.hampel_k,
            "antenna_map": self.antenna_map,
            "max_gap_s": self.max_gap_s,
        }


class Engine:
    def __init__(
        self,
        sources: Sequence[CsiSource],
        *,
        model: ModelRunner | None = None,
        config: EngineConfig | None = None,
        bus: Bus | None = None,
        store: Any = None,
        store_options: dict[str, Any] | None = None,
        zones: Iterable[schemas.Zone] = (),
        projector: Any = None,
        event_ids: Callable[[], str] = schemas.new_id,
        frame_ids: Callable[[], int] | None = None,
        track_ids: Callable[[], int] | None = None,
    ) -> None:
        """``frame_ids``/``track_ids``: where ids come from; default (wdp.engine.ids): blocks reserved in
        ``store``, or without a store counting up from the wall clock, so no two runs share an id."""
        if not sources:
            raise ValueError("the engine needs at least one source")
        self.config = c = config or EngineConfig()
        if c.detector not in ("model", "ground_truth", "none"):
            raise ValueError(f"unknown detector {c.detector!r}")
        if c.detector == "model" and model is None:
            raise ValueError("detector 'model' needs a model (ModelRunner)")
        if c.detector == "ground_truth" and not all(s.kind == "simulator" for s in sources):
            raise ValueError("the ground-truth detector needs simulator sources (they carry the truth)")
        self.sources = list(sources)
        self.bus = bus or Bus()
        self.store = store
        self._store_options = dict(store_options or {})
        self._event_ids = event_ids
        self._runner = model
        self._spec: WindowSpec = self._spec_for(model)
        self._model_swaps = 0
        self._model_lock = threading.Lock()
        self._id_blocks: list[StoreIdBlocks] = []
        if store is not None:
            if frame_ids is None:
                frame_ids = StoreIdBlocks(store, "frame", FRAME_BLOCK)
                self._id_blocks.append(frame_ids)
            if track_ids is None:
                track_ids = StoreIdBlocks(store, "track", TRACK_BLOCK)
                self._id_blocks.append(track_ids)
        self._frame_ids = frame_ids if frame_ids is not None else clock_ids(1_000_000)
        track_ids = track_ids if track_ids is not None else clock_ids(1_000)
        if projector is None:
            projector = next((p for p in (s.floor_projector() for s in self.sources) if p is not None), None)
        self.pipeline = AnalyticsPipeline(
            c.pipeline, projector=projector, zones=zones, event_ids=event_ids, track_ids=track_ids
        )
        self.source_kind: schemas.FrameSource = schemas.most_simulated(s.kind for s in self.sources)

        self.routers = RouterMonitor(disconnect_after_s=c.disconnect_after_s)
        self.sensing: SensingStage | None = None
        if c.sensing.enabled:
            self.sensing = SensingStage(c.sensing, event_ids=event_ids)
            self.sensing.calibrate_baselines()  # a bad baseline file fails here, before anything runs
        self.activity: ActivityStage | None = None
        if c.activity.runs_model:  # a configured model that cannot load fails here
            self.activity = ActivityStage(c.activity, self._publish_event, event_ids=event_ids)
        self.dense = DenseStage() if c.dense and c.detector == "model" else None
        self.latest_dense_frame: schemas.PoseFrame | None = None
        self.latency = LatencyRecorder()
        self._fps = RateMeter()
        self._queue: deque[Window] = deque()
        self._qcond = threading.Condition()
        self._pending: dict[int, dict[str, Window]] = {}
        self._pending_since: dict[int, float] = {}
        self._last_slot = -(1 << 62)
        self._realtime: dict[str, bool] = {}
        self._router_kind: dict[str, schemas.FrameSource] = {}
        self._windowers: dict[str, RouterWindower] = {}
        self._source_of: dict[str, CsiSource] = {}
        self.latest_frame: schemas.PoseFrame | None = None
        self._counts = dict.fromkeys(
            (
                "received",
                "inferred",
                "dropped_overflow",
                "dropped_stale",
                "dropped_late",
                "rejected",
                "batches",
                "frames",
                "events",
            ),
            0,
        )
        self._stopping = threading.Event()
        self._finished = threading.Event()
        self._sources_done = 0
        self._threads: list[threading.Thread] = []
        self._sink: Any = None
        self._started_at: float | None = None
        self._running = False
        self.grid_base = 0.0
        self.error: BaseException | None = None

    # ------------------------------------------------------------------------------------------ lifecycle
    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> Engine:
        if self._running or self._started_at is not None:
            raise RuntimeError("engine already started (an Engine runs once)")
        c = self.config
        if c.torch_threads and c.detector != "none":
            import torch

            torch.set_num_threads(int(c.torch_threads))
        for blocks in self._id_blocks:  # before anything runs: a store that cannot reserve ids fails here
            blocks.prime()
        if self.store is not None:
            from wdp.engine.storage import StoreSink

            self._sink = StoreSink(self.store, self.bus, **self._store_options)
            self._sink.start()
        self._started_at = time.monotonic()
        self._running = True
        # engine clock origin: the next 10 ms instant, shared by all sources so their grids line up
        self.grid_base = float(np.ceil(time.time() * 100.0) / 100.0)
        self._publish_event(
            schemas.SystemStarted(
                timestamp=time.time(),
                version=wdp.__version__,
                source=self.source_kind,
                event_id=self._event_ids(),
            )
        )
        try:
            for src in self.sources:
                src.open(self.grid_base)
                for info in src.routers():
                    self.routers.register(info)
                    self._realtime.setdefault(info.id, src.realtime)
        except BaseException:
            self.stop("failed to start")  # the sources opened so far, the store sink
            raise
        if self.activity is not None:
            self.activity.start()
        for i, src in enumerate(self.sources):
            self._threads.append(
                threading.Thread(target=self._source_loop, args=(src,), name=f"wdp-engine-source-{i}", daemon=True)
            )
        self._threads.append(threading.Thread(target=self._worker, name="wdp-engine-worker", daemon=True))
        self._threads.append(threading.Thread(target=self._housekeeping, name="wdp-engine-housekeeping", daemon=True))
        for t in self._threads:
            t.start()
        return self

    def stop(self, reason: str = "stopped") -> None:
        """Stop every thread, close the sources, publish system.stopped and flush the store. Idempotent."""
        if not self._running:
            return
        self._stopping.set()
        with self._qcond:
            self._qcond.notify_all()
        for src in self.sources:
            try:
                src.close()
            except Exception:  # closing must go on for the others
                _log.exception("closing source %r", src)
        if self.activity is not None:  # first: a reader may be waiting for room in its window queue
            self.activity.stop()
        for t in self._threads:
            t.join()
        self._threads = []
        uptime = time.monotonic() - (self._started_at or time.monotonic())
        self._publish_event(
            schemas.SystemStopped(timestamp=time.time(), reason=reason, uptime_s=uptime, event_id=self._event_ids())
        )
        if self._sink is not None:
            self._sink.stop()
        for blocks in self._id_blocks:
            blocks.close()
        self._running = False

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every source is exhausted and all its windows are processed (finite sources)."""
        t0 = time.monotonic()
        if not self._finished.wait(timeout):
            return False
        if self.activity is None:
            return True
        return self.activity.wait_idle(None if timeout is None else max(0.0, timeout - (time.monotonic() - t0)))

    def __enter__(self) -> Engine:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    async def __aenter__(self) -> Engine:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    # ------------------------------------------------------------------------------------------ control
    @property
    def model(self) -> ModelRunner | None:
        return self._runner

    @property
    def window_spec(self) -> WindowSpec:
        return self._spec

    def swap_model(
        self, model: ModelRunner | str | Path, *, models_dir: str | Path | None = None, backend: str = "auto"
    ) -> ModelInfo:
        """Load (by path or name[/version]) and switch to another model without stopping. Windows already
        made for the old model's input shape are rejected; new windows follow the new card's spec."""
        runner = (
            model
            if isinstance(model, ModelRunner)
            else ModelRunner.load(
                model,
                models_dir,
                backend,
                min_score=self.config.min_detection_score,
                window_overrides=self.config.window_overrides(),
            )
        )
        spec = self._spec_for(runner)
        with self._model_lock:
            self._runner = runner
            self._spec = spec
            self._model_swaps += 1
        _log.info("model swapped to %s (%s)", runner.info.name, runner.info.path)
        return runner.info

    def _spec_for(self, runner: ModelRunner | None) -> WindowSpec:
        """The model card's window spec with this engine's overrides (hop, gaps, antenna map, Hampel)."""
        overrides = {k: v for k, v in self.config.window_overrides().items() if v is not None}
        if runner is None:
            return WindowSpec.from_card(None, **overrides)
        return dataclasses.replace(runner.spec, **overrides)

    def set_zones(self, zones: Iterable[schemas.Zone]) -> None:
        """Replace the zone set live (effective from the next frame)."""
        self.pipeline.set_zones(list(zones))

    # ------------------------------------------------------------------------------------------ sources
    def _source_loop(self, src: CsiSource) -> None:
        infos = {r.id: r for r in src.routers()}
        reason = "stopped"
        try:
            while not self._stopping.is_set():
                for batch in src.read(timeout=self._read_timeout(src)):
                    self._on_batch(src, infos, batch)
                self._advance_clock(src)
                for rid, lost in src.lost_packets().items():
                    self.routers.set_lost(rid, lost)
                if src.exhausted:
                    reason = "end of stream"
                    break
        except Exception as e:
            reason = f"error: {e}"
            self.error = e
            _log.exception("source %r failed", src)
            self._publish_event(
                schemas.AlertSystemError(
                    timestamp=time.time(),
                    component=f"source:{src.kind}",
                    message=str(e),
                    event_id=self._event_ids(),
                )
            )
        finally:
            for info in src.routers():
                ev = self.routers.disconnect(info.id, reason)
                if ev is not None:
                    self._publish_event(ev)
                    self._publish_router(info.id)
            with self._qcond:
                self._sources_done += 1
                self._qcond.notify_all()

    def _read_timeout(self, src: CsiSource) -> float:
        """Until the earliest clock decision of this source's routers (realtime), at most 0.1 s."""
        now = src.stream_time()
        if now is None:
            return 0.1
        deadlines = [
            d
            for rid, w in self._windowers.items()
            if self._source_of.get(rid) is src and (d := w.deadline()) is not None
        ]
        return max(0.0, min(0.1, min(deadlines, default=now + 0.1) - now))

    def _advance_clock(self, src: CsiSource) -> None:
        now = src.stream_time()
        if now is None:
            return
        now_perf = time.perf_counter()
        for rid, wd in list(self._windowers.items()):
            if self._source_of.get(rid) is src and wd.spec is self._spec:
                for w in wd.advance(now, now_perf):
                    self._enqueue(w, block=False)

    def _on_batch(self, src: CsiSource, infos: dict[str, RouterInfo], batch: Any) -> None:
        rid = batch.router_id
        info = infos.get(rid)
        if info is None:
            infos.update({r.id: r for r in src.routers()})
            info = infos.get(rid) or RouterInfo(rid, rid, src.kind)
            infos[rid] = info
        self._realtime[rid] = src.realtime
        self._router_kind[rid] = src.kind
        self._source_of[rid] = src
        ev = self.routers.on_packets(info, len(batch))
        if ev is not None:
            self._publish_event(ev)
            self._publish_router(rid)
        if self.sensing is not None:  # before the windower: sensing takes frames the pose model cannot
            states, events = self.sensing.on_packets(
                rid, src.kind, batch.timestamps, batch.csi, getattr(src, "status_details", None)
            )
            for state in states:
                self.bus.publish(Topic.SENSING, state)
            for event in events:
                self._publish_event(event)
        if self.activity is not None:  # the activity/fall model reads every router's stream, poses or not
            self.activity.on_packets(rid, batch.timestamps, batch.csi, batch.mac, block=not src.realtime)
        if self.config.detector == "none":
            return
        spec = self._spec
        wd = self._windowers.get(rid)
        if wd is None or wd.spec is not spec:
            wd = self._windowers[rid] = RouterWindower(rid, spec, self.grid_base)
        truth = batch.truth
        for i in range(len(batch)):
            for w in wd.push(
                float(batch.timestamps[i]),
                batch.csi[i],
                float(batch.arrival[i]),
                truth[i] if truth is not None else None,
            ):
                self._enqueue(w, block=not src.realtime)

    def _enqueue(self, w: Window, block: bool) -> None:
        now = time.perf_counter()
        self.latency.add("window", now - w.arrival)
        w = dataclasses.replace(w, queued=now)
        cap = self.config.queue_windows
        with self._qcond:
            if block:
                while len(self._queue) >= cap and not self._stopping.is_set():
                    self._qcond.wait(0.1)
            elif len(self._queue) >= cap:
                self._queue.popleft()
                self._counts["dropped_overflow"] += 1
            self._queue.append(w)
            self._counts["received"] += 1
            self._qcond.notify_all()

    # ------------------------------------------------------------------------------------------ worker
    def _worker(self) -> None:
        try:
            self._work()
        except Exception as e:
            self.error = e
            _log.exception("engine worker failed")
            self._publish_event(
                schemas.AlertSystemError(
                    timestamp=time.time(),
                    component="engine.worker",
                    message=str(e),
                    event_id=self._event_ids(),
                )
            )
            self._finished.set()

    def _work(self) -> None:
        n_sources = len(self.sources)
        while not self._stopping.is_set():
            with self._qcond:
                if not self._queue and self._sources_done < n_sources:
                    self._qcond.wait(self._wait_time())
                taken = list(self._queue)
                self._queue.clear()
                self._qcond.notify_all()
                done = self._sources_done == n_sources and not self._queue
            if self._stopping.is_set():
                break
            for w in taken:
                self._add_pending(w)
            ready = self._ready_slots(final=done)
            if ready:
                self._process(ready)
            if done and not self._pending:
                self._finished.set()
                return

    def _wait_time(self) -> float:
        """Until the oldest pending slot's fusion deadline (at most 0.1 s)."""
        if not self._pending_since:
            return 0.1
        first = min(self._pending_since.values())
        return max(0.0, min(0.1, first + self.config.fusion_wait_s - time.perf_counter()))

    def _add_pending(self, w: Window) -> None:
        if w.slot <= self._last_slot:
            self._counts["dropped_late"] += 1
            return
        slot = self._pending.setdefault(w.slot, {})
        if w.router_id in slot:  # a router cannot fill a slot twice; keep the newer
            self._counts["dropped_late"] += 1
        slot[w.router_id] = w
        self._pending_since.setdefault(w.slot, time.perf_counter())

    def _ready_slots(self, final: bool) -> list[tuple[int, list[Window]]]:
        if not self._pending:
            return []
        now = time.perf_counter()
        # An as-fast-as-possible source's routers are awaited from the start: their first windows may come
        # after another router's (a second simulated router, parsing), and must not find their slots gone.
        expected = self.routers.connected() | {r for r in self.routers.awaited() if not self._realtime.get(r, True)}
        # a router the model refuses (wdp.engine.input_adapt: wrong band, antennas, rate) sends no windows
        expected -= {rid for rid, wd in list(self._windowers.items()) if wd.refused}
        newest: dict[str, int] = {}
        for s, wins in self._pending.items():
            for rid in wins:
                newest[rid] = max(newest.get(rid, s), s)
        ready = []
        for s in sorted(self._pending):
            wins = self._pending[s]
            missing = expected - wins.keys()
            # A router that skipped this slot has delivered a later one. Waiting on the wall clock only makes
            # sense for realtime routers: an as-fast-as-possible source can stall for any time (parsing,
            # simulating) without its data being late, so the slot waits for it.
            timed_out = now - self._pending_since[s] >= self.config.fusion_wait_s and all(
                self._realtime.get(rid, True) for rid in missing
            )
            ok = final or not missing or timed_out or all(newest.get(rid, -1) > s for rid in missing)
            if not ok:
                break
            ready.append((s, list(wins.values())))
            del self._pending[s]
            del self._pending_since[s]
        return ready

    def _process(self, ready: list[tuple[int, list[Window]]]) -> None:
        """Ready slots in time order, in groups of at most max_batch windows (one forward pass each); the
        staleness check runs right before each group, so no window waits behind several batches unchecked."""
        group: list[tuple[int, list[Window]]] = []
        size = 0
        for s, wins in ready:
            if group and size + len(wins) > self.config.max_batch:
                self._process_group(group)
                group, size = [], 0
            group.append((s, wins))
            size += len(wins)
        if group:
            self._process_group(group)

    def _process_group(self, ready: list[tuple[int, list[Window]]]) -> None:
        c = self.config
        now = time.perf_counter()
        slots: list[tuple[int, list[Window]]] = []
        for s, wins in ready:
            keep = []
            for w in wins:
                if self._realtime.get(w.router_id, True) and now - w.arrival > c.max_window_age_s:
                    self._counts["dropped_stale"] += 1
                    continue
                self.latency.add("queue", now - w.queued)
                keep.append(w)
            slots.append((s, keep))

        detections: dict[int, Detections] = {}
        dense_maps: dict[int, DenseMaps] = {}
        if c.detector == "model":
            with self._model_lock:
                runner = self._runner
            assert runner is not None
            todo = []
            for _, wins in slots:
                for w in wins:
                    if w.amplitude.shape == self._spec.shape:
                        todo.append(w)
                    else:
                        self._counts["rejected"] += 1
            for i in range(0, len(todo), c.max_batch):  # one pass, unless a single slot exceeds max_batch
                chunk = todo[i : i + c.max_batch]
                amp, phase = stack_windows(chunk)
                t0 = time.perf_counter()
                if self.dense is None:
                    dets = runner.infer(amp, phase)
                else:
                    dets, maps = runner.infer_dense(amp, phase)
                    dense_maps.update({id(w): m for w, m in zip(chunk, maps or [], strict=True)})
                self.latency.add("inference", time.perf_counter() - t0)
                self._counts["batches"] += 1
                self._counts["inferred"] += len(chunk)
                detections.update({id(w): d for w, d in zip(chunk, dets, strict=True)})
        else:
            for _, wins in slots:
                for w in wins:
                    detections[id(w)] = truth_detections(w.truth)

        for s, wins in slots:
            wins = [w for w in wins if id(w) in detections]
            if not wins:
                continue
            self._publish_slot(s, wins, [detections[id(w)] for w in wins], [dense_maps.get(id(w)) for w in wins])

    def _publish_slot(
        self, slot: int, wins: list[Window], dets: list[Detections], maps: list[DenseMaps | None]
    ) -> None:
        c = self.config
        t0 = time.perf_counter()
        fused = fuse_detections(dets, c.fusion_oks, c.min_keypoint_score)
        ts = float(np.mean([w.timestamp for w in wins]))
        persons, events = self.pipeline.update(ts, fused)
        t1 = time.perf_counter()
        arrival = min(w.arrival for w in wins)
        kind = schemas.most_simulated(self._router_kind.get(w.router_id, self.source_kind) for w in wins)
        frame = schemas.PoseFrame(
            frame_id=self._frame_ids(),
            timestamp=ts,
            source=kind,
            persons=persons,
            router_ids=sorted(w.router_id for w in wins),
            latency_ms=(time.perf_counter() - arrival) * 1e3,
        )
        self.bus.publish(Topic.POSE, frame)
        if self.dense is not None:
            dense = self.dense.frame(frame, dets, maps)
            if dense is not None:
                self.latest_dense_frame = dense
                self.bus.publish(Topic.DENSE, dense)
        keypoints = c.activity.keeps_keypoints  # activity.detector=model: the CSI model's events only
        for ev in events:
            if keypoints or not isinstance(ev, schemas.PersonActivityDetected | schemas.PersonFallDetected):
                self._publish_event(ev)
        t2 = time.perf_counter()
        self.latest_frame = frame
        self._last_slot = slot
        self._counts["frames"] += 1
        self._fps.tick()
        self.latency.add("track", t1 - t0)
        self.latency.add("publish", t2 - t1)
        self.latency.add("end_to_end", t2 - arrival)

    # ------------------------------------------------------------------------------------------ publishing
    def _publish_event(self, ev: schemas.EventBase) -> None:
        self._counts["events"] += 1
        self.bus.publish(Topic.EVENT, ev)

    def _publish_router(self, router_id: str) -> None:
        for r in self.routers.status():
            if r.id == router_id:
                self.bus.publish(Topic.ROUTER, r)

    def _housekeeping(self) -> None:
        last_status = 0.0
        last_alert = -float("inf")
        dropped_before = 0
        while not self._stopping.wait(0.25):
            # Only realtime routers can time out: an as-fast-as-possible source blocks on backpressure and on
            # the other routers' progress, so wall-clock silence says nothing about it.
            for ev in self.routers.check_timeouts(lambda rid: self._realtime.get(rid, True)):
                self._publish_event(ev)
                self._publish_router(ev.router_id)
            now = time.monotonic()
            if now - last_status < self.config.status_interval_s:
                continue
            interval = now - last_status if last_status else self.config.status_interval_s
            last_status = now
            for r in self.routers.status():
                self.bus.publish(Topic.ROUTER, r)
            dropped = self._counts["dropped_overflow"] + self._counts["dropped_stale"]
            if dropped > dropped_before and now - last_alert >= self.config.alert_cooldown_s:
                last_alert = now
                self._publish_event(
                    schemas.AlertPerformanceDegraded(
                        timestamp=time.time(),
                        metric="windows_dropped_per_s",
                        value=(dropped - dropped_before) / interval,
                        threshold=0.0,
                        event_id=self._event_ids(),
                    )
                )
            dropped_before = dropped

    # ------------------------------------------------------------------------------------------ metrics
    def metrics(self) -> EngineMetrics:
        n = self._counts
        runner = self._runner
        model = None
        if runner is not None:
            i = runner.info
            model = ModelStatus(
                name=i.name,
                path=i.path,
                backend=i.backend,
                num_parameters=i.num_parameters,
                loaded_at=i.loaded_at,
                swaps=self._model_swaps,
            )
        with self._qcond:
            depth = len(self._queue)
        return EngineMetrics(
            running=self._running,
            uptime_s=time.monotonic() - self._started_at if self._started_at is not None else 0.0,
            source=self.source_kind,
            detector=self.config.detector,
            frames=n["frames"],
            fps=self._fps.rate(),
            windows_received=n["received"],
            windows_inferred=n["inferred"],
            windows_dropped_overflow=n["dropped_overflow"],
            windows_dropped_stale=n["dropped_stale"],
            windows_dropped_late=n["dropped_late"],
            windows_rejected=n["rejected"],
            batches=n["batches"],
            mean_batch=n["inferred"] / n["batches"] if n["batches"] else 0.0,
            queue_depth=depth,
            stages=self.latency.snapshot(),
            routers=self.routers.status(),
            subscribers=[
                SubscriberStats(name=s.name, queued=len(s), dropped=s.dropped) for s in self.bus.subscriptions
            ],
            model=model,
            store=self._sink.status() if self._sink is not None else None,
            events=n["events"],
            sensing_states=self.sensing.states if self.sensing is not None else 0,
            sensing=self.sensing.links() if self.sensing is not None else [],
            activity=self.activity.links() if self.activity is not None else [],
            pose_input=[wd.status() for wd in list(self._windowers.values())],
        )

    def windower_stats(self) -> dict[str, Any]:
        return {rid: dataclasses.asdict(w.stats) for rid, w in self._windowers.items()}
