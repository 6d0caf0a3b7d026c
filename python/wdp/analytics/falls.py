"""Fall detection: a rapid drop of the head, shoulders or hips followed by lying within a few seconds.

Per track the image heights (y) of the head, shoulder midpoint and hip midpoint are kept for a few
seconds. Their downward speed over ``velocity_window_s``, in standing body heights per second (the
ActivityClassifier's reference, so the threshold holds at any distance and in any image unit), arms a
candidate when it exceeds ``trigger_speed``. The candidate is judged once the classifier's lying score
has held above ``lying_score`` for ``lying_hold_s`` (lying having begun within ``lying_within_s`` of the
trigger) and the body has stopped going down (drop speed under ``rest_speed``). It is a fall, and a
``person.fall_detected``, when the drop itself was quick: of whichever of head, shoulders and hips dropped
most (at least ``min_drop`` body heights within ``drop_context_s``), at least ``min_drop_fraction`` of
that drop happened within some ``max_drop_duration_s`` window. Otherwise it is dropped (sitting down
hard, crouching, a deliberate lie-down).

Why a share of the drop in a time window: image speed in body heights per second depends on where the
person is and which way they go down (a perspective camera shrinks motion away from it and magnifies
motion towards it), so a slow lie-down towards the camera can look as fast as a fall away from it. The
time course of a person's own drop is free of that scale: a topple puts nearly all of it into ~0.5 s,
lying down deliberately spreads it over seconds.

Severity: "high" when the same share of the drop fits in half the window, else "medium"; a person still
lying ``long_lie_s`` after the fall (no recovery) raises a second event with severity "critical".
Confidence grows with the drop's quickness and the lying score. After a fall the track must be upright
again for ``recover_s`` before another fall can be detected.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from wdp import schemas
from wdp.analytics.activity import LYING, ActivityEstimate
from wdp.analytics.pose_features import PoseFeatures, pose_features, ramp
from wdp.tracking.tracker import TrackSnapshot


@dataclass(frozen=True)
class FallConfig:
    min_keypoint_score: float = 0.3
    velocity_window_s: float = 0.2
    trigger_speed: float = 0.6  # body heights per second, downwards
    min_drop: float = 0.2  # body heights the part that drops most must fall
    max_drop_duration_s: float = 0.8  # a window this long must hold ...
    min_drop_fraction: float = 0.8  # ... this much of the drop
    lookback_s: float = 3.0  # the drop starts at most this long before the trigger
    profile_smoothing_s: float = 0.1
    drop_context_s: float = 1.6  # the drop is measured over windows this long
    lying_score: float = 0.5
    lying_within_s: float = 2.0  # T: lying must begin this soon after the trigger
    lying_hold_s: float = 0.25  # short: people who fall often get straight back up
    rest_speed: float = 0.3  # judge the drop once it has ended: drop speed below this (body heights/s) ...
    rest_timeout_s: float = 2.0  # ... or this long after lying_within_s
    long_lie_s: float | None = 30.0  # None: no escalation
    upright_score: float = 0.3  # lying score below this counts as upright (recovered)
    recover_s: float = 1.0


@dataclass
class _FallState:
    # (t, head y, shoulder y, hip y, pose extent)
    history: deque[tuple[float, float, float, float, float]] = field(default_factory=deque)
    lying_since: float | None = None
    upright_since: float | None = None
    triggered_at: float | None = None
    peak_speed: float = 0.0
    fallen_at: float | None = None
    escalated: bool = False


@dataclass(frozen=True)
class FallObservation:
    """What the detector saw for one track in the last update (for inspection and tuning)."""

    track_id: int
    drop_speed: float  # body heights per second, the fastest of head / shoulders / hips (0 if unknown)
    triggered: bool
    fallen: bool


class FallDetector:
    def __init__(self, config: FallConfig | None = None, *, event_ids: Callable[[], str] = schemas.new_id):
        self.config = config or FallConfig()
        self._event_ids = event_ids
        self._state: dict[int, _FallState] = {}
        self.last_observations: dict[int, FallObservation] = {}

    def update(
        self,
        timestamp: float,
        tracks: Sequence[TrackSnapshot],
        activities: Mapping[int, ActivityEstimate],
        features: PoseFeatures | None = None,
    ) -> list[schemas.PersonFallDetected]:
        """Advance with the live tracks and their activity estimates; coasting tracks (no detection this
        update) keep their state but add no samples, since their poses are extrapolated. ``features``:
        the tracks' pose features if already computed (same order as ``tracks``)."""
        c = self.config
        t = float(timestamp)
        live = {tr.track_id for tr in tracks}
        self._state = {tid: s for tid, s in self._state.items() if tid in live}
        feats = features
        if feats is None and tracks:
            feats = pose_features(np.stack([tr.keypoints for tr in tracks]), c.min_keypoint_score)
        events: list[schemas.PersonFallDetected] = []
        self.last_observations = {}
        for i, tr in enumerate(tracks):
            s = self._state.setdefault(tr.track_id, _FallState())
            est = activities.get(tr.track_id)
            speed = 0.0
            if feats is not None and not tr.coasting and est is not None:
                size = float(np.nanmax([feats.height[i], feats.width[i], 0.0]))
                s.history.append((t, feats.head_y[i], feats.shoulder_y[i], feats.hip_y[i], size))
                speed = self._drop_speed(t, s, est)
                # hysteresis: lying starts above lying_score and lasts until the score is upright-low
                if est.lying_score >= c.lying_score:
                    s.lying_since = t if s.lying_since is None else s.lying_since
                elif est.lying_score < c.upright_score:
                    s.lying_since = None
                if est.lying_score < c.upright_score:
                    s.upright_since = t if s.upright_since is None else s.upright_since
                else:
                    s.upright_since = None
            ev = self._advance(t, tr.track_id, s, speed, est)
            if ev is not None:
                events.append(ev)
            self.last_observations[tr.track_id] = FallObservation(
                tr.track_id,
                speed,
                s.triggered_at is not None,
                s.fallen_at is not None,
            )
        return events

    # ------------------------------------------------------------------------------------------ internals

    def _drop_speed(self, t: float, s: _FallState, est: ActivityEstimate) -> float:
        c = self.config
        h = s.history
        keep = c.lookback_s + c.lying_within_s + c.rest_timeout_s + 0.5  # all a judgment may look at
        while len(h) > 2 and t - h[1][0] >= keep:
            h.popleft()
        body = self._body(s, est)
        # newest sample at least velocity_window_s old
        i = len(h) - 1
        while i > 0 and t - h[i][0] < c.velocity_window_s:
            i -= 1
        t0 = h[i][0]
        if t - t0 < 0.5 * c.velocity_window_s or not body > 0:
            return 0.0
        now, then = np.array(h[-1][1:4]), np.array(h[i][1:4])
        drops = (now - then) / (t - t0) / body  # image y grows downwards
        drops = drops[np.isfinite(drops)]
        return float(drops.max()) if len(drops) else 0.0

    @staticmethod
    def _body(s: _FallState, est: ActivityEstimate | None) -> float:
        body = est.body_height if est is not None else float("nan")
        if not (np.isfinite(body) and body > 0):
            body = max((x[4] for x in s.history), default=0.0)  # never seen upright: largest extent lately
        return float(body)

    def _drop_profile(self, s: _FallState, t_from: float, body: float) -> tuple[float, float, float]:
        """For whichever of head, shoulders and hips dropped most since ``t_from`` (smoothed over
        ``profile_smoothing_s``): (its largest drop within any ``drop_context_s`` window, in body heights;
        the share of that drop achieved within ``max_drop_duration_s``; the share within half of that).

        Comparing windows of one track's own motion is free of perspective scale, and a slow drift
        before the fall (walking towards the camera) adds little to either window."""
        c = self.config
        rows = [x for x in s.history if x[0] >= t_from]
        if len(rows) < 3 or not body > 0:
            return 0.0, 0.0, 0.0
        arr = np.array(rows)
        ts = arr[:, 0]
        step = float(np.median(np.diff(ts)))
        width = max(1, int(round(c.profile_smoothing_s / step))) if step > 0 else 1
        best = (0.0, 0.0, 0.0)
        for k in (1, 2, 3):
            y = arr[:, k]
            ok = np.isfinite(y)
            if ok.sum() < max(3, width):
                continue
            yt, yy = ts[ok], y[ok]
            if width > 1:
                yy = np.convolve(yy, np.ones(width) / width, mode="valid")
                yt = yt[width // 2 : width // 2 + len(yy)]

            def drop_within(w: float, yt: np.ndarray = yt, yy: np.ndarray = yy) -> float:
                # largest rise of image y (= downward motion) from any instant to w seconds later
                ahead = np.interp(np.minimum(yt + w, yt[-1]), yt, yy)
                return float(np.max(ahead - yy))

            total = drop_within(c.drop_context_s)
            if total / body > best[0]:
                best = (
                    total / body,
                    drop_within(c.max_drop_duration_s) / total,
                    drop_within(0.5 * c.max_drop_duration_s) / total,
                )
        return best

    def _advance(
        self, t: float, track_id: int, s: _FallState, speed: float, est: ActivityEstimate | None
    ) -> schemas.PersonFallDetected | None:
        c = self.config
        if s.fallen_at is not None:
            if s.upright_since is not None and t - s.upright_since >= c.recover_s:
                s.fallen_at, s.triggered_at, s.escalated = None, None, False
                return None
            if (
                c.long_lie_s is not None
                and not s.escalated
                and s.lying_since is not None
                and t - s.fallen_at >= c.long_lie_s
            ):
                s.escalated = True
                conf = min(1.0, 0.5 + 0.5 * (est.lying_score if est is not None else 0.5))
                return self._event(t, track_id, conf, "critical")
            return None

        if s.triggered_at is None:
            already_lying = est is not None and est.activity == LYING and s.lying_since is not None
            if speed >= c.trigger_speed and not already_lying:
                s.triggered_at, s.peak_speed = t, speed
            return None

        s.peak_speed = max(s.peak_speed, speed)
        if s.lying_since is not None and s.lying_since - s.triggered_at <= c.lying_within_s:
            if t - s.lying_since < c.lying_hold_s:
                return None
            if speed > c.rest_speed and t - s.triggered_at < c.lying_within_s + c.rest_timeout_s:
                return None  # still going down: judge the whole drop
            drop, share, share_half = self._drop_profile(s, s.triggered_at - c.lookback_s, self._body(s, est))
            s.triggered_at, s.peak_speed = None, 0.0
            if drop < c.min_drop or share < c.min_drop_fraction:
                return None  # went down, but not like a fall
            s.fallen_at = t
            lying = est.lying_score if est is not None else c.lying_score
            quick = float(ramp(share_half, 0.5 * c.min_drop_fraction, c.min_drop_fraction))
            conf = 0.4 + 0.3 * quick + 0.3 * lying
            severity = "high" if share_half >= c.min_drop_fraction else "medium"
            return self._event(t, track_id, float(np.clip(conf, 0.0, 1.0)), severity)
        if t - s.triggered_at > c.lying_within_s:
            s.triggered_at, s.peak_speed = None, 0.0
        return None

    def _event(self, t: float, track_id: int, confidence: float, severity: str) -> schemas.PersonFallDetected:
        return schemas.PersonFallDetected(
            timestamp=t,
            track_id=track_id,
            confidence=confidence,
            severity=severity,  # type: ignore[arg-type]
            event_id=self._event_ids(),
        )
