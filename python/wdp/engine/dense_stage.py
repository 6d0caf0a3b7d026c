"""Per-person DensePose for a published frame: the dense twin the engine puts on Topic.DENSE.

The model gives one part/UV map per window (wdp.engine.models.DenseMaps); a time slot can have a window per
router. The map used is that of the router whose best detection scored highest in the slot (the router that
sees the people best; averaging part labels of several routers would be meaningless). The map is cut among the
frame's tracked persons (wdp.model.dense.split_by_person, persons' keypoints and boxes converted from
normalized image coordinates to map cells) and each share is encoded compactly (wdp.densepose_codec).

The twin is the same frame (same frame_id, timestamp, persons in the same order) with ``Person.dense`` set;
the plain frame on Topic.POSE never carries it, so every default consumer (REST, WebSocket pose_updates,
MQTT, store) sees exactly what it saw before.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import msgspec
import numpy as np

from wdp import schemas
from wdp.densepose_codec import encode_dense
from wdp.engine.models import DenseMaps
from wdp.model.dense import split_by_person
from wdp.tracking.detections import Detections

_log = logging.getLogger(__name__)


class DenseStage:
    def __init__(self, min_keypoint_score: float = 0.05) -> None:
        self.min_keypoint_score = min_keypoint_score
        self.frames = 0
        self.errors = 0  # frames whose dense output failed (logged, skipped: the pose frame is unaffected)

    @staticmethod
    def pick(dets: Sequence[Detections], maps: Sequence[DenseMaps | None]) -> DenseMaps | None:
        """The map of the window whose best detection scored highest (the first window with a map if none
        detected anybody)."""
        best, best_score = None, -np.inf
        for d, m in zip(dets, maps, strict=True):
            if m is None:
                continue
            score = float(d.scores.max()) if len(d) else -1.0
            if score > best_score:
                best, best_score = m, score
        return best

    def frame(
        self, frame: schemas.PoseFrame, dets: Sequence[Detections], maps: Sequence[DenseMaps | None]
    ) -> schemas.PoseFrame | None:
        """The dense twin of ``frame``, or None when no window of the slot has a map or cutting it failed
        (counted in ``errors``, logged: dense output must never cost a pose frame)."""
        try:
            return self._twin(frame, dets, maps)
        except Exception:
            self.errors += 1
            if self.errors == 1 or self.errors % 1000 == 0:
                _log.exception("dense output of frame %s failed (%d so far)", frame.frame_id, self.errors)
            return None

    def _twin(
        self, frame: schemas.PoseFrame, dets: Sequence[Detections], maps: Sequence[DenseMaps | None]
    ) -> schemas.PoseFrame | None:
        m = self.pick(dets, maps)
        if m is None:
            return None
        h, w = m.parts.shape
        persons = frame.persons
        if persons:
            kp = np.array([p.keypoints for p in persons], np.float64)
            bx = np.array([p.box for p in persons], np.float64)
            scale = np.array([w, h], np.float64)
            kp[..., :2] = kp[..., :2] * scale - 0.5  # normalized image -> map cells (cell c centred on c)
            bx = bx * np.tile(scale, 2) - 0.5
            cut = split_by_person(m.parts, m.uv, kp, bx, min_keypoint_score=self.min_keypoint_score)
            persons = [
                msgspec.structs.replace(p, dense=encode_dense(c.parts, c.uv, c.box, (w, h)))
                for p, c in zip(persons, cut, strict=True)
            ]
        self.frames += 1
        return msgspec.structs.replace(frame, persons=persons)
