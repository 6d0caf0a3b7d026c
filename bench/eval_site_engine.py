"""How well the served model places people, end to end: the real engine (windowing, inference, tracking) on
simulator scenes of the model's room with people and seeds it never trained on.

Scenes: ``random_scene(room, scene_seed(split, base, i), n_people=people)`` (default: room 101, the test
split's seeds and people, one person, the shipped model: what `wdp serve` plays by default). For every
published frame whose true person is in view (at least 5 visible keypoints) the script records whether a
tracked person was reported, the distance from the reported floor position to the true pelvis (metres), and
the distance between the reported and the true skeleton centres in the 256 x 256 camera image (pixels).
Baseline: the same distances for a constant guess, the mean true position over the evaluated frames (the
best constant in hindsight). ``--detector ground_truth`` runs the chain on the true keypoints (upper bound).

Usage: PYTHONPATH=python python bench/eval_site_engine.py [--scenes 12] [--room 101] [--model default]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from wdp import schemas
from wdp import schemas_sample as S
from wdp.csi.simulator import SceneSimulator, random_scene, scene_seed
from wdp.csi.sources import SimulatorSource
from wdp.engine import Engine, EngineConfig, ModelRunner, Topic

MIN_VISIBLE = 5


def run_scene(scene, detector: str, runner) -> tuple[list[schemas.PoseFrame], float]:
    src = SimulatorSource(routers=1, scene=scene, loop=False, realtime=False)
    engine = Engine([src], model=runner, config=EngineConfig(detector=detector))
    sub = engine.bus.subscribe({Topic.POSE}, maxsize=1_000_000)
    with engine:
        if not engine.wait(600):
            raise RuntimeError("scene did not finish")
    frames = [m.payload for m in sub.drain() if isinstance(m.payload, schemas.PoseFrame)]
    return frames, engine.grid_base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=int, default=12)
    ap.add_argument("--room", type=int, default=101)
    ap.add_argument("--split", default="test", choices=["train", "val", "test"])
    ap.add_argument("--base-seed", type=int, default=0)
    ap.add_argument("--people", type=int, default=1)
    ap.add_argument("--duration", type=float, default=12.0)
    ap.add_argument("--model", default="default")
    ap.add_argument("--detector", choices=["model", "ground_truth"], default="model")
    args = ap.parse_args()

    runner = ModelRunner.load(args.model, threads=1) if args.detector == "model" else None
    rows = []  # (detected, floor err m, image err px, true floor xy, true image centre, reported xy, centre)
    t0 = time.perf_counter()
    from wdp.csi.simulator import SimConfig

    cfg = SimConfig(scene_duration_s=args.duration)
    for i in range(args.scenes):
        scene = random_scene(args.room, scene_seed(args.split, args.base_seed, i), cfg, n_people=args.people)
        sim = SceneSimulator(scene, cfg)
        cam = scene.room.camera
        frames, base = run_scene(scene, args.detector, runner)
        for f in frames:
            t = f.timestamp - base
            if not 0.0 <= t <= scene.duration:
                continue
            truths = []
            for pb in sim.poses(np.array([t])):
                joints = pb.joints[0, : S.N_KEYPOINTS]
                xy, z = cam.project(joints)
                vis = cam.in_image(xy, z)
                if vis.sum() >= MIN_VISIBLE:
                    truths.append((joints[11:13, :2].mean(axis=0), xy[vis].mean(axis=0)))
            if not truths:
                continue
            best = None
            for p in f.persons:
                kp = np.asarray(p.keypoints, np.float64)
                centre = kp[:, :2].mean(axis=0) * S.IMAGE_W
                for floor_xy, img_c in truths:
                    e_img = float(np.hypot(*(centre - img_c)))
                    e_floor = float(np.hypot(*(np.asarray(p.position) - floor_xy))) if p.position else np.nan
                    if best is None or e_img < best[1]:
                        best = (e_floor, e_img)
            floor_xy, img_c = truths[0]
            rows.append((best is not None, *(best or (np.nan, np.nan)), *floor_xy, *img_c))
    wall = time.perf_counter() - t0
    a = np.array(rows, dtype=np.float64)
    if not len(a):
        raise SystemExit("no frame with a person in view")
    det = a[:, 0] > 0
    floor_c = a[:, 3:5].mean(axis=0)
    img_c = a[:, 5:7].mean(axis=0)
    const_floor = np.hypot(*(a[:, 3:5] - floor_c).T)
    const_img = np.hypot(*(a[:, 5:7] - img_c).T)
    name = args.model if args.detector == "model" else "ground_truth"
    print(f"room {args.room}, {args.split} seeds, {args.scenes} scenes x {args.duration:.0f} s, detector {name}")
    print(f"frames with a person in view: {len(a)}; with a reported person: {det.mean():.1%}")
    print("| | median | mean |")
    print("|---|---|---|")
    for label, v in (
        ("floor position error (m)", a[det, 1]),
        ("constant guess, floor (m)", const_floor),
        ("image centre error (px of 256)", a[det, 2]),
        ("constant guess, image (px)", const_img),
    ):
        v = v[np.isfinite(v)]
        print(f"| {label} | {np.median(v):.2f} | {v.mean():.2f} |" if len(v) else f"| {label} | - | - |")
    print(f"({wall:.0f} s)")


if __name__ == "__main__":
    main()
