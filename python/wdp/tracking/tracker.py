"""Multi-person pose tracker: Kalman prediction, gated Hungarian association, track life cycle.

Life cycle: an unmatched detection starts a *tentative* track; it is *confirmed* once it has ``confirm_hits``
hits among its first ``confirm_window`` updates (else it is dropped silently) and only then gets its public
integer id (from ``track_ids``: by default counting up from 1; the engine passes ids unique across its runs,
see wdp.engine.ids; never reused) and a ``person.detected`` event. A confirmed track
*dies* after ``max_misses`` consecutive missed updates or ``max_coast_s`` seconds without a hit, with a
``person.lost`` event carrying first-seen -> last-seen duration.

Everything is a function of the (timestamp, detections) sequence: no clocks, no randomness (event ids come
from ``event_ids``, schemas.new_id by default). Timestamps drive the motion model, so irregular frame
spacing is handled; a timestamp that goes backwards is treated as no time passing.

Units: the tracker works internally in normalized image units (coordinates / ``scale``), so its noise and
gate settings mean the same for pixel or normalized input; snapshots come back in input units.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from wdp import schemas
from wdp.tracking.association import gated_assignment, keypoint_distance_cost, oks_cost
from wdp.tracking.detections import N_KEYPOINTS, Detections
from wdp.tracking.kalman import ConstantVelocityKalman

N_BOX_AXES = 4  # centre x, centre y, width, height
N_AXES = N_BOX_AXES + 2 * N_KEYPOINTS


@dataclass(frozen=True)
class TrackerConfig:
    scale: float = 1.0  # input units per image size: 1 for normalized input, 256 for pixels of a 256 image
    min_keypoint_score: float = 0.3  # keypoints below this are treated as not seen
    min_detection_score: float = 0.3  # detections below this are ignored
    birth_score: float = 0.5  # an unmatched detection needs this to start a track
    cost: Literal["keypoint_distance", "oks"] = "keypoint_distance"
    gate: float = 0.5  # max cost of a match: body sizes of mean keypoint error, or 1 - OKS
    confirm_hits: int = 3  # M ...
    confirm_window: int = 5  # ... of the first N updates confirm a tentative track
    max_misses: int = 15  # K consecutive missed updates kill a confirmed track ...
    max_coast_s: float = 1.0  # ... and so does this long without a hit
    # Kalman noise in normalized image units: acceleration spectral densities (units^2/s^3) and
    # measurement standard deviations (units).
    center_process_noise: float = 0.5
    size_process_noise: float = 0.2
    keypoint_process_noise: float = 2.0
    box_measurement_std: float = 0.01
    keypoint_measurement_std: float = 0.008
    initial_velocity_std: float = 1.0  # units/s: unknown velocity of a new track
    keypoint_reset_s: float = 0.5  # a keypoint unseen this long restarts from its next measurement
    score_time_constant_s: float = 0.05  # smoothing of keypoint scores and track confidence
    miss_confidence_decay: float = 0.9  # confidence factor per missed update

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ValueError("scale must be positive")
        if not 1 <= self.confirm_hits <= self.confirm_window:
            raise ValueError("need 1 <= confirm_hits <= confirm_window")
        if self.max_misses < 1:
            raise ValueError("max_misses must be >= 1")


@dataclass(frozen=True, eq=False)
class TrackSnapshot:
    """A confirmed track after an update, in input units; velocities in units per second."""

    track_id: int
    keypoints: np.ndarray  # (17, 3) smoothed x, y and score
    keypoint_velocity: np.ndarray  # (17, 2)
    box: np.ndarray  # (4,) x0, y0, x1, y1
    center: np.ndarray  # (2,)
    velocity: np.ndarray  # (2,) of the box centre
    confidence: float
    first_seen: float
    last_seen: float  # timestamp of the last matched detection
    hits: int
    misses: int  # consecutive missed updates (0: matched in this update)

    @property
    def coasting(self) -> bool:
        return self.misses > 0


@dataclass(frozen=True)
class TrackerUpdate:
    tracks: list[TrackSnapshot]  # confirmed live tracks, by id
    events: list[schemas.PersonDetected | schemas.PersonLost]
    lost: list[TrackSnapshot] = field(default_factory=list)  # tracks that died in this update


class _Track:
    __slots__ = (
        "key",
        "track_id",
        "kf",
        "kp_score",
        "kp_last_seen",
        "confidence",
        "first_seen",
        "last_seen",
        "hits",
        "misses",
        "updates",
    )

    def __init__(
        self,
        key: int,
        kf: ConstantVelocityKalman,
        kp_score: np.ndarray,
        kp_seen: np.ndarray,
        confidence: float,
        t: float,
    ):
        self.key = key
        self.track_id: int | None = None  # public id, given on confirmation
        self.kf = kf
        self.kp_score = kp_score
        self.kp_last_seen = np.where(kp_seen, t, -np.inf)
        self.confidence = confidence
        self.first_seen = t
        self.last_seen = t
        self.hits = 1
        self.misses = 0
        self.updates = 1  # updates since birth, the birth included

    @property
    def confirmed(self) -> bool:
        return self.track_id is not None

    def keypoints_xy(self) -> np.ndarray:
        return self.kf.pos[N_BOX_AXES:].reshape(N_KEYPOINTS, 2)

    def box_cs(self) -> tuple[np.ndarray, np.ndarray]:
        return self.kf.pos[0:2], np.maximum(self.kf.pos[2:4], 0.0)


def _measurement(kp: np.ndarray, box: np.ndarray) -> np.ndarray:
    z = np.empty(N_AXES)
    z[0:2] = 0.5 * (box[:2] + box[2:])
    z[2:4] = box[2:] - box[:2]
    z[N_BOX_AXES:] = kp[:, :2].reshape(-1)
    return z


class Tracker:
    def __init__(
        self,
        config: TrackerConfig | None = None,
        *,
        event_ids: Callable[[], str] = schemas.new_id,
        track_ids: Callable[[], int] | None = None,
    ):
        self.config = config or TrackerConfig()
        self._event_ids = event_ids
        self._track_ids = track_ids if track_ids is not None else self._count_id
        self._tracks: list[_Track] = []
        self._time: float | None = None
        self._next_key = 0
        self._next_id = 1
        c = self.config
        self._q = np.concatenate(
            [
                np.full(2, c.center_process_noise),
                np.full(2, c.size_process_noise),
                np.full(2 * N_KEYPOINTS, c.keypoint_process_noise),
            ]
        )
        self._r = np.concatenate(
            [
                np.full(N_BOX_AXES, c.box_measurement_std**2),
                np.full(2 * N_KEYPOINTS, c.keypoint_measurement_std**2),
            ]
        )

    def _count_id(self) -> int:
        track_id = self._next_id
        self._next_id += 1
        return track_id

    @property
    def time(self) -> float | None:
        return self._time

    def reset(self) -> None:
        """Forget every track (ids keep counting up, so they stay unique)."""
        self._tracks.clear()
        self._time = None

    def update(self, timestamp: float, detections: Detections) -> TrackerUpdate:
        c = self.config
        t = float(timestamp)
        dt = 0.0 if self._time is None else max(0.0, t - self._time)
        self._time = t if self._time is None else max(self._time, t)
        for tr in self._tracks:
            tr.kf.predict(dt)

        # Normalize the input, drop weak detections. Non-finite values (Detections built by hand rather
        # than by from_arrays) must not reach the filter: one NaN would poison a track for good.
        boxes = np.asarray(detections.boxes, np.float64)
        keep = (np.asarray(detections.scores) >= c.min_detection_score) & np.isfinite(boxes).all(axis=1)
        kp = np.array(detections.keypoints, np.float64)[keep]
        bad = ~np.isfinite(kp).all(axis=2)
        kp[bad] = 0.0
        kp[..., :2] /= c.scale
        boxes = boxes[keep] / c.scale
        scores = np.asarray(detections.scores, np.float64)[keep]
        visible = kp[..., 2] >= c.min_keypoint_score

        # Confirmed tracks get the first pick, tentative ones share what is left.
        confirmed = [tr for tr in self._tracks if tr.confirmed]
        tentative = [tr for tr in self._tracks if not tr.confirmed]
        free = list(range(len(scores)))
        matched: dict[int, int] = {}  # track key -> detection row
        for group in (confirmed, tentative):
            if not group or not free:
                continue
            cost = self._cost(group, kp[free], boxes[free], visible[free], t)
            pairs, _, _ = gated_assignment(cost, c.gate)
            for r, k in pairs:
                matched[group[r].key] = free[k]
            used = {free[k] for _, k in pairs}
            free = [d for d in free if d not in used]

        alpha = 1.0 - np.exp(-max(dt, 1e-3) / c.score_time_constant_s)
        for tr in self._tracks:
            tr.updates += 1
            d = matched.get(tr.key)
            if d is None:
                tr.misses += 1
                tr.confidence *= c.miss_confidence_decay
                continue
            self._correct(tr, kp[d], boxes[d], visible[d], float(scores[d]), alpha, t)

        for d in free:
            if scores[d] >= c.birth_score and visible[d].any():
                self._tracks.append(self._birth(kp[d], boxes[d], visible[d], float(scores[d]), t))

        events: list[schemas.PersonDetected | schemas.PersonLost] = []
        lost: list[TrackSnapshot] = []
        alive: list[_Track] = []
        for tr in self._tracks:
            if not tr.confirmed:
                if tr.hits >= c.confirm_hits:
                    tr.track_id = self._track_ids()
                    events.append(
                        schemas.PersonDetected(
                            timestamp=t,
                            track_id=tr.track_id,
                            confidence=float(tr.confidence),
                            event_id=self._event_ids(),
                        )
                    )
                elif tr.hits + (c.confirm_window - tr.updates) < c.confirm_hits:
                    continue  # can no longer be confirmed: dropped without a trace
            elif tr.misses >= c.max_misses or (tr.misses > 0 and t - tr.last_seen > c.max_coast_s):
                snap = self._snapshot(tr)
                lost.append(snap)
                events.append(
                    schemas.PersonLost(
                        timestamp=t,
                        track_id=snap.track_id,
                        duration_s=tr.last_seen - tr.first_seen,
                        event_id=self._event_ids(),
                    )
                )
                continue
            alive.append(tr)
        self._tracks = alive
        snaps = sorted((self._snapshot(tr) for tr in alive if tr.confirmed), key=lambda s: s.track_id)
        return TrackerUpdate(snaps, events, lost)

    # ------------------------------------------------------------------------------------------ internals

    def _cost(
        self, group: list[_Track], kp: np.ndarray, boxes: np.ndarray, visible: np.ndarray, t: float
    ) -> np.ndarray:
        c = self.config
        t_xy = np.stack([tr.keypoints_xy() for tr in group])
        # A track "sees" a keypoint it measured recently; older ones are extrapolated guesses.
        t_vis = np.stack([(t - tr.kp_last_seen) <= c.keypoint_reset_s for tr in group])
        sizes = np.stack([tr.box_cs()[1] for tr in group])
        d_xy = kp[..., :2]
        if c.cost == "oks":
            return oks_cost(t_xy, t_vis, sizes.prod(1), d_xy, visible)
        t_center = np.stack([tr.box_cs()[0] for tr in group])
        d_center = 0.5 * (boxes[:, :2] + boxes[:, 2:])
        return keypoint_distance_cost(t_xy, t_vis, sizes.max(1), d_xy, visible, t_center, d_center)

    def _birth(self, kp: np.ndarray, box: np.ndarray, visible: np.ndarray, score: float, t: float) -> _Track:
        c = self.config
        z = _measurement(kp, box)
        # Unseen keypoints start at the box centre with a huge variance, so their first sighting wins.
        kp_var = np.where(visible, c.keypoint_measurement_std**2, 1.0)
        z[N_BOX_AXES:] = np.where(np.repeat(visible, 2), z[N_BOX_AXES:], np.tile(z[0:2], N_KEYPOINTS))
        kf = ConstantVelocityKalman(
            z,
            process_noise=self._q,
            measurement_noise=self._r,
            position_var=np.concatenate([np.full(N_BOX_AXES, c.box_measurement_std**2), np.repeat(kp_var, 2)]),
            velocity_var=c.initial_velocity_std**2,
        )
        track = _Track(self._next_key, kf, np.where(visible, kp[:, 2], 0.0), visible, score, t)
        self._next_key += 1
        return track

    def _correct(
        self,
        tr: _Track,
        kp: np.ndarray,
        box: np.ndarray,
        visible: np.ndarray,
        score: float,
        alpha: float,
        t: float,
    ) -> None:
        c = self.config
        z = _measurement(kp, box)
        stale = visible & ((t - tr.kp_last_seen) > c.keypoint_reset_s)
        if stale.any():
            tr.kf.reset_axes(
                np.concatenate([np.zeros(N_BOX_AXES, bool), np.repeat(stale, 2)]),
                z,
                c.keypoint_measurement_std**2,
                c.initial_velocity_std**2,
            )
        mask = np.concatenate([np.ones(N_BOX_AXES, bool), np.repeat(visible & ~stale, 2)])
        tr.kf.update(z, mask)
        tr.kp_score += alpha * (np.where(visible, kp[:, 2], 0.0) - tr.kp_score)
        tr.kp_last_seen[visible] = t
        tr.confidence += alpha * (score - tr.confidence)
        tr.hits += 1
        tr.misses = 0
        tr.last_seen = t

    def _snapshot(self, tr: _Track) -> TrackSnapshot:
        s = self.config.scale
        xy = tr.keypoints_xy() * s
        kp = np.concatenate([xy, tr.kp_score[:, None]], axis=1)
        center, size = tr.box_cs()
        center = center * s
        half = 0.5 * size * s
        assert tr.track_id is not None
        return TrackSnapshot(
            track_id=tr.track_id,
            keypoints=kp,
            keypoint_velocity=tr.kf.vel[N_BOX_AXES:].reshape(N_KEYPOINTS, 2) * s,
            box=np.concatenate([center - half, center + half]),
            center=center,
            velocity=tr.kf.vel[0:2] * s,
            confidence=float(tr.confidence),
            first_seen=tr.first_seen,
            last_seen=tr.last_seen,
            hits=tr.hits,
            misses=tr.misses,
        )
