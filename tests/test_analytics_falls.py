"""Fall detection on synthetic trajectories through the whole pipeline (tracker smoothing included)."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from wdp import schemas
from wdp.analytics import AnalyticsPipeline, FallConfig, PipelineConfig
from wdp.analytics.synthetic import (
    DEFAULT_CAMERA,
    STANDING,
    Posture,
    falling,
    lying_down,
    sitting_down,
    walking,
)
from wdp.tracking import Detections

CAM = DEFAULT_CAMERA


def counter_ids(prefix: str):
    c = itertools.count()
    return lambda: f"{prefix}-{next(c)}"


SPOTS = [(3.0, 2.2), (4.5, 5.0)]
HEADINGS = [0.0, np.pi / 2, np.pi, 1.5 * np.pi]


def run(postures, dt=0.01, noise_px=0.0, seed=0, config=None):
    pipe = AnalyticsPipeline(config, projector=CAM.floor_projector(0.07), event_ids=counter_ids("e"))
    rng = np.random.default_rng(seed)
    falls = []
    for k, p in enumerate(postures):
        kp = CAM.keypoints(p)
        kp[:, :2] += rng.normal(0, noise_px, (17, 2)) if noise_px else 0.0
        _, events = pipe.update(k * dt, Detections.from_arrays(kp[None]))
        falls += [e for e in events if isinstance(e, schemas.PersonFallDetected)]
    return falls


def fall_sequence(base, direction, duration=0.7, dt=0.01, before=1.0, after=2.0):
    n = int(round(duration / dt))
    return (
        [base] * int(before / dt)
        + [falling(base, (i + 1) / n, direction) for i in range(n)]
        + [falling(base, 1.0, direction)] * int(after / dt)
    )


@pytest.mark.parametrize("spot", SPOTS)
@pytest.mark.parametrize("heading", HEADINGS)
@pytest.mark.parametrize("direction", [1.0, -1.0])
def test_fall_is_detected(spot, heading, direction):
    base = replace(STANDING, x=spot[0], y=spot[1], heading=heading)
    (fall,) = run(fall_sequence(base, direction))
    assert fall.track_id == 1
    assert 1.7 <= fall.timestamp <= 2.4  # the fall ends at 1.7 s; lying must hold 0.4 s
    assert fall.severity in ("medium", "high") and 0.5 <= fall.confidence <= 1.0
    assert fall.position is not None and np.hypot(fall.position[0] - spot[0], fall.position[1] - spot[1]) < 0.3
    assert fall.alert_triggered  # no zones: a fall always alerts


@pytest.mark.parametrize("heading", [0.0, np.pi / 2])
def test_sideways_fall_and_fall_while_walking(heading):
    base = Posture(x=2.5, y=3.0, heading=heading)
    seq = (
        [base] * 100
        + [replace(falling(base, u / 60), tilt=0.0, tilt_side=np.pi / 2 * (u / 60) ** 2) for u in range(1, 61)]
        + [replace(falling(base, 1.0), tilt=0.0, tilt_side=np.pi / 2)] * 150
    )
    assert len(run(seq)) == 1
    walk = [walking(base, k * 0.01, speed=1.0) for k in range(150)]
    last = walk[-1]
    seq = walk + [falling(last, (i + 1) / 60) for i in range(60)] + [falling(last, 1.0)] * 150
    assert len(run(seq)) == 1


@pytest.mark.parametrize("spot", SPOTS)
@pytest.mark.parametrize("heading", HEADINGS)
@pytest.mark.parametrize("direction", [1.0, -1.0])
def test_lying_down_slowly_is_not_a_fall(spot, heading, direction):
    base = replace(STANDING, x=spot[0], y=spot[1], heading=heading)
    seq = [base] * 100 + [lying_down(base, u, direction) for u in np.linspace(0, 1, 250)]
    seq += [lying_down(base, 1.0, direction)] * 200
    assert run(seq) == []


@pytest.mark.parametrize("heading", HEADINGS)
@pytest.mark.parametrize("duration", [1.5, 0.4])  # slowly, and dropping onto the chair
def test_sitting_down_is_not_a_fall(heading, duration):
    base = Posture(x=3.0, y=3.0, heading=heading)
    n = int(duration / 0.01)
    seq = [base] * 100 + [sitting_down(base, (i + 1) / n) for i in range(n)] + [sitting_down(base, 1.0)] * 200
    assert run(seq) == []


def test_long_lie_escalates_to_critical_at_any_frame_rate():
    dt = 1 / 30  # timestamps, not frame counts, drive every timer
    base = Posture(x=3.0, y=3.0, heading=0.5)
    seq = fall_sequence(base, 1.0, dt=dt, after=32.0)
    falls = run(seq, dt=dt, config=PipelineConfig(falls=FallConfig(long_lie_s=30.0)))
    assert [f.severity for f in falls][1:] == ["critical"] and len(falls) == 2
    assert falls[1].timestamp - falls[0].timestamp == pytest.approx(30.0, abs=dt)


def test_recovery_rearms_and_a_second_fall_is_reported():
    base = Posture(x=3.0, y=3.0, heading=0.0)
    seq = fall_sequence(base, 1.0, after=2.0)
    seq += [lying_down(base, 1.0 - u, 1.0) for u in np.linspace(0, 1, 200)]  # get up over 2 s
    seq += [base] * 150
    seq += fall_sequence(base, -1.0, before=0.0)
    falls = run(seq)
    assert len(falls) == 2 and falls[1].timestamp > falls[0].timestamp + 4.0


def test_noisy_keypoints():
    base = Posture(x=3.0, y=3.5, heading=2.0)
    for seed in range(3):
        assert len(run(fall_sequence(base, 1.0), noise_px=1.5, seed=seed)) == 1
    calm = [walking(Posture(x=1.5, y=3.5), k * 0.01, speed=0.5) for k in range(600)]
    assert run(calm, noise_px=1.5) == []


def test_severity_follows_drop_speed():
    base = Posture(x=3.0, y=3.0, heading=0.0)
    (fast,) = run(fall_sequence(base, 1.0, duration=0.5))
    (slow,) = run(fall_sequence(base, 1.0, duration=1.3))
    assert fast.severity == "high" and slow.severity == "medium"
    assert fast.confidence > slow.confidence


def test_fall_in_zone_follows_zone_alert_setting():
    base = Posture(x=3.0, y=3.0, heading=0.0)
    mat = schemas.Zone(
        id="mat",
        name="Mat",
        polygon=[(1.0, 1.0), (5.5, 1.0), (5.5, 5.5), (1.0, 5.5)],
        alerts=schemas.ZoneAlertSettings(fall=False),
    )
    pipe = AnalyticsPipeline(projector=CAM.floor_projector(0.07), zones=[mat])
    falls = []
    for k, p in enumerate(fall_sequence(base, -1.0)):
        _, ev = pipe.update(k * 0.01, Detections.from_arrays(CAM.keypoints(p)[None]))
        falls += [e for e in ev if isinstance(e, schemas.PersonFallDetected)]
    (f,) = falls
    assert f.zone_id == "mat" and f.alert_triggered is False
