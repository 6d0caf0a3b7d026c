"""Motions as pose-parameter curves, and scripts of actions compiled into per-person timelines.

Each motion segment maps time to pose parameters (wdp.csi.simulator.body). A timeline is a list of
consecutive segments; entering a segment blends from the previous segment's final pose with a
smoothstep over the segment's ``blend_in`` seconds, so poses are continuous.

Motions (angles in degrees in the comments):
* stand: upright, postural sway (1-1.5 cm, 0.2-0.35 Hz) and slight trunk roll.
* walk: straight line p0 -> p1 at `speed`; gait cycle at 0.5 + 0.35 v strides/s, hip flexion
  5 + 20 cos(2 pi phase), knee flexion with a loading bump (15) and a swing bump (55), arms swinging
  against the legs; the pelvis height follows the stance leg (vertical bob).
* sit: thighs horizontal, shanks vertical (invisible chair at knee height), hands on the lap.
* wave: standing, one upper arm raised sideways (100), forearm swinging side to side at 1.5-2.5 Hz.
* fall: from upright to lying in 0.5-1 s: the body rotates about the ankles by 90 with an accelerating
  profile (u^2), knees buckle and arms reach out on the way; forward, backward, left or right.
* lie: lying on the floor (the end pose of a fall or lie-down) with breathing (4 mm at 0.25 Hz unless a
  script sets breath_bpm / breath_amp_m).
* breathing while standing or sitting (script option breath_bpm, off by default): the trunk pitches so the
  chest moves by breath_amp_m (5 mm) at the breathing rate.
* lie_down: deliberate 2-3 s transition from standing to lying through a crouch (smoothstep).
* get_up: the reverse of lie_down (labelled "lie" for its first half and "stand" after).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from wdp import schemas_sample as S
from wdp.csi.simulator.body import N_PARAMS, P

DEG = np.pi / 180
ACT = {name: i for i, name in enumerate(S.ACTIVITIES)}
LIE_LIFT_M = 0.06  # lying body centre line sits this much above ankle height
FALL_TILT = {  # (tilt_pitch, tilt_roll) at the end of a fall in each direction
    "forward": (90 * DEG, 0.0),
    "backward": (-90 * DEG, 0.0),
    "left": (0.0, -90 * DEG),
    "right": (0.0, 90 * DEG),
}


CHEST_LEVER_M = 0.45  # pelvis to mid-chest: a trunk pitch of a / 0.45 rad moves the chest by about a metres


def breathing(t: np.ndarray, hz: float, amp: float, phase: float) -> np.ndarray:
    """Chest displacement (m): a sinusoid of amplitude `amp` at `hz`."""
    return amp * np.sin(2 * np.pi * hz * t + phase)


def smoothstep(u: np.ndarray) -> np.ndarray:
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3 - 2 * u)


def _bump(p: np.ndarray, center: float, width: float) -> np.ndarray:
    d = np.abs(p - center)
    return np.where(d < width, 0.5 * (1 + np.cos(np.pi * d / width)), 0.0)


def neutral_pose(n: int, x: float = 0.0, y: float = 0.0, heading: float = 0.0) -> np.ndarray:
    """(n, N_PARAMS) standing pose with relaxed arms."""
    q = np.zeros((n, N_PARAMS))
    q[:, P["x"]], q[:, P["y"]], q[:, P["heading"]] = x, y, heading
    q[:, [P["l_thigh_az"], P["r_thigh_az"]]] = 4 * DEG
    q[:, [P["l_ua_el"], P["r_ua_el"]]] = 5 * DEG
    q[:, [P["l_ua_az"], P["r_ua_az"]]] = 8 * DEG
    q[:, [P["l_fa_el"], P["r_fa_el"]]] = 12 * DEG
    q[:, [P["l_fa_az"], P["r_fa_az"]]] = 8 * DEG
    return q


def lying_pose(n: int, x: float, y: float, heading: float, direction: str) -> np.ndarray:
    """(n, N_PARAMS) lying on the floor after falling/lying down towards `direction`: on the back
    (backward), face down with pointed feet (forward) or on a side with the arms in front (left/right)."""
    q = neutral_pose(n, x, y, heading)
    q[:, P["tilt_pitch"]], q[:, P["tilt_roll"]] = FALL_TILT[direction]
    q[:, P["lift"]] = LIE_LIFT_M
    if direction in ("forward", "backward"):
        ua, fa = (20 * DEG, 40 * DEG), (30 * DEG, 40 * DEG)
        if direction == "forward":
            ua, fa = (25 * DEG, 90 * DEG), (35 * DEG, 90 * DEG)
            q[:, P["foot_flex"]] = 75 * DEG
    else:
        ua, fa = (60 * DEG, 0.0), (80 * DEG, 0.0)
        q[:, [P["l_thigh_az"], P["r_thigh_az"]]] = 0.0
        q[:, [P["l_thigh_el"], P["r_thigh_el"]]] = 25 * DEG
        q[:, [P["l_shank_el"], P["r_shank_el"]]] = -10 * DEG
    q[:, [P["l_ua_el"], P["r_ua_el"]]] = ua[0]
    q[:, [P["l_ua_az"], P["r_ua_az"]]] = ua[1]
    q[:, [P["l_fa_el"], P["r_fa_el"]]] = fa[0]
    q[:, [P["l_fa_az"], P["r_fa_az"]]] = fa[1]
    return q


@dataclass
class Segment:
    """One motion over [t0, t1). Subclasses implement ``_params``."""

    t0: float
    t1: float
    x: float
    y: float
    heading: float
    blend_in: float = 0.5
    blend_params: np.ndarray | None = field(default=None, repr=False)  # None: blend every parameter
    activity_name: str = "stand"

    def params(self, t: np.ndarray) -> np.ndarray:
        return self._params(np.asarray(t, np.float64))

    def _params(self, t: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def activity(self, t: np.ndarray) -> np.ndarray:
        return np.full(len(t), ACT[self.activity_name], np.int64)

    def end_xy(self) -> tuple[float, float]:
        return self.x, self.y


@dataclass
class StandSegment(Segment):
    sway_amp: float = 0.012
    sway_hz: float = 0.27
    sway_phase: float = 0.0
    activity_name: str = "stand"
    # Breathing (off by default): the chest moves back and forth by breath_amp (m) at breath_hz, modelled as
    # a trunk pitch oscillation about the pelvis (CHEST_LEVER_M).
    breath_hz: float = 0.0
    breath_amp: float = 0.0
    breath_phase: float = 0.0

    def _params(self, t: np.ndarray) -> np.ndarray:
        q = neutral_pose(len(t), self.x, self.y, self.heading)
        s = np.sin(2 * np.pi * self.sway_hz * t + self.sway_phase)
        q[:, P["x"]] += -np.sin(self.heading) * self.sway_amp * s
        q[:, P["y"]] += np.cos(self.heading) * self.sway_amp * s
        q[:, P["trunk_roll"]] = 1.0 * DEG * s
        q[:, P["trunk_pitch"]] = 1.5 * DEG + 0.7 * DEG * np.sin(2 * np.pi * 0.13 * t + self.sway_phase)
        if self.breath_amp > 0:
            q[:, P["trunk_pitch"]] += breathing(t, self.breath_hz, self.breath_amp, self.breath_phase) / CHEST_LEVER_M
        return q


@dataclass
class WaveSegment(StandSegment):
    arm: str = "right"
    wave_hz: float = 2.0
    activity_name: str = "wave"

    def _params(self, t: np.ndarray) -> np.ndarray:
        q = super()._params(t)
        pre = "r_" if self.arm == "right" else "l_"
        w = np.sin(2 * np.pi * self.wave_hz * (t - self.t0))
        q[:, P[pre + "ua_el"]] = 100 * DEG + 8 * DEG * w
        q[:, P[pre + "ua_az"]] = 75 * DEG
        q[:, P[pre + "fa_el"]] = 155 * DEG + 30 * DEG * w
        q[:, P[pre + "fa_az"]] = 80 * DEG
        return q


@dataclass
class SitSegment(StandSegment):
    sway_amp: float = 0.006
    activity_name: str = "sit"

    def _params(self, t: np.ndarray) -> np.ndarray:
        q = super()._params(t)
        q[:, [P["l_thigh_el"], P["r_thigh_el"]]] = 88 * DEG
        q[:, [P["l_thigh_az"], P["r_thigh_az"]]] = 9 * DEG
        q[:, [P["l_shank_el"], P["r_shank_el"]]] = 5 * DEG
        q[:, [P["l_ua_el"], P["r_ua_el"]]] = 22 * DEG
        q[:, [P["l_ua_az"], P["r_ua_az"]]] = 10 * DEG
        q[:, [P["l_fa_el"], P["r_fa_el"]]] = 80 * DEG
        q[:, [P["l_fa_az"], P["r_fa_az"]]] = -5 * DEG
        q[:, P["trunk_pitch"]] += 3 * DEG
        return q


@dataclass
class WalkSegment(Segment):
    x1: float = 0.0
    y1: float = 0.0
    speed: float = 1.2
    gait_phase: float = 0.0
    blend_in: float = 0.4
    activity_name: str = "walk"

    @property
    def cadence(self) -> float:
        return 0.5 + 0.35 * self.speed  # strides per second

    def phase_at(self, t: float) -> float:
        return self.gait_phase + self.cadence * (t - self.t0)

    def end_xy(self) -> tuple[float, float]:
        return self.x1, self.y1

    def _params(self, t: np.ndarray) -> np.ndarray:
        dx, dy = self.x1 - self.x, self.y1 - self.y
        dist = float(np.hypot(dx, dy))
        tau = np.clip(t - self.t0, 0.0, self.t1 - self.t0)
        frac = np.minimum(self.speed * tau / dist, 1.0) if dist > 0 else np.zeros_like(tau)
        q = neutral_pose(len(t), 0.0, 0.0, self.heading)
        q[:, P["x"]] = self.x + frac * dx
        q[:, P["y"]] = self.y + frac * dy
        q[:, P["trunk_pitch"]] = 4 * DEG
        ph = self.gait_phase + self.cadence * tau
        for pre, off in (("l_", 0.0), ("r_", 0.5)):
            p = np.mod(ph + off, 1.0)
            hip = 5 * DEG + 20 * DEG * np.cos(2 * np.pi * p)
            knee = 5 * DEG + 15 * DEG * _bump(p, 0.12, 0.12) + 55 * DEG * _bump(p, 0.72, 0.2)
            q[:, P[pre + "thigh_el"]] = hip
            q[:, P[pre + "shank_el"]] = hip - knee
            other = "r_" if pre == "l_" else "l_"
            # An arm swings with the opposite leg.
            q[:, P[other + "ua_el"]] = -0.8 * (hip - 5 * DEG) + 2 * DEG
            q[:, P[other + "fa_el"]] = q[:, P[other + "ua_el"]] + 20 * DEG
        q[:, P["trunk_roll"]] = 2 * DEG * np.sin(2 * np.pi * ph)
        return q


@dataclass
class FallSegment(Segment):
    direction: str = "forward"
    blend_in: float = 0.12
    activity_name: str = "fall"

    def _params(self, t: np.ndarray) -> np.ndarray:
        u = np.clip((t - self.t0) / (self.t1 - self.t0), 0.0, 1.0)
        s = u * u  # accelerating like a toppling body
        bump = np.sin(np.pi * u)
        lie = lying_pose(len(t), self.x, self.y, self.heading, self.direction)
        stand = neutral_pose(len(t), self.x, self.y, self.heading)
        q = stand + (lie - stand) * u[:, None]  # limbs move towards the lying pose on the way down
        q[:, P["tilt_pitch"]] = lie[:, P["tilt_pitch"]] * s
        q[:, P["tilt_roll"]] = lie[:, P["tilt_roll"]] * s
        q[:, P["lift"]] = lie[:, P["lift"]] * s
        for pre in ("l_", "r_"):  # knees buckle, arms reach out
            q[:, P[pre + "thigh_el"]] += 25 * DEG * bump
            q[:, P[pre + "shank_el"]] += -25 * DEG * bump
            q[:, P[pre + "ua_el"]] += 70 * DEG * bump
            q[:, P[pre + "fa_el"]] += 90 * DEG * bump
        q[:, P["trunk_pitch"]] = 15 * DEG * bump
        return q


@dataclass
class LieSegment(Segment):
    direction: str = "backward"
    breath_phase: float = 0.0
    blend_in: float = 0.0
    activity_name: str = "lie"
    breath_hz: float = 0.25  # the body rises and falls by breath_amp (m) at breath_hz
    breath_amp: float = 0.004

    def _params(self, t: np.ndarray) -> np.ndarray:
        q = lying_pose(len(t), self.x, self.y, self.heading, self.direction)
        q[:, P["lift"]] += self.breath_amp * np.sin(2 * np.pi * self.breath_hz * t + self.breath_phase)
        return q


@dataclass
class LieDownSegment(Segment):
    """Standing -> lying (reverse=False) or lying -> standing (reverse=True), through a crouch."""

    direction: str = "backward"
    reverse: bool = False
    blend_in: float = 0.3
    activity_name: str = "lie"

    def _u(self, t: np.ndarray) -> np.ndarray:
        u = np.clip((t - self.t0) / (self.t1 - self.t0), 0.0, 1.0)
        return 1.0 - u if self.reverse else u

    def _params(self, t: np.ndarray) -> np.ndarray:
        u = self._u(t)
        s = smoothstep(u)
        bump = np.sin(np.pi * u)
        q = lying_pose(len(t), self.x, self.y, self.heading, self.direction)
        stand = neutral_pose(len(t), self.x, self.y, self.heading)
        q = stand + (q - stand) * s[:, None]
        for pre in ("l_", "r_"):
            q[:, P[pre + "thigh_el"]] += 70 * DEG * bump
            q[:, P[pre + "shank_el"]] += -10 * DEG * bump
            q[:, P[pre + "ua_el"]] += 30 * DEG * bump
        q[:, P["trunk_pitch"]] += 20 * DEG * bump
        return q

    def activity(self, t: np.ndarray) -> np.ndarray:
        if not self.reverse:
            return super().activity(t)
        late = (np.asarray(t) - self.t0) / (self.t1 - self.t0) > 0.5
        return np.where(late, ACT["stand"], ACT["lie"]).astype(np.int64)


def _blend(a: np.ndarray, b: np.ndarray, w: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    w = w[:, None]
    d = b - a
    h = P["heading"]
    d[:, h] = np.angle(np.exp(1j * d[:, h]))  # shortest way round
    out = a + w * d
    if mask is not None:
        out[:, ~mask] = b[:, ~mask]
    return out


class Timeline:
    """Consecutive motion segments of one person covering [0, inf)."""

    def __init__(self, segments: Sequence[Segment]):
        if not segments:
            raise ValueError("a timeline needs at least one segment")
        self.segments = list(segments)
        self.segments[0].t0 = min(self.segments[0].t0, 0.0)
        self.starts = np.array([s.t0 for s in self.segments])

    def _index(self, t: np.ndarray) -> np.ndarray:
        return np.clip(np.searchsorted(self.starts, t, side="right") - 1, 0, len(self.segments) - 1)

    def _seg_params(self, i: int, t: np.ndarray) -> np.ndarray:
        seg = self.segments[i]
        q = seg.params(t)
        if i > 0 and seg.blend_in > 0:
            u = (t - seg.t0) / seg.blend_in
            b = u < 1.0
            if b.any():
                prev = self._seg_params(i - 1, np.full(int(b.sum()), self.segments[i - 1].t1))
                q[b] = _blend(prev, q[b], smoothstep(u[b]), seg.blend_params)
        return q

    def params(self, t: np.ndarray) -> np.ndarray:
        t = np.atleast_1d(np.asarray(t, np.float64))
        idx = self._index(t)
        out = np.empty((len(t), N_PARAMS))
        for i in np.unique(idx):
            m = idx == i
            out[m] = self._seg_params(int(i), t[m])
        return out

    def activity(self, t: np.ndarray) -> np.ndarray:
        t = np.atleast_1d(np.asarray(t, np.float64))
        idx = self._index(t)
        out = np.empty(len(t), np.int64)
        for i in np.unique(idx):
            m = idx == i
            out[m] = self.segments[int(i)].activity(t[m])
        return out

    def fall_intervals(self) -> list[tuple[float, float]]:
        return [(s.t0, s.t1) for s in self.segments if isinstance(s, FallSegment)]

    def falling(self, t_lo: np.ndarray, t_hi: np.ndarray) -> np.ndarray:
        """Whether [t_lo, t_hi] overlaps a fall, per element."""
        t_lo, t_hi = np.atleast_1d(t_lo), np.atleast_1d(t_hi)
        out = np.zeros(len(t_lo), bool)
        for a, b in self.fall_intervals():
            out |= (t_lo < b) & (t_hi >= a)
        return out
