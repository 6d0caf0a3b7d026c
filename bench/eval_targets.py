"""Issue 16's target table, per model (hardware preset): met or missed, and by how much.

Rows, for every model named (default: the shipped ones, ``default`` = Intel 5300 3x3, ``esp32``, ``nexmon``):

1. Room 101 test split (the model's own run: the card's data settings regenerate its test windows, people and
   scene seeds never trained on): PCK@0.2 >= 0.30, AP >= 0.05, centre error <= 10 px (bench/compare_nets.py's
   scoring: the card's sanitisation and decoding, COCO OKS AP, PCK of people scoring >= 0.3).
2. Unseen rooms 80-99 (test-split seeds, one person, the model's hardware preset): PCK@0.2 above the
   constant-pose baseline (the mean true pose of those windows, best constant in hindsight), and end to end
   through the engine (bench/eval_site_engine.py --unseen) the median floor error <= 0.5 m against the constant
   guess. These nets read no empty-room reference: a net that does (experiment=rooms_ref) cannot run through
   the engine and is scored by bench/eval_room_inputs.py.
3. Falls through the engine in room 101 (bench/eval_falls_engine.py --detector model --room 101 --people 1):
   recall >= 0.7 at precision >= 0.9; run with --falls-scenes N (0 = not run, it is the slowest row).

Usage: PYTHONPATH=python python bench/eval_targets.py [--model default --model esp32 --model nexmon]
       [--windows 512] [--scenes 12] [--falls-scenes 0] [--data-dir data/sim/targets] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling bench scripts

from compare_nets import metrics, predict  # noqa: E402
from eval_site_engine import evaluate  # noqa: E402

from wdp.data import write_dataset  # noqa: E402
from wdp.engine import ModelRunner  # noqa: E402
from wdp.engine.models import resolve_model  # noqa: E402
from wdp.model.metrics import image_poses, pose_errors  # noqa: E402
from wdp.train.datamodule import dataset_key, people_probs, read_split  # noqa: E402

TARGETS = {  # metric: (target, higher is better)
    "pck@0.2": (0.30, True),
    "ap": (0.05, True),
    "center_error": (10.0, False),
    "unseen_floor_median": (0.5, False),
    "fall_recall": (0.7, True),
    "fall_precision": (0.9, True),
}


def verdict(name: str, value: float | None, target: float | None = None) -> str:
    if value is None:
        return "not run"
    if not np.isfinite(value):
        return "MISSED (nothing detected)"
    t, higher = TARGETS[name]
    t = t if target is None else target
    ok = value >= t if higher else value <= t
    gap = abs(value - t)
    return ("met" if ok else "MISSED") + f" ({'+' if ok else '-'}{gap:.3g})"


def split_dir(root: Path, name: str, split: str, n: int, seed: int, sim: dict, rooms) -> Path:
    out = root / name / split
    if not (out / "meta.json").is_file():
        write_dataset(out, split, n, seed, sim, rooms=rooms, progress=False)
    return out


def constant_pose_pck(arrays: dict[str, np.ndarray]) -> float:
    """PCK@0.2 of one constant detection per window: the mean visible true pose over the windows."""
    kp = arrays["keypoints"]
    n = arrays["num_people"]
    real = np.arange(kp.shape[1])[None, :] < n[:, None]
    vis = (kp[..., 2] > 0) & real[..., None]
    mean = np.stack([np.where(vis, kp[..., d], 0).sum((0, 1)) / np.maximum(vis.sum((0, 1)), 1) for d in (0, 1)], -1)
    dt = np.zeros((len(kp), 1, 17, 3))
    dt[:, 0, :, :2] = mean
    dt[:, 0, :, 2] = 1.0
    images = image_poses(dt, np.ones((len(kp), 1)), kp, arrays["person_area"], arrays["boxes"], n)
    return pose_errors(images, min_score=0.0)["pck@0.2"]


def falls(model: str, scenes: int) -> dict[str, float] | None:
    if scenes <= 0:
        return None
    cmd = [sys.executable, str(Path(__file__).with_name("eval_falls_engine.py")), "--detector", "model"]
    cmd += ["--model", model, "--room", "101", "--people", "1", "--scenes", str(scenes)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    res: dict[str, float] = {}
    for line in out.splitlines():  # "  all falls   TP   FP   FN  precision  recall" (eval_falls_engine)
        words = line.split()
        if words[:2] == ["all", "falls"] and len(words) == 7:
            res["fall_precision"], res["fall_recall"] = float(words[5]), float(words[6])
    res["output"] = out  # type: ignore[assignment]
    return res


def evaluate_model(model: str, args: argparse.Namespace) -> dict:
    path = resolve_model(model)
    runner = ModelRunner.load(path, threads=1)
    card = runner.model.card
    hw = runner.spec.hardware or "intel5300"
    data = card["training"]["data"]
    sim = dict(data["sim_config"])
    row: dict = {"model": model, "hardware": hw, "input": list(runner.spec.shape)}
    t0 = time.perf_counter()
    # 1. the run's own test split, regenerated from the card (test seeds = data seed + 2)
    rooms = (data.get("rooms") or {}).get("test")
    site = split_dir(
        args.data_dir,
        f"site-{hw}-{data['seed']}-{dataset_key(sim=sim)}",  # the simulator settings name it (window, rate)
        "test",
        int(data["sizes"]["test"]),
        int(data["seed"]) + 2,
        sim,
        rooms,
    )
    arrays, _ = read_split(site)
    images, _ = predict(path, arrays)
    row["room101"] = metrics(images, 0.3)
    # 2. unseen rooms 80-99: windows and the engine
    unseen_sim = {**sim, "people_probs": people_probs(1)}
    unseen = split_dir(
        args.data_dir, f"unseen-{hw}-{dataset_key(sim=unseen_sim)}", "test", args.windows, 2, unseen_sim, None
    )
    arrays, _ = read_split(unseen)
    images, _ = predict(path, arrays)
    row["unseen"] = {**metrics(images, 0.3), "pck_const": constant_pose_pck(arrays)}
    eng = evaluate(runner, "model", list(range(80, 100)), args.scenes, "test", 0, 1, 12.0, hw)
    row["unseen"].update(floor_median=eng["floor_median"], floor_const_median=eng["floor_const_median"])
    row["falls"] = falls(str(path), args.falls_scenes)
    row["wall_s"] = time.perf_counter() - t0
    return row


def print_table(rows: list[dict]) -> None:
    print(
        "| hardware (model) | input (W,S,R,T) | room 101 PCK@0.2 >= 0.30 | AP >= 0.05 | centre error <= 10 px |", end=""
    )
    print(
        " unseen rooms PCK@0.2 > constant pose | unseen floor error <= 0.5 m (constant) | falls R >= 0.7 @ P >= 0.9 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        a, u, f = r["room101"], r["unseen"], r["falls"]
        fl = (
            f"R {f.get('fall_recall', float('nan')):.2f} {verdict('fall_recall', f.get('fall_recall'))}, "
            f"P {f.get('fall_precision', float('nan')):.2f} {verdict('fall_precision', f.get('fall_precision'))}"
            if f
            else "not run"
        )
        print(
            f"| {r['hardware']} ({r['model']}) | {'x'.join(map(str, r['input']))} "
            f"| {a['pck@0.2']:.3f} {verdict('pck@0.2', a['pck@0.2'])} "
            f"| {a['ap']:.4f} {verdict('ap', a['ap'])} "
            f"| {a['center_error']:.1f} {verdict('center_error', a['center_error'])} "
            f"| {u['pck@0.2']:.3f} vs {u['pck_const']:.3f} {verdict('pck@0.2', u['pck@0.2'], u['pck_const'])} "
            f"| {u['floor_median']:.2f} ({u['floor_const_median']:.2f}) "
            f"{verdict('unseen_floor_median', u['floor_median'])} | {fl} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", help="model name or export directory (repeatable)")
    ap.add_argument("--windows", type=int, default=512, help="unseen-room windows (rooms 80-99, test seeds)")
    ap.add_argument("--scenes", type=int, default=12, help="unseen-room engine scenes of 12 s")
    ap.add_argument("--falls-scenes", type=int, default=0, help="room-101 fall scenes of 20 s (0: not run)")
    ap.add_argument("--data-dir", type=Path, default=Path("data/sim/targets"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = [evaluate_model(m, args) for m in (args.model or ["default", "esp32", "nexmon"])]
    if args.json:
        print(json.dumps(rows, default=str))
        return
    print_table(rows)
    for r in rows:
        if r["falls"]:
            print(f"\n{r['model']} falls:\n{r['falls']['output']}")


if __name__ == "__main__":
    main()
