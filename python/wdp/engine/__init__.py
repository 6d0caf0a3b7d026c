"""The realtime engine: CSI sources -> windows -> batched inference -> fusion -> tracking + analytics ->
PoseFrames and events on an in-process bus, history into DuckDB (see wdp.engine.engine)."""

from __future__ import annotations

from wdp.engine.bus import ALL_TOPICS, Bus, Message, Subscription, SubscriptionClosed, Topic
from wdp.engine.engine import Engine, EngineConfig
from wdp.engine.fusion import fuse_detections, oks_matrix
from wdp.engine.ids import StoreIdBlocks, clock_ids, counting_ids
from wdp.engine.metrics import EngineMetrics, LatencyRecorder, StageLatency
from wdp.engine.models import ModelInfo, ModelRunner, decode_poses_fast, resolve_model, truth_detections
from wdp.engine.routers import RouterMonitor
from wdp.engine.windowing import RouterWindower, Window, WindowSpec

__all__ = [
    "ALL_TOPICS",
    "Bus",
    "Engine",
    "EngineConfig",
    "EngineMetrics",
    "LatencyRecorder",
    "Message",
    "ModelInfo",
    "ModelRunner",
    "RouterMonitor",
    "RouterWindower",
    "StageLatency",
    "StoreIdBlocks",
    "Subscription",
    "SubscriptionClosed",
    "Topic",
    "Window",
    "WindowSpec",
    "clock_ids",
    "counting_ids",
    "decode_poses_fast",
    "fuse_detections",
    "oks_matrix",
    "resolve_model",
    "truth_detections",
]
