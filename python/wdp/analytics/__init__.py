"""Realtime analytics on tracked poses: zones and occupancy, activity, falls, and the pipeline step."""

from __future__ import annotations

from wdp.analytics.activity import ACTIVITIES, ActivityClassifier, ActivityConfig, ActivityEstimate
from wdp.analytics.falls import FallConfig, FallDetector
from wdp.analytics.geometry import points_in_polygon, signed_distance
from wdp.analytics.pipeline import AnalyticsPipeline, PipelineConfig
from wdp.analytics.zones import ZoneMonitor, ZoneMonitorConfig, ZoneUpdate

__all__ = [
    "ACTIVITIES",
    "ActivityClassifier",
    "ActivityConfig",
    "ActivityEstimate",
    "AnalyticsPipeline",
    "FallConfig",
    "FallDetector",
    "PipelineConfig",
    "ZoneMonitor",
    "ZoneMonitorConfig",
    "ZoneUpdate",
    "points_in_polygon",
    "signed_distance",
]
