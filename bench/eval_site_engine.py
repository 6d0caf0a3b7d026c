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
       [--unseen] (scene i in room 80 + i % 20) [--hardware esp32] (default: the model card's preset) [--json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from wdp import schemas
from wdp import schemas_sample as S
from wdp.csi.simulator import SceneSimulator, random_scene, scene_seed
from wdp.csi.sources import SimulatorSource
from wdp.engine import Engine, EngineConfig, ModelRunner, Topic

MIN_VISIBLE = 5


def run_scene(scene, detector: str, runner, cfg=None) -> tuple[list[schemas.PoseFrame], float]:
    src = SimulatorSource(routers=1, scene=scene, loop=False, realtime=False, config=cfg)
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
    ap.add_argument("--hardware", help="simulator hardware preset (default: the model card's, else intel5300)")
    ap.add_argument("--unseen", action="store_true", help="scene i in room 80 + i %% 20 (the unseen test rooms)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args()
    runner = ModelRunner.load(args.model, threads=1) if args.detector == "model" else None
    hardware = args.hardware or (runner.spec.hardware if runner is not None else None) or "intel5300"
    rooms = list(range(80, 100)) if args.unseen else [args.room]
    res = evaluate(
        runner, args.detector, rooms, args.scenes, args.split, args.base_seed, args.people, args.duration, hardware
    )
    if args.json:
        print(json.dumps(res))
        return
    name = args.model if args.detector == "model" else "ground_truth"
    where = "rooms 80-99" if args.unseen else f"room {args.room}"
    print(f"{where}, {args.split} seeds, {args.scenes} scenes x {args.duration:.0f} s, detector {name}, {hardware}")
    print(f"frames with a person in view: {res['frames']}; with a reported person: {res['reported']:.1%}")
    print("| | median | mean |")
    print("|---|---|---|")
    for label, key in (
        ("floor position error (m)", "floor"),
        ("constant guess, floor (m)", "floor_const"),
        ("image centre error (px of 256)", "image"),
        ("constant guess, image (px)", "image_const"),
    ):
        med, mean = res[key + "_median"], res[key + "_mean"]
        print(f"| {label} | {med:.2f} | {mean:.2f} |" if med is not None else f"| {label} | - | - |")
    print(f"({res['wall_s']:.0f} s)")


def evaluate(
    runner, detector: str, rooms, scenes: int, split: str, base_seed: int, people, duration: float, hardware: str
) -> dict:
    """Scene i in rooms[i % len(rooms)] with the split's seeds, simulated with the hardware preset; the
    distances of the reported people (and of the best constant guess) over the frames with a person in view."""
    rows = []  # (detected, floor err m, image err px, true floor xy, true image centre, reported xy, centre)
    t0 = time.perf_counter()
    from wdp.csi.simulator import SimConfig

    cfg = SimConfig.from_dict({"hardware": hardware, "scene_duration_s": duration})
    for i in range(scenes):
        scene = random_scene(rooms[i % len(rooms)], scene_seed(split, base_seed, i), cfg, n_people=people)
        sim = SceneSimulator(scene, cfg)
        cam = scene.room.camera
        frames, base = run_scene(scene, detector, runner, cfg)
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
    out: dict = {"frames": len(a), "reported": float(det.mean()), "wall_s": wall, "hardware": hardware}
    for key, v in (
        ("floor", a[det, 1]),
        ("floor_const", np.hypot(*(a[:, 3:5] - floor_c).T)),
        ("image", a[det, 2]),
        ("image_const", np.hypot(*(a[:, 5:7] - img_c).T)),
    ):
        v = v[np.isfinite(v)]
        out[key + "_median"] = float(np.median(v)) if len(v) else None
        out[key + "_mean"] = float(v.mean()) if len(v) else None
    return out


if __name__ == "__main__":
    main()
