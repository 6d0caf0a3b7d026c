"""Scripted actions (what a person does, in order) and their compilation into a motion Timeline.

    [Walk(to=(4.0, 3.0)), Stand(duration=2.0), Fall(direction="forward"), Lie()]

Rules: an action without `duration`/`until` runs to the end of the scene when it is last (2 s
otherwise); `until` is an absolute scene time. After Fall or LieDown the person is lying; an upright
action that follows inserts a GetUp first. Walk runs at `speed` and takes as long as the distance needs.
After the last action the person keeps standing (or lying).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from wdp.csi.simulator.body import N_PARAMS, P
from wdp.csi.simulator.motion import (
    FALL_TILT,
    FallSegment,
    LieDownSegment,
    LieSegment,
    Segment,
    SitSegment,
    StandSegment,
    Timeline,
    WalkSegment,
    WaveSegment,
)

DEFAULT_ACTION_S = 2.0
GET_UP_S = 2.0
MIN_SEGMENT_S = 1e-3


@dataclass(frozen=True)
class Stand:
    duration: float | None = None
    until: float | None = None
    heading: float | None = None  # radians; None keeps the current heading
    breath_bpm: float | None = None  # breathing chest motion (None: none beyond postural sway)
    breath_amp_m: float = 0.005


@dataclass(frozen=True)
class Sit:
    duration: float | None = None
    until: float | None = None
    breath_bpm: float | None = None
    breath_amp_m: float = 0.005


@dataclass(frozen=True)
class Wave:
    duration: float | None = None
    until: float | None = None
    arm: str = "right"
    hz: float = 2.0


@dataclass(frozen=True)
class Walk:
    to: tuple[float, float]
    speed: float = 1.2


@dataclass(frozen=True)
class Fall:
    direction: str = "forward"  # forward, backward, left, right (relative to the heading)
    duration: float = 0.7


@dataclass(frozen=True)
class LieDown:
    direction: str = "backward"
    duration: float = 2.5


@dataclass(frozen=True)
class Lie:
    duration: float | None = None
    until: float | None = None
    breath_bpm: float | None = None  # None: the default 15 bpm, 4 mm
    breath_amp_m: float = 0.005


@dataclass(frozen=True)
class GetUp:
    duration: float = GET_UP_S


Action = Stand | Sit | Wave | Walk | Fall | LieDown | Lie | GetUp


def compile_script(
    actions: Sequence[Action], start: tuple[float, float], heading: float, rng: np.random.Generator
) -> Timeline:
    """Turn actions into a Timeline starting at t=0 at `start` facing `heading` (radians)."""
    segs: list[Segment] = []
    t = 0.0
    x, y = float(start[0]), float(start[1])
    lying: str | None = None  # fall/lie direction while lying

    def span(a: Stand | Sit | Wave | Lie, last: bool) -> float:
        if a.until is not None:
            return max(a.until - t, 0.0)
        if a.duration is not None:
            return max(a.duration, 0.0)
        return math.inf if last else DEFAULT_ACTION_S

    def add(seg: Segment) -> None:
        nonlocal t
        if seg.t1 - seg.t0 < MIN_SEGMENT_S:
            return
        segs.append(seg)
        t = seg.t1

    def get_up() -> None:
        nonlocal lying
        assert lying is not None
        add(
            LieDownSegment(
                t,
                t + GET_UP_S,
                x,
                y,
                heading,
                direction=lying,
                reverse=True,
                blend_in=0.0,
                activity_name="lie",
            )
        )
        lying = None

    sway = dict(
        sway_phase=float(rng.uniform(0, 2 * np.pi)),
        sway_hz=float(rng.uniform(0.2, 0.35)),
        sway_amp=float(rng.uniform(0.008, 0.015)),
    )
    for i, a in enumerate(actions):
        last = i == len(actions) - 1
        if isinstance(a, Stand | Sit | Wave | Walk) and lying is not None:
            get_up()
        if isinstance(a, Stand):
            if a.heading is not None:
                heading = float(a.heading)
            add(StandSegment(t, t + span(a, last), x, y, heading, **sway, **_breath(a, sway)))
        elif isinstance(a, Sit):
            add(
                SitSegment(
                    t, t + span(a, last), x, y, heading, blend_in=1.0, **{**sway, "sway_amp": 0.005}, **_breath(a, sway)
                )
            )
        elif isinstance(a, Wave):
            add(WaveSegment(t, t + span(a, last), x, y, heading, arm=a.arm, wave_hz=a.hz, **sway))
        elif isinstance(a, Walk):
            tx, ty = float(a.to[0]), float(a.to[1])
            dist = math.hypot(tx - x, ty - y)
            if dist < 1e-6 or a.speed <= 0:
                continue
            heading = math.atan2(ty - y, tx - x)
            prev = segs[-1] if segs else None
            kw: dict[str, object] = {"gait_phase": float(rng.uniform())}
            if isinstance(prev, WalkSegment):  # keep the stride going, only turn
                kw["gait_phase"] = prev.phase_at(prev.t1)
                mask = np.zeros(N_PARAMS, bool)
                mask[P["heading"]] = True
                kw["blend_params"] = mask
            add(WalkSegment(t, t + dist / a.speed, x, y, heading, x1=tx, y1=ty, speed=a.speed, **kw))
            x, y = tx, ty
        elif isinstance(a, Fall):
            if lying is not None:
                continue
            _check_direction(a.direction)
            add(FallSegment(t, t + max(a.duration, 0.1), x, y, heading, direction=a.direction))
            lying = a.direction
        elif isinstance(a, LieDown):
            if lying is not None:
                continue
            _check_direction(a.direction)
            add(LieDownSegment(t, t + max(a.duration, 0.3), x, y, heading, direction=a.direction))
            lying = a.direction
        elif isinstance(a, Lie):
            if lying is None:
                add(LieDownSegment(t, t + 2.5, x, y, heading, direction="backward"))
                lying = "backward"
            add(
                LieSegment(
                    t,
                    t + span(a, last),
                    x,
                    y,
                    heading,
                    direction=lying,
                    breath_phase=float(rng.uniform(0, 2 * np.pi)),
                    **_lie_breath(a),
                )
            )
        elif isinstance(a, GetUp):
            if lying is not None:
                add(
                    LieDownSegment(
                        t,
                        t + max(a.duration, 0.3),
                        x,
                        y,
                        heading,
                        direction=lying,
                        reverse=True,
                        blend_in=0.0,
                    )
                )
                lying = None
        else:
            raise TypeError(f"not an action: {a!r}")
        if math.isinf(t):
            break
    if not math.isinf(t):  # hold the final posture
        if lying is not None:
            segs.append(LieSegment(t, math.inf, x, y, heading, direction=lying))
        else:
            segs.append(StandSegment(t, math.inf, x, y, heading, **sway))
    return Timeline(segs)


def _breath(a: Stand | Sit, sway: dict[str, float]) -> dict[str, float]:
    """Breathing settings of an upright segment; none unless the action asks (existing scripts unchanged).
    The phase reuses the sway phase so no random number is drawn."""
    if a.breath_bpm is None:
        return {}
    return {"breath_hz": a.breath_bpm / 60.0, "breath_amp": a.breath_amp_m, "breath_phase": sway["sway_phase"]}


def _lie_breath(a: Lie) -> dict[str, float]:
    if a.breath_bpm is None:
        return {}
    return {"breath_hz": a.breath_bpm / 60.0, "breath_amp": a.breath_amp_m}


def _check_direction(direction: str) -> None:
    if direction not in FALL_TILT:
        raise ValueError(f"direction must be one of {sorted(FALL_TILT)}, not {direction!r}")
