"""Multi-person pose tracking: Kalman + Hungarian tracker and image -> floor localisation."""

from __future__ import annotations

from wdp.tracking.detections import COCO_SIGMAS, N_KEYPOINTS, Detections
from wdp.tracking.floor import FloorProjector, foot_points
from wdp.tracking.kalman import ConstantVelocityKalman
from wdp.tracking.tracker import Tracker, TrackerConfig, TrackerUpdate, TrackSnapshot

__all__ = [
    "COCO_SIGMAS",
    "N_KEYPOINTS",
    "ConstantVelocityKalman",
    "Detections",
    "FloorProjector",
    "TrackSnapshot",
    "Tracker",
    "TrackerConfig",
    "TrackerUpdate",
    "foot_points",
]
