"""Fall detection precision / recall on simulator scenes the detector was never tuned on.

The fall detector (wdp.analytics.falls) was tuned on synthetic stick figures (wdp.analytics.synthetic); here
it runs inside the real engine on scenes of the physics simulator: random scenes (stand / walk / sit / wave
/ fall / deliberate lie-down / get up, 0-4 people) in the TEST-split rooms (80-99) with test-split seeds
(``scene_seed("test", base, i)``), through windowing, fusion, Kalman tracking and the activity classifier.

Detector: ``ground_truth`` (default) feeds the simulator's true keypoints, so the figures measure the
tracking and event logic alone (an upper bound for a pose model); ``--detector model --model PATH`` measures
the whole chain.

Truth: every Fall action of the scene scripts; deliberate lie-downs are negatives. Falls that begin less
than ``--window`` seconds before the scene ends are left out (their detection could fall after the end), as
are detections in that tail. A detection (severity high/medium; the "critical" long-lie escalation repeats a
fall and is not counted) is a true positive when it comes within ``--window`` seconds after a true fall
began and its floor position is within 1 m of one of the faller's joints (one detection per fall). Falls of
people out of the camera's view at the end of the fall (fewer than 5 visible keypoints) cannot be seen by a
camera-trained pose model and are reported apart ("observable"). For each missed fall the script prints what
the faller's track reported instead (activity labels), which says where the chain lost it.

Usage: PYTHONPATH=python python bench/eval_falls_engine.py [--scenes 60] [--base-seed 7] [--routers 1]
       [--detector model --model default --room 101 --people 1]   (the shipped site model in its room)
       [--hardware esp32]   (the simulator's hardware preset; default: the model card's)
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field

import numpy as np

from wdp import schemas
from wdp import schemas_sample as S
from wdp.csi.simulator import SceneSimulator, SimConfig, random_scene, scene_seed
from wdp.csi.simulator.motion import FallSegment, LieDownSegment
from wdp.csi.simulator.splits import SPLIT_ROOMS
from wdp.csi.sources import SimulatorSource
from wdp.engine import Engine, EngineConfig, ModelRunner, Topic

MATCH_M = 1.0


@dataclass
class TrueFall:
    scene: int
    person: int
    t0: float
    t1: float
    direction: str
    observable: bool
    counted: bool  # began early enough that its detection falls inside the scene
    matched: bool = False


@dataclass
class SceneRun:
    falls: list[schemas.PersonFallDetected]  # timestamps relative to the scene start
    frames: list[schemas.PoseFrame] = field(default_factory=list)


def true_falls(scene_idx: int, scene, sim: SceneSimulator, window: float) -> list[TrueFall]:
    out = []
    cam = scene.room.camera
    for p in scene.people:
        for seg in p.timeline.segments:
            if not isinstance(seg, FallSegment) or seg.t0 >= scene.duration:
                continue
            t_end = min(seg.t1 + 0.3, scene.duration - 1e-3)
            pose = sim.poses(np.array([t_end]))[p.person_id]
            xy, z = cam.project(pose.joints[0, :17])
            visible = int(cam.in_image(xy, z).sum())
            counted = seg.t0 <= scene.duration - window
            out.append(TrueFall(scene_idx, p.person_id, seg.t0, seg.t1, seg.direction, visible >= 5, counted))
    return out


def run_scene(scene, args, runner, cfg: SimConfig | None = None) -> SceneRun:
    src = SimulatorSource(routers=args.routers, scene=scene, loop=False, realtime=False, config=cfg)
    engine = Engine([src], model=runner, config=EngineConfig(detector=args.detector, hop=args.hop))
    sub = engine.bus.subscribe({Topic.EVENT, Topic.POSE}, maxsize=1_000_000)
    with engine:
        if not engine.wait(600):
            raise RuntimeError("scene did not finish")
    base = engine.grid_base
    run = SceneRun([])
    for m in sub.drain():
        p = m.payload
        if isinstance(p, schemas.PersonFallDetected):
            run.falls.append(schemas.msgspec.structs.replace(p, timestamp=p.timestamp - base))
        elif isinstance(p, schemas.PoseFrame):
            run.frames.append(schemas.msgspec.structs.replace(p, timestamp=p.timestamp - base))
    return run


def floor_distance(sim: SceneSimulator, person: int, t: float, xy) -> float:
    """Floor distance from xy to the nearest joint of the person (lying, the feet are far from the pelvis)."""
    joints = sim.poses(np.array([t]))[person].joints[0, :17, :2]
    return float(np.min(np.hypot(*(joints - np.asarray(xy)).T)))


def nearest_person(scene, sim: SceneSimulator, t: float, xy) -> tuple[int, float]:
    d = [floor_distance(sim, p.person_id, t, xy) for p in scene.people]
    k = int(np.argmin(d))
    return k, d[k]


def activity_names(timeline, t0: float, t1: float) -> str:
    names: list[str] = []
    for a in timeline.activity(np.linspace(max(t0, 0.0), t1, 9)):
        if not names or names[-1] != S.ACTIVITIES[int(a)]:
            names.append(S.ACTIVITIES[int(a)])
    return " > ".join(names)


def reported_for(run: SceneRun, scene, sim: SceneSimulator, tf: TrueFall, window: float) -> str:
    """Activities the faller's track (the one nearest the faller) published after the fall began."""
    labels: list[str] = []
    for f in run.frames:
        if not tf.t0 <= f.timestamp <= tf.t0 + window:
            continue
        near = [(floor_distance(sim, tf.person, f.timestamp, p.position), p) for p in f.persons if p.position]
        near = [x for x in near if x[0] <= MATCH_M]
        if not near:
            continue
        act = str(min(near, key=lambda x: x[0])[1].activity)
        if not labels or labels[-1] != act:
            labels.append(act)
    return " > ".join(labels) if labels else "no track near the faller"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes", type=int, default=60)
    ap.add_argument("--base-seed", type=int, default=7)
    ap.add_argument("--duration", type=float, default=20.0, help="scene length (s)")
    ap.add_argument("--routers", type=int, default=1)
    ap.add_argument("--hop", type=int, default=5, help="grid frames between windows (5: 20 pose frames/s)")
    ap.add_argument("--window", type=float, default=4.0, help="a detection counts within this long after a fall")
    ap.add_argument("--detector", choices=["ground_truth", "model"], default="ground_truth")
    ap.add_argument("--model", help="exported model (path or name) for --detector model")
    ap.add_argument("--room", type=int, action="append", help="room id (repeatable); default: test rooms 80-99")
    ap.add_argument("--people", type=int, help="people per scene (default: the simulator's 0-4 mix)")
    ap.add_argument("--hardware", help="simulator hardware preset (default: the model card's, else intel5300)")
    args = ap.parse_args()
    if args.detector == "model" and not args.model:
        raise SystemExit("--detector model needs --model")
    runner = ModelRunner.load(args.model) if args.detector == "model" else None

    hardware = args.hardware or (runner.spec.hardware if runner is not None else None) or "intel5300"
    cfg = SimConfig.from_dict({"hardware": hardware, "scene_duration_s": args.duration})
    rooms = args.room or list(SPLIT_ROOMS["test"])
    truths: list[TrueFall] = []
    tps: list[float] = []  # detection delay after the fall began
    false_alarms: list[str] = []
    misses: list[str] = []
    lie_downs = n_people = 0
    t_start = time.perf_counter()
    for i in range(args.scenes):
        scene = random_scene(rooms[i % len(rooms)], scene_seed("test", args.base_seed, i), cfg, n_people=args.people)
        sim = SceneSimulator(scene, cfg)
        n_people += len(scene.people)
        falls = true_falls(i, scene, sim, args.window)
        truths += [f for f in falls if f.counted]
        lie_downs += sum(
            1
            for p in scene.people
            for s in p.timeline.segments
            if isinstance(s, LieDownSegment) and not s.reverse and s.t0 <= scene.duration - args.window
        )
        run = run_scene(scene, args, runner, cfg)
        for ev in run.falls:
            t = ev.timestamp
            if ev.severity == "critical":
                continue
            match = next(
                (
                    tf
                    for tf in falls
                    if not tf.matched
                    and tf.t0 <= t <= tf.t0 + args.window
                    and ev.position is not None
                    and floor_distance(sim, tf.person, t, ev.position) <= MATCH_M
                ),
                None,
            )
            if match is not None:
                match.matched = True
                if match.counted:  # a fall in the scene's tail is neither counted nor a false alarm
                    tps.append(t - match.t0)
                continue
            if ev.position is None:
                false_alarms.append(f"scene {i} track {ev.track_id} at {t:.1f} s (not localised)")
                continue
            k, d = nearest_person(scene, sim, t, ev.position)
            doing = activity_names(scene.people[k].timeline, t - 3.0, t)
            false_alarms.append(f"scene {i} track {ev.track_id} at {t:.1f} s: person {k} ({d:.1f} m) {doing}")
        for tf in falls:
            if tf.counted and not tf.matched and tf.observable:
                misses.append(
                    f"scene {i} person {tf.person} at {tf.t0:.1f} s falling {tf.direction}: track "
                    f"reported {reported_for(run, scene, sim, tf, args.window)}"
                )
    elapsed = time.perf_counter() - t_start

    tp = len(tps)
    detections = tp + len(false_alarms)
    obs = [f for f in truths if f.observable]
    tp_obs = sum(1 for f in obs if f.matched)
    prec = tp / detections if detections else float("nan")
    print(
        f"fall detection, {args.scenes} simulator scenes x {args.duration:g} s ({n_people} people), "
        f"rooms {'80-99' if not args.room else ','.join(map(str, args.room))}, test-split seeds "
        f"(base {args.base_seed}), detector {args.detector}, {args.routers} router(s), "
        f"{100 / args.hop:g} frames/s, "
        f"{elapsed:.0f} s"
    )
    print(
        f"  true falls {len(truths)} (observable {len(obs)}), deliberate lie-downs (negatives) {lie_downs}, "
        f"fall detections {detections}"
    )
    print(f"  {'':<20}{'TP':>5}{'FP':>5}{'FN':>5}{'precision':>11}{'recall':>8}")
    print(
        f"  {'all falls':<20}{tp:>5}{len(false_alarms):>5}{len(truths) - tp:>5}{prec:>11.3f}"
        f"{tp / max(len(truths), 1):>8.3f}"
    )
    print(
        f"  {'observable falls':<20}{tp_obs:>5}{len(false_alarms):>5}{len(obs) - tp_obs:>5}{prec:>11.3f}"
        f"{tp_obs / max(len(obs), 1):>8.3f}"
    )
    for direction in ("forward", "backward", "left", "right"):
        fs = [f for f in obs if f.direction == direction]
        if fs:
            print(f"    recall falling {direction:<9}{sum(f.matched for f in fs):>3}/{len(fs)}")
    if tps:
        d = np.array(tps)
        print(
            f"  delay after the fall began: p50 {np.percentile(d, 50):.2f} s, "
            f"p90 {np.percentile(d, 90):.2f} s, "
            f"max {d.max():.2f} s"
        )
    for line in misses:
        print(f"  missed: {line}")
    for line in false_alarms:
        print(f"  false alarm: {line}")


if __name__ == "__main__":
    main()
