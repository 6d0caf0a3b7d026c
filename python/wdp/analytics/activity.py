"""Activity classification (standing, sitting, lying, walking) from 2-D keypoint geometry and motion.

Per frame a posture is scored from scale-free features (wdp.analytics.pose_features):
* lying: the torso is far from upright in the image (> 45-65 deg), or it is foreshortened to well under
  the person's standing torso length (lying along the camera's line of sight), or the pose is much wider
  than tall;
* sitting: knees level with the hips or ankles close below them, relative to the torso length;
* walking: an upright, non-sitting posture moving faster than ``walk_speed_m_s`` on the floor (or, without
  floor positions, ``walk_speed_heights_s`` body heights per second in the image);
* standing otherwise.
The standing torso length and body height are per-track references, learnt while the person is upright.
A reported activity changes only after the new per-frame label has held for ``hold_s`` seconds, and each
change is a ``person.activity_detected`` event.

Known 2-D limits: seen from the front and from above, a seated person's thighs point at the camera and look
like standing legs; a person first seen lying head-away from the camera has no standing reference and can
pass for standing.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from wdp import schemas
from wdp.analytics.pose_features import PoseFeatures, pose_features, ramp
from wdp.tracking.tracker import TrackSnapshot

STANDING, SITTING, LYING, WALKING = "standing", "sitting", "lying", "walking"
ACTIVITIES = (STANDING, SITTING, LYING, WALKING)


@dataclass(frozen=True)
class ActivityConfig:
    min_keypoint_score: float = 0.3
    lying_torso_angle_deg: tuple[float, float] = (45.0, 65.0)  # lying score ramps 0 -> 1 over this
    lying_torso_ratio: tuple[float, float] = (0.6, 0.42)  # torso / standing torso: 0 -> 1
    lying_aspect: tuple[float, float] = (0.6, 0.4)  # pose height / width: 0 -> 1
    sitting_knee_drop: tuple[float, float] = (0.55, 0.3)
    sitting_leg_drop: tuple[float, float] = (1.25, 1.0)
    walk_speed_m_s: float = 0.4
    walk_speed_heights_s: float = 0.3
    speed_window_s: float = 0.8  # speed is the least-squares velocity over this window
    reference_time_constant_s: float = 0.5  # how fast the standing references follow the person
    score_time_constant_s: float = 0.1  # posture scores are smoothed over about this long
    hold_s: float = 0.4  # a new label must hold this long to be reported


@dataclass(frozen=True)
class ActivityEstimate:
    track_id: int
    posture: str  # this frame's label
    activity: str | None  # the debounced label (None until one has held for hold_s)
    confidence: float  # of the debounced label (of the frame label while there is none)
    lying_score: float  # 0..1, smoothed over score_time_constant_s
    sitting_score: float
    speed: float  # m/s when floor positions are known, else body heights per second
    speed_unit: str  # "m/s" or "heights/s"
    body_height: float  # standing image height reference (NaN until seen upright)
    torso_length: float  # standing torso length reference (NaN until seen upright)


@dataclass
class _TrackState:
    ref_height: float = float("nan")
    ref_torso: float = float("nan")
    lying: float | None = None  # smoothed scores
    sitting: float | None = None
    last_t: float | None = None
    floor: deque[tuple[float, float, float]] | None = None  # (t, x, y)
    image: deque[tuple[float, float, float]] | None = None  # (t, cx, cy)
    stable: str | None = None
    stable_conf: float = 0.0
    candidate: str | None = None
    candidate_since: float = 0.0
    candidate_conf: list[float] | None = None
    last: ActivityEstimate | None = None


class ActivityClassifier:
    def __init__(self, config: ActivityConfig | None = None, *, event_ids: Callable[[], str] = schemas.new_id):
        self.config = config or ActivityConfig()
        self._event_ids = event_ids
        self._state: dict[int, _TrackState] = {}

    def update(
        self,
        timestamp: float,
        tracks: Sequence[TrackSnapshot],
        positions: Mapping[int, tuple[float, float] | None] | None = None,
        features: PoseFeatures | None = None,
    ) -> tuple[dict[int, ActivityEstimate], list[schemas.PersonActivityDetected]]:
        """Classify every live track (tracks missing from ``tracks`` are forgotten). A coasting track (no
        detection this update: its pose is extrapolated) keeps its last estimate. ``features``: the
        tracks' pose features if already computed (same order as ``tracks``)."""
        c = self.config
        t = float(timestamp)
        live = {tr.track_id for tr in tracks}
        self._state = {tid: s for tid, s in self._state.items() if tid in live}
        if not tracks:
            return {}, []
        f = features
        if f is None:
            f = pose_features(np.stack([tr.keypoints for tr in tracks]), c.min_keypoint_score)
        states = [self._state.setdefault(tr.track_id, _TrackState()) for tr in tracks]
        # Frame scores for every track at once (NaN parts: cue not available).
        ref_torso = np.array([s.ref_torso for s in states])
        with np.errstate(invalid="ignore", divide="ignore"):
            lying_parts = np.stack(
                [
                    ramp(f.torso_angle_deg, *c.lying_torso_angle_deg),
                    ramp(f.torso_length / ref_torso, *c.lying_torso_ratio),
                    ramp(np.where(f.width > 0, f.height / f.width, np.nan), *c.lying_aspect),
                ],
                axis=1,
            )
            sitting_parts = np.stack(
                [ramp(f.knee_drop, *c.sitting_knee_drop), ramp(f.leg_drop, *c.sitting_leg_drop)],
                axis=1,
            )
        lying_now = np.where(np.isnan(lying_parts), 0.0, lying_parts).max(1)
        sitting_now = np.where(np.isnan(sitting_parts), 0.0, sitting_parts).max(1)
        out: dict[int, ActivityEstimate] = {}
        events: list[schemas.PersonActivityDetected] = []
        for i, (tr, s) in enumerate(zip(tracks, states, strict=True)):
            if tr.coasting and s.last is not None:
                out[tr.track_id] = s.last
                continue
            pos = None if positions is None else positions.get(tr.track_id)
            est, ev = self._classify_one(
                t,
                tr,
                s,
                pos,
                float(lying_now[i]),
                float(sitting_now[i]),
                float(f.torso_length[i]),
                float(f.height[i]),
            )
            s.last = est
            out[tr.track_id] = est
            if ev is not None:
                events.append(ev)
        return out, events

    # ------------------------------------------------------------------------------------------ internals

    def _speed(self, t: float, tr: TrackSnapshot, s: _TrackState, pos: tuple[float, float] | None) -> tuple[float, str]:
        c = self.config
        if s.floor is None:
            s.floor, s.image = deque(), deque()
        assert s.image is not None
        if pos is not None and math.isfinite(pos[0]) and math.isfinite(pos[1]):
            s.floor.append((t, float(pos[0]), float(pos[1])))
        s.image.append((t, float(tr.center[0]), float(tr.center[1])))
        for q in (s.floor, s.image):
            while len(q) > 2 and t - q[1][0] >= c.speed_window_s:
                q.popleft()

        def rate(q: deque[tuple[float, float, float]]) -> float:
            # A straight-line fit over the window rather than end-to-end displacement: position jitter
            # (noisy ankles at a few metres) would otherwise read as walking.
            if q[-1][0] - q[0][0] <= 0.1 * c.speed_window_s:
                return 0.0
            a = np.asarray(q)
            tc = a[:, 0] - a[:, 0].mean()
            v = tc @ (a[:, 1:] - a[:, 1:].mean(0)) / (tc @ tc)
            return math.hypot(v[0], v[1])

        if len(s.floor) >= 2 and s.floor[-1][0] == t:
            return rate(s.floor), "m/s"
        h = s.ref_height
        if not math.isfinite(h) or h <= 0 or len(s.image) < 2:
            return 0.0, "heights/s"
        return rate(s.image) / h, "heights/s"

    def _classify_one(
        self,
        t: float,
        tr: TrackSnapshot,
        s: _TrackState,
        pos: tuple[float, float] | None,
        lying_now: float,
        sitting_now: float,
        torso: float,
        height: float,
    ) -> tuple[ActivityEstimate, schemas.PersonActivityDetected | None]:
        c = self.config
        dt = 0.0 if s.last_t is None else max(0.0, t - s.last_t)
        s.last_t = t
        if s.lying is None or s.sitting is None:
            s.lying, s.sitting = lying_now, sitting_now
        else:
            a = 1.0 - math.exp(-dt / c.score_time_constant_s) if c.score_time_constant_s > 0 else 1.0
            s.lying += a * (lying_now - s.lying)
            s.sitting += a * (sitting_now - s.sitting)
        lying, sitting = s.lying, s.sitting
        speed, unit = self._speed(t, tr, s, pos)
        walk_thr = c.walk_speed_m_s if unit == "m/s" else c.walk_speed_heights_s

        if lying >= 0.5:
            posture, conf = LYING, lying
        elif sitting >= 0.5:
            posture, conf = SITTING, sitting * (1.0 - lying)
        else:
            upright = 1.0 - max(lying, sitting)
            if speed >= walk_thr:
                posture, conf = WALKING, upright * min(1.0, 0.5 + 0.5 * speed / walk_thr / 2.0)
            else:
                posture, conf = STANDING, upright * min(1.0, 0.5 + 0.5 * (1.0 - speed / walk_thr) * 2.0)

        # Standing references: follow the person while clearly upright and consistent with the
        # reference (a fall shrinks the torso too fast to be followed).
        if posture in (STANDING, WALKING) and lying_now == 0.0 and sitting_now == 0.0 and torso > 0:
            if not math.isfinite(s.ref_torso):
                s.ref_torso, s.ref_height = torso, height
            elif 0.8 <= torso / s.ref_torso <= 1.25:
                a = 1.0 - math.exp(-dt / c.reference_time_constant_s)
                s.ref_torso += a * (torso - s.ref_torso)
                if math.isfinite(height):
                    s.ref_height += a * (height - s.ref_height)

        event = self._debounce(t, tr.track_id, s, posture, conf)
        est = ActivityEstimate(
            track_id=tr.track_id,
            posture=posture,
            activity=s.stable,
            confidence=s.stable_conf if s.stable is not None else conf,
            lying_score=lying,
            sitting_score=sitting,
            speed=speed,
            speed_unit=unit,
            body_height=s.ref_height,
            torso_length=s.ref_torso,
        )
        return est, event

    def _debounce(
        self, t: float, track_id: int, s: _TrackState, label: str, conf: float
    ) -> schemas.PersonActivityDetected | None:
        if label == s.stable:
            s.candidate, s.candidate_conf = None, None
            s.stable_conf += 0.1 * (conf - s.stable_conf)
            return None
        if label != s.candidate or s.candidate_conf is None:
            s.candidate, s.candidate_since, s.candidate_conf = label, t, [conf]
        else:
            s.candidate_conf.append(conf)
        if t - s.candidate_since < self.config.hold_s - 1e-9:  # (float sums of frame steps)
            return None
        s.stable, s.stable_conf = label, float(np.mean(s.candidate_conf))
        s.candidate, s.candidate_conf = None, None
        return schemas.PersonActivityDetected(
            timestamp=t,
            track_id=track_id,
            activity=label,
            confidence=s.stable_conf,
            event_id=self._event_ids(),
        )
