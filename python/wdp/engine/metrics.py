"""Engine metrics: per-stage latency percentiles over a sliding sample window, rates, counters.

``EngineMetrics`` is the snapshot the API layer exposes (system/performance); it is a msgspec Struct so it
encodes to JSON as is.
"""

from __future__ import annotations

import threading
import time
from collections import deque

import msgspec
import numpy as np

from wdp.schemas import ActivityLinkStatus, Router, SensingLinkStatus

# Stages, in pipeline order. "window": packet arrival -> window queued (grid + sanitize); "queue": waiting for
# the inference worker (including fusion wait for the other routers); "inference": net forward + decoding
# per batch; "track": fusion + tracking + analytics per slot; "publish": frame + events onto the bus;
# "end_to_end": arrival of the packet that completed the (earliest) window of a slot -> its PoseFrame
# published.
STAGES = ("window", "queue", "inference", "track", "publish", "end_to_end")


class StageLatency(msgspec.Struct, frozen=True, kw_only=True):
    count: int  # samples in the window (the last `capacity`)
    mean_ms: float
    p50_ms: float
    p99_ms: float
    max_ms: float


class SubscriberStats(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    queued: int
    dropped: int


class ModelStatus(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    path: str
    backend: str
    num_parameters: int | None
    loaded_at: float
    swaps: int


class PoseInputStatus(msgspec.Struct, frozen=True, kw_only=True):
    """How one router's frames reach the pose model (wdp.engine.input_adapt): "on" with the adaptation made
    (subcarriers taken/interpolated by frequency, antennas selected or repeated, packets repeated), "off" with
    the reason the router is refused (channel narrower than the model's, too few tx antennas for a model that
    reads tx phase differences, too few packets), "deciding" before its first packet."""

    router_id: str
    state: str = "deciding"
    reason: str | None = None
    adaptation: str | None = None
    shape: list[int] = []  # (subcarriers, rx, tx) the router sends
    model_shape: list[int] = []  # (subcarriers, rx, tx) the model reads
    model_hardware: str | None = None  # the hardware preset the model was trained for
    packets: int = 0
    rejected: int = 0  # packets refused
    windows: int = 0


class StoreStatus(msgspec.Struct, frozen=True, kw_only=True):
    frames_written: int
    events_written: int
    flushes: int
    flush_errors: int
    dropped: int  # messages the store's subscription lost (its queue overflowed)
    pending: int
    sensing_written: int = 0  # SensingStates stored


class EngineMetrics(msgspec.Struct, frozen=True, kw_only=True):
    running: bool
    uptime_s: float
    source: str  # "simulator" / "replay" / "live" (the most simulated of the configured sources)
    detector: str  # "model" or "ground_truth"
    frames: int  # PoseFrames published
    fps: float  # PoseFrames per second over the last few seconds
    windows_received: int
    windows_inferred: int
    windows_dropped_overflow: int  # dropped oldest-first because the queue was full (inference lagging)
    windows_dropped_stale: int  # older than max_window_age_s when dequeued
    windows_dropped_late: int  # arrived after their time slot was already processed
    windows_rejected: int  # wrong shape for the current model (e.g. right after a model swap)
    batches: int
    mean_batch: float
    queue_depth: int
    stages: dict[str, StageLatency]
    routers: list[Router]
    subscribers: list[SubscriberStats]
    model: ModelStatus | None
    store: StoreStatus | None
    events: int
    sensing_states: int = 0  # SensingStates published (routers and zones)
    sensing: list[SensingLinkStatus] = []  # per router: calibration and input problems
    activity: list[ActivityLinkStatus] = []  # per router: the activity/fall model running there, or why none
    pose_input: list[PoseInputStatus] = []  # per router: how its frames are fitted to the pose model, or why not


class LatencyRecorder:
    """Last ``capacity`` samples per stage (seconds in, milliseconds out). Thread-safe."""

    def __init__(self, stages: tuple[str, ...] = STAGES, capacity: int = 4096) -> None:
        self._buf = {s: np.zeros(capacity) for s in stages}
        self._n = dict.fromkeys(stages, 0)
        self._cap = capacity
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            n = self._n[stage]
            self._buf[stage][n % self._cap] = seconds
            self._n[stage] = n + 1

    def add_many(self, stage: str, seconds: np.ndarray | list[float]) -> None:
        for s in seconds:
            self.add(stage, float(s))

    def samples(self, stage: str) -> np.ndarray:
        with self._lock:
            n = min(self._n[stage], self._cap)
            return self._buf[stage][:n].copy()

    def total(self, stage: str) -> int:
        return self._n[stage]

    def snapshot(self) -> dict[str, StageLatency]:
        out = {}
        for stage in self._buf:
            x = self.samples(stage) * 1e3
            if len(x) == 0:
                out[stage] = StageLatency(count=0, mean_ms=0.0, p50_ms=0.0, p99_ms=0.0, max_ms=0.0)
                continue
            p50, p99 = np.percentile(x, [50, 99])
            out[stage] = StageLatency(
                count=len(x),
                mean_ms=float(x.mean()),
                p50_ms=float(p50),
                p99_ms=float(p99),
                max_ms=float(x.max()),
            )
        return out

    def reset(self) -> None:
        with self._lock:
            for s in self._n:
                self._n[s] = 0


class RateMeter:
    """Events per second over the last ``window_s`` seconds (monotonic clock)."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def tick(self, now: float | None = None, n: int = 1) -> None:
        t = time.monotonic() if now is None else now
        with self._lock:
            self._times.extend([t] * n)
            self._trim(t)

    def rate(self, now: float | None = None) -> float:
        t = time.monotonic() if now is None else now
        with self._lock:
            self._trim(t)
            if len(self._times) < 2:
                return 0.0
            return len(self._times) / max(t - self._times[0], 1e-9)

    def _trim(self, t: float) -> None:
        while self._times and t - self._times[0] > self.window_s:
            self._times.popleft()
