"""Per-frame latency of the realtime step with 4 people at 100 Hz: Tracker.update alone and the whole
AnalyticsPipeline.update (tracking + floor positions + zones + activity + falls).

The baseline is the real-time budget: one 100 Hz window leaves 10 ms for everything downstream of the
model, so the ratio printed is the share of that budget the step takes (p50 and p99).

Scene: four stick-figure people (wdp.analytics.synthetic) walking back and forth in a room with three
zones, 2 px keypoint noise, 5 % missed detections and an occasional spurious detection; detections are
generated before timing.

Usage: PYTHONPATH=python python bench/bench_tracking.py [--seconds 60] [--people 4]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from wdp import schemas
from wdp.analytics import AnalyticsPipeline
from wdp.analytics.synthetic import DEFAULT_CAMERA, Posture, walking
from wdp.tracking import Detections, Tracker, TrackerConfig

RATE_HZ = 100.0
BUDGET_MS = 1000.0 / RATE_HZ


def make_frames(seconds: float, people: int, seed: int = 0) -> list[tuple[float, Detections]]:
    rng = np.random.default_rng(seed)
    cam = DEFAULT_CAMERA
    starts = [Posture(x=1.2 + 0.9 * i, y=2.5 + 0.8 * (i % 3), heading=0.5 * np.pi * i) for i in range(people)]
    frames = []
    for k in range(int(seconds * RATE_HZ)):
        t = k / RATE_HZ
        kps = []
        for i, p in enumerate(starts):
            period = 6.0 + i  # walk 2 m out and back
            u = (t % period) / period
            along = 2.0 * (2 * u if u < 0.5 else 2 - 2 * u)
            heading = p.heading if u < 0.5 else p.heading + np.pi
            x = p.x + along * np.cos(p.heading)
            y = p.y + along * np.sin(p.heading)
            pose = walking(Posture(x=x, y=y, heading=heading), t, speed=0.0)
            if rng.uniform() < 0.05:
                continue  # missed detection
            kps.append(cam.keypoints(pose))
        if rng.uniform() < 0.01:  # spurious detection somewhere
            kps.append(cam.keypoints(Posture(x=rng.uniform(1, 5), y=rng.uniform(2, 6))))
        kp = np.stack(kps) if kps else np.zeros((0, 17, 3))
        kp[..., :2] += rng.normal(0.0, 2.0, kp[..., :2].shape)
        frames.append((t, Detections.from_arrays(kp)))
    return frames


def zones() -> list[schemas.Zone]:
    return [
        schemas.Zone(id="desk", name="Desk", polygon=[(1.0, 2.0), (3.0, 2.0), (3.0, 4.0), (1.0, 4.0)]),
        schemas.Zone(id="door", name="Door", polygon=[(3.0, 2.0), (5.0, 2.0), (5.0, 3.5)], restricted=True),
        schemas.Zone(
            id="room", name="Room", polygon=[(0.5, 1.5), (6.0, 1.5), (6.0, 7.0), (0.5, 7.0)], max_occupancy=3
        ),
    ]


def time_steps(step, frames) -> np.ndarray:
    lat = np.empty(len(frames))
    for i, (t, det) in enumerate(frames):
        t0 = time.perf_counter()
        step(t, det)
        lat[i] = time.perf_counter() - t0
    return lat * 1e3


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--people", type=int, default=4)
    ap.add_argument("--reps", type=int, default=3, help="best of N runs (shared machines are noisy)")
    args = ap.parse_args(argv)
    frames = make_frames(args.seconds, args.people)
    n_det = np.mean([len(d) for _, d in frames])
    print(
        f"{len(frames)} frames at {RATE_HZ:.0f} Hz, {n_det:.2f} detections per frame; baseline: "
        f"{BUDGET_MS:.0f} ms real-time budget per frame"
    )
    print(f"{'step':<22} {'p50 ms':>8} {'p99 ms':>8} {'frames/s':>9} {'p50/budget':>10} {'p99/budget':>10}")
    cases = {
        "Tracker.update": lambda: Tracker(TrackerConfig(scale=256.0)).update,
        "AnalyticsPipeline": lambda: (
            AnalyticsPipeline(projector=DEFAULT_CAMERA.floor_projector(0.07), zones=zones()).update
        ),
    }
    for name, make in cases.items():
        runs = [time_steps(make(), frames) for _ in range(args.reps)]
        lat = min(runs, key=lambda r: float(np.percentile(r, 50)))
        p50, p99 = np.percentile(lat, [50, 99])
        print(
            f"{name:<22} {p50:8.3f} {p99:8.3f} {1e3 / lat.mean():9.0f} {p50 / BUDGET_MS:10.3f} "
            f"{p99 / BUDGET_MS:10.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
