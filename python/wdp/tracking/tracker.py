"""Multi-person pose tracker: Kalman prediction, gated Hungarian association, track life cycle.

Life cycle: an unmatched detection starts a *tentative* track; it is *confirmed* once it has ``confirm_hits``
hits among its first ``confirm_window`` updates (else it is dropped silently) and only then gets its public
integer id (from ``track_ids``: by default counting up from 1; the engine passes ids unique across its runs,
see wdp.engine.ids; never reused) and a ``person.detected`` event. A confirmed track
*dies* after ``max_misses`` consecutive missed updates or ``max_coast_s`` seconds without a hit, with a
``person.lost`` event carrying first-seen -> last-seen duration.

Before association, duplicates among one update's detections (two routers, two peaks of one person) are
suppressed (wdp.tracking.nms). Confirmed tracks are matched first by keypoints, then the ones still unmatched
by box-centre distance with a wider gate (``recover_gate``: a pose net's detection of a person jumps more
than its keypoints agree). A confirmed track that dies stays *dormant* for ``reid_s`` seconds with its last
floor position (``projector``; the image centre without one): a new track that confirms near a dormant or
coasting track's position (``reid_radius_m`` plus ``reid_speed_mps`` per second since it was last seen)
takes that track's id instead of a new one (re-identification; a dormant one gets a new person.detected).

What is shown: each snapshot says whether it is ``shown``. A confirmed track is visible while it has been
seen within ``show_coast_s``; once hidden it must be confirmed again (``confirm_hits`` hits among its last
``confirm_window`` updates) before it shows, so a single detection never brings a person back. The number
shown is then smoothed: at most the ``count_quantile`` (median by default), over the last ``count_window``
updates, of the number of visible tracks, those with most hits first. The keypoints users see
(``display_keypoints``) are temporally smoothed per track (wdp.tracking.smoothing); analytics (falls,
activity, floor position) keep the filter's responsive ``keypoints``. Detection scores are mapped to a
person probability by ``score_calibration`` (logistic a * score + b, fitted for the shipped model on tuning
scenes by bench/tune_tracking.py) before any threshold; track confidence is a running mean of it.

Everything is a function of the (timestamp, detections) sequence: no clocks, no randomness (event ids come
from ``event_ids``, schemas.new_id by default). Timestamps drive the motion model, so irregular frame
spacing is handled; a timestamp that goes backwards is treated as no time passing.

Units: the tracker works internally in normalized image units (coordinates / ``scale``), so its noise and
gate settings mean the same for pixel or normalized input; snapshots come back in input units.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from wdp import schemas
from wdp.tracking.association import gated_assignment, keypoint_distance_cost, oks_cost
from wdp.tracking.detections import N_KEYPOINTS, Detections
from wdp.tracking.floor import FloorProjector
from wdp.tracking.kalman import ConstantVelocityKalman
from wdp.tracking.nms import duplicate_groups
from wdp.tracking.smoothing import JointSmoother

N_BOX_AXES = 4  # centre x, centre y, width, height
N_AXES = N_BOX_AXES + 2 * N_KEYPOINTS


@dataclass(frozen=True)
class TrackerConfig:
    """Defaults: the life-cycle settings, the NMS, re-identification, count and keypoint smoothing and the
    score calibration were chosen for the shipped model at the engine's 20 slots/s by bench/tune_tracking.py
    on val-split simulator scenes of room 101 (never the test seeds bench/eval_tracking.py reports on).
    Override any of them with ``analytics.tracker`` in conf/serve.yaml; another model wants its own
    ``score_calibration`` (tune_tracking.py prints it)."""

    scale: float = 1.0  # input units per image size: 1 for normalized input, 256 for pixels of a 256 image
    min_keypoint_score: float = 0.3  # keypoints below this are treated as not seen
    min_detection_score: float = 0.3  # detections below this are ignored
    birth_score: float = 0.5  # an unmatched detection needs this to start a track
    cost: Literal["keypoint_distance", "oks"] = "keypoint_distance"
    gate: float = 0.75  # max cost of a match: body sizes of mean keypoint error, or 1 - OKS
    confirm_hits: int = 4  # M ...
    confirm_window: int = 6  # ... of the first N updates confirm a tentative track
    max_misses: int = 100  # K consecutive missed updates kill a confirmed track ...
    max_coast_s: float = 2.0  # ... and so does this long without a hit
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
    # duplicates within one update (wdp.tracking.nms); nms_oks > 1 and nms_center 0 turn it off
    nms_oks: float = 1.1
    nms_center: float = 0.35
    recover_gate: float = 1.0  # second association by box-centre distance in body sizes; 0: off
    # re-identification of lost tracks, for reid_s after their loss; 0: off (a lost id is never given again)
    reid_s: float = 5.0
    reid_radius_m: float = 2.5  # floor metres with a floor projector ...
    reid_radius_image: float = 0.15  # ... else image units (of the normalized image)
    reid_speed_mps: float = 0.5  # the radius grows this much per second since the track was last seen (capped)
    reid_max_radius_m: float = 3.0
    # what is shown (count_window 1: every visible track)
    show_coast_s: float = 0.5  # a track unseen this long is hidden until confirmed again
    count_window: int = 5
    count_quantile: float = 0.4  # of the visible-track counts over the window (0.5: their median)
    # shown keypoints: constant-velocity Kalman per joint (wdp.tracking.smoothing); smooth_measurement_std 0: off
    smooth_process_noise: float = 0.05
    smooth_measurement_std: float = 0.08
    # person probability = 1 / (1 + exp(-(a * score + b))) of a detection's score; None: the score as it is
    score_calibration: tuple[float, float] | None = (13.79, -4.914)

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ValueError("scale must be positive")
        if not 1 <= self.confirm_hits <= self.confirm_window:
            raise ValueError("need 1 <= confirm_hits <= confirm_window")
        if self.max_misses < 1:
            raise ValueError("max_misses must be >= 1")
        if self.count_window < 1:
            raise ValueError("count_window must be >= 1")
        if self.reid_s < 0 or self.smooth_measurement_std < 0 or self.recover_gate < 0:
            raise ValueError("reid_s, recover_gate and smooth_measurement_std must be >= 0")
        if self.score_calibration is not None and len(self.score_calibration) != 2:
            raise ValueError("score_calibration is (a, b)")


@dataclass(frozen=True, eq=False)
class TrackSnapshot:
    """A confirmed track after an update, in input units; velocities in units per second."""

    track_id: int
    keypoints: np.ndarray  # (17, 3) x, y and score: the tracking filter's estimate (what analytics use)
    keypoint_velocity: np.ndarray  # (17, 2)
    box: np.ndarray  # (4,) x0, y0, x1, y1
    center: np.ndarray  # (2,)
    velocity: np.ndarray  # (2,) of the box centre
    confidence: float
    first_seen: float
    last_seen: float  # timestamp of the last matched detection
    hits: int
    misses: int  # consecutive missed updates (0: matched in this update)
    shown: bool = True  # within the smoothed person count (see the module docstring)
    display_keypoints: np.ndarray | None = None  # (17, 3) temporally smoothed for users; None: keypoints

    @property
    def shown_keypoints(self) -> np.ndarray:
        return self.keypoints if self.display_keypoints is None else self.display_keypoints

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
        "floor",
        "smoother",
        "recent_hits",
        "visible",
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
        self.floor: np.ndarray | None = None  # floor (x, y) m of the last matched detection
        self.smoother: JointSmoother | None = None
        self.recent_hits = 1  # bit i: matched i updates ago
        self.visible = False  # shown (see the module docstring)

    @property
    def confirmed(self) -> bool:
        return self.track_id is not None

    def keypoints_xy(self) -> np.ndarray:
        return self.kf.pos[N_BOX_AXES:].reshape(N_KEYPOINTS, 2)

    def box_cs(self) -> tuple[np.ndarray, np.ndarray]:
        return self.kf.pos[0:2], np.maximum(self.kf.pos[2:4], 0.0)


@dataclass
class _Dormant:
    """A lost confirmed track whose id a new track near its last position may take back."""

    track_id: int
    first_seen: float
    last_seen: float
    floor: np.ndarray | None
    centre: np.ndarray  # normalized image units
    lost_at: float


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
        projector: FloorProjector | None = None,
    ):
        """``projector``: image (input units) -> floor metres, for re-identification by floor position."""
        self.config = config or TrackerConfig()
        self._event_ids = event_ids
        self._track_ids = track_ids if track_ids is not None else self._count_id
        self._projector = projector.scaled(self.config.scale) if projector is not None else None
        self._tracks: list[_Track] = []
        self._dormant: list[_Dormant] = []
        self._counts: deque[int] = deque(maxlen=self.config.count_window)
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
        self._dormant.clear()
        self._counts.clear()
        self._time = None

    def calibrated(self, scores: np.ndarray) -> np.ndarray:
        """Detection scores -> person probabilities (``score_calibration``; identity without one)."""
        cal = self.config.score_calibration
        s = np.asarray(scores, np.float64)
        if cal is None:
            return s
        return 1.0 / (1.0 + np.exp(-(cal[0] * s + cal[1])))

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
        scores = self.calibrated(np.asarray(detections.scores, np.float64))
        keep = (scores >= c.min_detection_score) & np.isfinite(boxes).all(axis=1)
        kp = np.array(detections.keypoints, np.float64)[keep]
        bad = ~np.isfinite(kp).all(axis=2)
        kp[bad] = 0.0
        kp[..., :2] /= c.scale
        boxes = boxes[keep] / c.scale
        scores = scores[keep]
        visible = kp[..., 2] >= c.min_keypoint_score
        if len(scores) > 1:
            kept, owner = duplicate_groups(
                kp, boxes, scores, visible, oks_threshold=c.nms_oks, center_threshold=c.nms_center
            )
            best = np.zeros(len(scores))
            np.maximum.at(best, owner, scores)
            kp, boxes, scores, visible = kp[kept], boxes[kept], best[kept], visible[kept]
        floors = self._floors(kp, boxes)

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
            if group is confirmed and c.recover_gate > 0 and free:
                # second chance for confirmed tracks: the box centre, within a wider gate
                lost = [tr for tr in confirmed if tr.key not in matched]
                if lost:
                    centre = np.stack([tr.box_cs()[0] for tr in lost])
                    size = np.stack([tr.box_cs()[1].max() for tr in lost])
                    d_centre = 0.5 * (boxes[free, :2] + boxes[free, 2:])
                    cost2 = np.linalg.norm(centre[:, None] - d_centre[None], axis=-1) / np.maximum(size, 1e-9)[:, None]
                    pairs, _, _ = gated_assignment(cost2, c.recover_gate)
                    for r, k in pairs:
                        matched[lost[r].key] = free[k]
                    used = {free[k] for _, k in pairs}
                    free = [d for d in free if d not in used]

        alpha = 1.0 - np.exp(-max(dt, 1e-3) / c.score_time_constant_s)
        window = (1 << c.confirm_window) - 1
        for tr in self._tracks:
            tr.updates += 1
            d = matched.get(tr.key)
            tr.recent_hits = ((tr.recent_hits << 1) | (d is not None)) & window
            if d is None:
                tr.misses += 1
                tr.confidence *= c.miss_confidence_decay
                if tr.smoother is not None:
                    tr.smoother.update(dt, t, None, None)
                continue
            self._correct(tr, kp[d], boxes[d], visible[d], float(scores[d]), alpha, t, dt)
            if floors is not None and np.isfinite(floors[d]).all():
                tr.floor = floors[d]

        for d in free:
            if scores[d] >= c.birth_score and visible[d].any():
                tr = self._birth(kp[d], boxes[d], visible[d], float(scores[d]), t)
                if floors is not None and np.isfinite(floors[d]).all():
                    tr.floor = floors[d]
                self._tracks.append(tr)

        self._dormant = [d for d in self._dormant if t - d.lost_at <= c.reid_s]
        events: list[schemas.PersonDetected | schemas.PersonLost] = []
        lost: list[TrackSnapshot] = []
        alive: list[_Track] = []
        taken_over: set[int] = set()  # keys of coasting tracks whose id a new track took
        for tr in self._tracks:
            if tr.key in taken_over:
                continue  # its id went to a new track near it (re-identification)
            if not tr.confirmed:
                if tr.hits >= c.confirm_hits:
                    returned = self._reidentify(tr, t, taken_over)
                    if returned is None:
                        tr.track_id = self._track_ids()
                    if returned is None or returned:
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
                if c.reid_s > 0:
                    assert tr.track_id is not None
                    self._dormant.append(
                        _Dormant(tr.track_id, tr.first_seen, tr.last_seen, tr.floor, tr.box_cs()[0].copy(), t)
                    )
                continue
            alive.append(tr)
        self._tracks = [tr for tr in alive if tr.key not in taken_over]
        snaps = self._shown(sorted((tr for tr in self._tracks if tr.confirmed), key=lambda tr: tr.track_id), t)
        return TrackerUpdate(snaps, events, lost)

    # ------------------------------------------------------------------------------------------ internals

    def _floors(self, kp: np.ndarray, boxes: np.ndarray) -> np.ndarray | None:
        if self._projector is None or _reid_off(self.config) or not len(kp):
            return None
        return self._projector.locate(kp, boxes, self.config.min_keypoint_score)

    def _reidentify(self, tr: _Track, t: float, taken_over: set[int]) -> bool | None:
        """Give a newly confirmed track the id of the dormant or coasting confirmed track nearest its position
        (within the re-identification radius). Returns None (no such track: a new person), True (a dormant
        track came back: person.detected again) or False (a coasting track was taken over: no event)."""
        c = self.config
        if _reid_off(c):
            return None
        centre = tr.box_cs()[0]
        best: tuple[float, _Dormant | _Track] | None = None
        coasting = [o for o in self._tracks if o.confirmed and o.misses > 0 and o.key not in taken_over]
        for cand in [*self._dormant, *coasting]:
            age = t - cand.last_seen
            if self._projector is not None and tr.floor is not None and cand.floor is not None:
                dist = float(np.hypot(*(tr.floor - cand.floor)))
                radius = min(c.reid_radius_m + c.reid_speed_mps * age, c.reid_max_radius_m)
                score = dist / radius
            else:
                other = cand.centre if isinstance(cand, _Dormant) else cand.box_cs()[0]
                score = float(np.hypot(*(centre - other))) / c.reid_radius_image
            if score <= 1.0 and (best is None or score < best[0]):
                best = (score, cand)
        if best is None:
            return None
        old = best[1]
        tr.track_id = old.track_id
        tr.first_seen = old.first_seen
        if isinstance(old, _Dormant):
            self._dormant.remove(old)
            return True
        taken_over.add(old.key)
        return False

    def _shown(self, tracks: list[_Track], t: float) -> list[TrackSnapshot]:
        c = self.config
        for tr in tracks:
            if tr.visible and t - tr.last_seen > c.show_coast_s:
                tr.visible = False
            elif not tr.visible and tr.misses == 0 and tr.recent_hits.bit_count() >= c.confirm_hits:
                tr.visible = True
        visible = [tr for tr in tracks if tr.visible]
        n = len(visible)
        if c.count_window > 1:
            self._counts.append(n)
            counts = sorted(self._counts)
            n = min(n, counts[round(c.count_quantile * (len(counts) - 1))])
        show = {tr.key for tr in sorted(visible, key=lambda tr: (-tr.hits, tr.track_id))[:n]}
        return [self._snapshot(tr, tr.key in show) for tr in tracks]

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
        if c.smooth_measurement_std > 0:
            track.smoother = JointSmoother(
                z[N_BOX_AXES:].reshape(N_KEYPOINTS, 2),
                visible,
                t,
                process_noise=c.smooth_process_noise,
                measurement_std=c.smooth_measurement_std,
                initial_velocity_std=c.initial_velocity_std,
                reset_s=c.keypoint_reset_s,
            )
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
        dt: float,
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
        if tr.smoother is not None:
            tr.smoother.update(dt, t, kp[:, :2], visible)
        tr.kp_score += alpha * (np.where(visible, kp[:, 2], 0.0) - tr.kp_score)
        tr.kp_last_seen[visible] = t
        tr.confidence += alpha * (score - tr.confidence)
        tr.hits += 1
        tr.misses = 0
        tr.last_seen = t

    def _snapshot(self, tr: _Track, shown: bool = True) -> TrackSnapshot:
        s = self.config.scale
        kp = np.concatenate([tr.keypoints_xy() * s, tr.kp_score[:, None]], axis=1)
        display = None
        if tr.smoother is not None:
            display = np.concatenate([tr.smoother.xy * s, tr.kp_score[:, None]], axis=1)
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
            shown=shown,
            display_keypoints=display,
        )


def _reid_off(c: TrackerConfig) -> bool:
    return c.reid_s <= 0
