"""Choose the tracker's settings on TUNING scenes only: the val split's seeds recorded by
``bench/eval_tracking.py --split val --cache FILE`` (the model's detections per frame, the truth), never the
test seeds that eval_tracking.py reports on.

1. Score calibration: every recorded detection is labelled a true person if it is the best-scoring detection
   within ``--match-px`` of a person in view (one per person); a logistic regression of that label on the
   score gives TrackerConfig.score_calibration (a, b).
2. Settings: a random search over the tracker's life-cycle settings (confirmation, coasting, NMS, second
   association, re-identification, count smoothing), each candidate replayed on the recorded detections and
   scored by ``objective`` (IDF1 + MOTA, minus penalties for missing the issue's targets).

Usage: PYTHONPATH=python python bench/tune_tracking.py /tmp/val.pkl [/tmp/val12.pkl ...] [--trials 200]
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_tracking  # noqa: E402
from eval_tracking import calibration_data, overall, pipeline_config, replay_tracker, scene_metrics  # noqa: E402


def fit_logistic(x: np.ndarray, y: np.ndarray, iters: int = 50) -> tuple[float, float]:
    """Maximum-likelihood (a, b) of P(y = 1) = sigmoid(a x + b) by Newton's method."""
    w = np.zeros(2)
    X = np.column_stack([x, np.ones_like(x)])
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(X @ w)))
        g = X.T @ (y - p)
        h = (X * (p * (1 - p))[:, None]).T @ X + 1e-9 * np.eye(2)
        step = np.linalg.solve(h, g)
        w += step
        if np.abs(step).max() < 1e-10:
            break
    return float(w[0]), float(w[1])


def evaluate(recs: list[Any], overrides: dict[str, Any], match_px: float) -> dict[str, dict[str, float]]:
    pc = pipeline_config(overrides)
    rows = [scene_metrics(r, replay_tracker(r, pc), match_px) for r in recs]
    out = {"all": overall(rows)}
    one = [r for rec, r in zip(recs, rows, strict=True) if rec.n_people == 1]
    if one:
        out["1p"] = overall(one)
    return out


def objective(m: dict[str, dict[str, float]]) -> float:
    a, one = m["all"], m.get("1p", m["all"])
    return (
        a["idf1"]
        + a["mota"]
        - 10.0 * max(0.0, a["ghost"] - 0.015)
        - 0.2 * max(0.0, a["switches_per_min"] - 0.8)
        - 10.0 * max(0.0, 0.96 - one["reported"])
    )


def describe(m: dict[str, dict[str, float]]) -> str:
    a, one = m["all"], m.get("1p", m["all"])
    return (
        f"mota {a['mota']:.3f} idf1 {a['idf1']:.3f} sw/min {a['switches_per_min']:.2f} ghost {a['ghost']:.1%}"
        f" reported(1p) {one['reported']:.1%}"
    )


SPACE: dict[str, list[Any]] = {
    "tracker.confirm_hits": [2, 3, 4, 5, 6],
    "tracker.confirm_window": [4, 6, 8, 10],
    "tracker.max_misses": [15, 30, 60, 100],
    "tracker.max_coast_s": [1.0, 2.0, 4.0, 6.0],
    "tracker.gate": [0.5, 0.75, 1.0],
    "tracker.nms_oks": [0.3, 0.5, 1.1],
    "tracker.nms_center": [0.0, 0.2, 0.3, 0.35],
    "tracker.recover_gate": [0.0, 0.75, 1.0, 1.5],
    "tracker.reid_s": [5.0, 15.0, 60.0],
    "tracker.reid_radius_m": [0.75, 1.5, 2.5],
    "tracker.count_window": [1, 5, 9, 15, 25],
    "tracker.count_quantile": [0.3, 0.4, 0.5],
    "tracker.show_coast_s": [0.25, 0.4, 0.5],
    "tracker.birth_score": [0.3, 0.5, 0.7],
}


def nested(flat: dict[str, Any]) -> dict[str, Any]:
    """{"tracker.x": v, "y": w} -> {"tracker": {"x": v}, "y": w}; what the tracker hides is never published
    (the pipeline's publish_coast_s follows show_coast_s unless given)."""
    out: dict[str, Any] = {"tracker": {}}
    if "tracker.show_coast_s" in flat and "publish_coast_s" not in flat:
        out["publish_coast_s"] = flat["tracker.show_coast_s"]
    for k, v in flat.items():
        if k.startswith("tracker."):
            out["tracker"][k.split(".", 1)[1]] = v
        else:
            out[k] = v
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cache", type=Path, nargs="+", help="recorded val-split scenes (eval_tracking.py --cache)")
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--match-px", type=float, default=48.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", default="{}", help="JSON flat settings to start from (e.g. the current best)")
    args = ap.parse_args(argv)
    sys.modules["__main__"].SceneRecord = eval_tracking.SceneRecord  # recorded by eval_tracking run as a script
    recs = [r for path in args.cache for r in pickle.loads(path.read_bytes())]
    if any(r.seed % 3 != 1 for r in recs):  # scene_seed: split code 1 = val
        raise SystemExit("tuning runs on val-split scenes only")
    x, y = calibration_data(recs, args.match_px)
    a, b = fit_logistic(x, y)
    print(f"score calibration on {len(x)} detections ({y.mean():.1%} true): a={a:.3f} b={b:.3f}")
    rng = np.random.default_rng(args.seed)
    best_flat: dict[str, Any] = {"tracker.score_calibration": [round(a, 3), round(b, 3)], **json.loads(args.start)}
    best_m = evaluate(recs, nested(best_flat), args.match_px)
    best = objective(best_m)
    print(f"start {best:.3f} {json.dumps(best_flat)}")
    print(describe(best_m))
    for trial in range(args.trials):
        cand = dict(best_flat)
        for k in rng.choice(list(SPACE), size=int(rng.integers(1, 4)), replace=False):
            cand[k] = SPACE[k][int(rng.integers(len(SPACE[k])))]
        if cand.get("tracker.confirm_hits", 3) > cand.get("tracker.confirm_window", 5):
            continue
        m = evaluate(recs, nested(cand), args.match_px)
        score = objective(m)
        if score > best:
            best, best_flat, best_m = score, cand, m
            print(f"{trial:4d} {score:.3f} {describe(m)} {json.dumps(cand)}", flush=True)
    print(json.dumps(nested(best_flat)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
