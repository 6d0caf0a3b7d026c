"""Fall-detection precision / recall on simulator ground truth (wdp.csi.simulator random scenes).

Each scene's people follow random scripts (stand, walk, sit, wave, fall, lie down, get up) in a room
whose camera gives ground-truth image keypoints; those keypoints (optionally with Gaussian pixel noise
and randomly missing detections) go through the full AnalyticsPipeline at 100 Hz. A fall event counts
as a true positive when its track belongs to a person who fell (nearest ground-truth pose at the event)
and it comes between the fall's start and ``--match-window`` seconds after its end; each real fall is
matched at most once. Falls ending too close to the scene end to be confirmed, or whose person is mostly
out of the image, are not counted (and detections of them are ignored). Escalations (severity
"critical") are not separate detections.

The thresholds were set on wdp.analytics.synthetic trajectories and then adjusted on the simulator's "val"
split (rooms 64-79, scene seeds = 1 mod 3); the default "test" split (rooms 80-99, seeds = 2 mod 3)
played no part in tuning. Activity accuracy is per frame, on frames at least --steady-s from a change of
the true activity (transitions and the debounce delay are not scored).

Usage (until the simulator is merged, point --sim at a checkout's python/ folder):
    PYTHONPATH=python python bench/eval_falls.py --scenes 200 --noise 0 2 --sim /work/wt/sim/python
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np


def import_simulator(sim_path: str | None):
    """wdp.csi.simulator from this tree, or from another checkout's python/ folder (added to the
    package search paths of wdp and wdp.csi, so the rest of wdp still comes from this tree)."""
    if sim_path:
        import wdp

        root = Path(sim_path) / "wdp"
        wdp.__path__.append(str(root))  # type: ignore[attr-defined]
        import wdp.csi

        wdp.csi.__path__.append(str(root / "csi"))  # type: ignore[attr-defined]
    import wdp.csi.simulator as sim

    return sim


def camera_projector(camera, plane_height: float):
    from wdp.tracking import FloorProjector

    cx, cy = camera.center
    K = np.array([[camera.focal, 0.0, cx], [0.0, camera.focal, cy], [0.0, 0.0, 1.0]])
    R = np.asarray(camera.rotation)
    return FloorProjector.from_camera(K, R, -R @ np.asarray(camera.position), plane_height)


def run_scene(sim, scene, args, rng):
    from wdp import schemas
    from wdp.analytics import AnalyticsPipeline, PipelineConfig
    from wdp.tracking import Detections

    simulator = sim.SceneSimulator(scene)
    cam = scene.room.camera
    times = np.arange(0.0, scene.duration, 1.0 / args.rate)
    poses = simulator.poses(times)
    kps, vis = [], []
    for pb in poses:
        xy, z = cam.project(pb.joints[:, :17])
        v = cam.in_image(xy, z)
        kps.append(xy)
        vis.append(v)
    steady = [
        steady_activity(person.timeline.activity(times), times, args.steady_s) for person in scene.people
    ]
    pipe = AnalyticsPipeline(
        PipelineConfig(image_size=(cam.width, cam.height)), projector=camera_projector(cam, args.plane_height)
    )
    detections = []  # (t, track_id, person index, severity)
    act_pairs = []  # (truth activity, reported activity)
    for i, t in enumerate(times):
        rows, who = [], []
        for p in range(len(poses)):
            if vis[p][i].sum() < args.min_visible or rng.uniform() < args.drop:
                continue
            kp = np.zeros((17, 3))
            kp[:, :2] = kps[p][i] + (rng.normal(0.0, args.noise, (17, 2)) if args.noise > 0 else 0.0)
            kp[:, 2] = np.where(vis[p][i], 0.9, 0.0)
            rows.append(kp)
            who.append(p)
        det = Detections.from_arrays(np.stack(rows)) if rows else Detections.empty()
        persons, events = pipe.update(float(t), det)
        owner = {}
        for person in persons:  # the ground-truth person nearest to each published track
            kp = np.array(person.keypoints)[:, :2] * [cam.width, cam.height]
            best, best_d = None, np.inf
            for p in range(len(poses)):
                m = vis[p][i]
                if m.sum() == 0:
                    continue
                d = np.linalg.norm(kp[m] - kps[p][i][m], axis=1).mean()
                if d < best_d:
                    best, best_d = p, d
            owner[person.track_id] = best
            if best is not None and person.activity is not None:
                truth = steady[best][i]
                if truth is not None:
                    act_pairs.append((truth, person.activity))
        for e in events:
            if isinstance(e, schemas.PersonFallDetected):
                detections.append((float(t), e.track_id, owner.get(e.track_id), e.severity))
    return detections, vis, times, act_pairs


ACTIVITY_NAMES = {"stand": "standing", "walk": "walking", "sit": "sitting", "lie": "lying"}


def steady_activity(codes: np.ndarray, times: np.ndarray, margin_s: float) -> list[str | None]:
    """Per instant the truth activity in this classifier's names where it is one of them and has not
    changed for ``margin_s`` before and after (transitions and the debounce delay are not scored)."""
    from wdp import schemas_sample as S

    names = [ACTIVITY_NAMES.get(S.ACTIVITIES[int(c)]) for c in codes]
    change = np.flatnonzero(np.diff(codes) != 0) + 1
    change_t = times[change]
    out: list[str | None] = []
    for t, name in zip(times, names, strict=True):
        near = len(change_t) and np.min(np.abs(change_t - t)) < margin_s
        out.append(None if near else name)
    return out


def evaluate(sim, args) -> dict[str, float]:
    rng = np.random.default_rng(args.seed)
    rooms = list(sim.SPLIT_ROOMS[args.split])
    tp = fp = fn = skipped = 0
    severities: Counter[str] = Counter()
    latencies = []
    act: Counter[tuple[str, str]] = Counter()
    t_start = time.perf_counter()
    for k in range(args.scenes):
        seed = sim.scene_seed(args.split, args.base_seed, k)
        scene = sim.random_scene(rooms[k % len(rooms)], seed)
        detections, vis, times, act_pairs = run_scene(sim, scene, args, rng)
        act.update(act_pairs)
        falls, excluded = [], []  # (person, t0, t1)
        for p, person in enumerate(scene.people):
            for t0, t1 in person.timeline.fall_intervals():
                i1 = min(int(np.searchsorted(times, t1)), len(times) - 1)
                visible = vis[p][i1].sum() >= args.min_visible
                if t1 + args.min_tail > scene.duration or not visible:
                    excluded.append((p, t0, t1))
                else:
                    falls.append((p, t0, t1))
        skipped += len(excluded)
        matched = set()

        def near(fall: tuple[int, float, float], t: float, owner: int | None) -> bool:
            p, t0, t1 = fall
            return p == owner and t0 <= t <= t1 + args.match_window

        for t, _track, owner, severity in detections:
            if severity == "critical":
                continue
            hit = next((j for j, f in enumerate(falls) if j not in matched and near(f, t, owner)), None)
            if hit is None:
                # a detection of a fall left out of the count is neither right nor wrong
                fp += not any(near(f, t, owner) for f in excluded)
            else:
                matched.add(hit)
                tp += 1
                severities[severity] += 1
                latencies.append(t - falls[hit][2])
        fn += len(falls) - len(matched)
    elapsed = time.perf_counter() - t_start
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    act_total = sum(act.values())
    act_correct = sum(n for (a, b), n in act.items() if a == b)
    return dict(
        scenes=args.scenes,
        falls=tp + fn,
        tp=tp,
        fp=fp,
        fn=fn,
        skipped=skipped,
        precision=precision,
        recall=recall,
        latency_median_s=float(np.median(latencies)) if latencies else float("nan"),
        high=severities["high"],
        medium=severities["medium"],
        seconds=elapsed,
        activity_accuracy=act_correct / act_total if act_total else float("nan"),
        activity_confusion=dict(act),
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sim", default=None, help="python/ folder of a checkout that has wdp.csi.simulator")
    ap.add_argument("--split", default="test", choices=("train", "val", "test"))
    ap.add_argument("--scenes", type=int, default=100)
    ap.add_argument("--base-seed", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0, help="noise and dropout generator")
    ap.add_argument("--noise", type=float, nargs="+", default=[0.0], help="keypoint noise std (pixels)")
    ap.add_argument("--drop", type=float, default=0.0, help="probability a person's detection is missing")
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--plane-height", type=float, default=0.07)
    ap.add_argument("--min-visible", type=int, default=9, help="keypoints in the image to count as seen")
    ap.add_argument("--min-tail", type=float, default=1.5, help="a fall must end this long before the scene")
    ap.add_argument("--match-window", type=float, default=3.0)
    ap.add_argument("--steady-s", type=float, default=1.0, help="activity scored this far from label changes")
    ap.add_argument("--activity", action="store_true", help="also print the activity confusion counts")
    args = ap.parse_args(argv)
    sim = import_simulator(args.sim)
    print(f"split={args.split} scenes={args.scenes} base_seed={args.base_seed} drop={args.drop}")
    print(
        f"{'noise_px':>8} {'falls':>5} {'tp':>4} {'fp':>4} {'fn':>4} {'skip':>4} {'precision':>9} "
        f"{'recall':>6} {'lat_s':>5} {'act_acc':>7} {'sec':>5}"
    )
    for noise in args.noise:
        args.noise = noise
        r = evaluate(sim, args)
        print(
            f"{noise:8.1f} {r['falls']:5d} {r['tp']:4d} {r['fp']:4d} {r['fn']:4d} {r['skipped']:4d} "
            f"{r['precision']:9.3f} {r['recall']:6.3f} {r['latency_median_s']:5.2f} "
            f"{r['activity_accuracy']:7.3f} {r['seconds']:5.0f}"
        )
        if args.activity:
            for (truth, got), n in sorted(r["activity_confusion"].items()):
                print(f"    {truth:>9} -> {got:<9} {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
