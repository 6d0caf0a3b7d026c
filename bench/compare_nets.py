"""Is net A better than net B on the same test windows, or is the gap noise? A paired bootstrap.

Both exports (directories with model_card.json + model.ts/model.onnx, as `python -m wdp.train` writes them
under `<run>/export`) predict every window of one dataset split; the script decodes them as the engine and the
training module do (the card's decode settings) and computes COCO keypoint AP, AP50, PCK@0.2 and the centre
error of the most confident person. It then resamples the windows with replacement (the same resample for
both nets, so scene difficulty cancels) and reports, for each metric, A - B with a 95 % percentile interval
and the share of resamples in which A is better.

Baseline named in the output: net B (e.g. the paper's net) on the same windows.

Usage:
  PYTHONPATH=python python bench/compare_nets.py A_EXPORT B_EXPORT [--split DATASET/test] [--resamples 1000]
The split defaults to `<card A training.data.root>/test`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from wdp.csi.sanitize_numpy import sanitize_phase
from wdp.model.decode import DECODE_PARAMS, decode_poses
from wdp.model.exported import load_exported
from wdp.model.metrics import ImagePoses, image_poses, keypoint_ap, localization_errors, pose_errors
from wdp.train.datamodule import read_split


def sanitize_kwargs(card: dict) -> dict:
    spec = dict(card["input_spec"]["sanitization"])
    return {k: spec[k] for k in ("method", "subcarrier_index", "tx_difference") if k in spec}


def predict(export_dir: Path, arrays: dict[str, np.ndarray], batch: int = 64) -> tuple[list[ImagePoses], dict]:
    """Every window of the split through the export, decoded with its card's settings -> (images, card)."""
    net = load_exported(export_dir)
    card = net.card
    phase = sanitize_phase(arrays["phase"], axis=-3, **sanitize_kwargs(card))
    images: list[ImagePoses] = []
    for s in range(0, len(phase), batch):
        rows = slice(s, s + batch)
        images += decoded_images(net(arrays["amplitude"][rows], phase[rows]), card, arrays, rows)
    return images, card


def decoded_images(out: dict, card: dict, arrays: dict[str, np.ndarray], rows: slice) -> list[ImagePoses]:
    """One batch of net outputs decoded with the card's settings, paired with the windows' true people."""
    decode = {k: card["decode"][k] for k in DECODE_PARAMS if k in card["decode"]}
    dec = decode_poses(out["center"], out["offsets"], out["keypoint_heatmaps"], **decode)
    return image_poses(
        dec.keypoints.numpy(),
        dec.scores.numpy(),
        arrays["keypoints"][rows],
        arrays["person_area"][rows],
        arrays["boxes"][rows],
        arrays["num_people"][rows],
    )


def metrics(images: list[ImagePoses], min_score: float) -> dict[str, float]:
    ap = keypoint_ap(images)
    pose = pose_errors(images, min_score=min_score)
    loc = localization_errors(images)
    return {
        "ap": ap["ap"],
        "ap50": ap["ap50"],
        "pck@0.2": pose["pck@0.2"],
        "center_error": loc["center_error"],
    }


HIGHER_IS_BETTER = {"ap": True, "ap50": True, "pck@0.2": True, "center_error": False}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", type=Path, help="export directory of net A")
    ap.add_argument("b", type=Path, help="export directory of net B (the baseline)")
    ap.add_argument("--split", type=Path, default=None, help="dataset split directory (default: A's test split)")
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--min-score", type=float, default=0.3, help="PCK counts people scoring >= this (training's)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    card_a = json.loads((args.a / "model_card.json").read_text())
    split = args.split or Path(card_a["training"]["data"]["root"]) / "test"
    arrays, _ = read_split(split)
    names = {}
    preds = {}
    for key, path in (("A", args.a), ("B", args.b)):
        preds[key], card = predict(path, arrays)
        names[key] = card["net"]["name"]
    full = {k: metrics(v, args.min_score) for k, v in preds.items()}

    rng = np.random.default_rng(args.seed)
    n = len(preds["A"])
    diffs: dict[str, list[float]] = {m: [] for m in HIGHER_IS_BETTER}
    for _ in range(args.resamples):
        idx = rng.integers(0, n, n)
        ma = metrics([preds["A"][i] for i in idx], args.min_score)
        mb = metrics([preds["B"][i] for i in idx], args.min_score)
        for m in diffs:
            diffs[m].append(ma[m] - mb[m])

    report = {"split": str(split), "windows": n, "resamples": args.resamples, "A": names["A"], "B": names["B"]}
    for m, d in diffs.items():
        d_arr = np.asarray(d)
        better = d_arr > 0 if HIGHER_IS_BETTER[m] else d_arr < 0
        lo, hi = np.percentile(d_arr, [2.5, 97.5])
        report[m] = {
            "A": full["A"][m],
            "B": full["B"][m],
            "A_minus_B": full["A"][m] - full["B"][m],
            "ci95": [float(lo), float(hi)],
            "p_A_better": float(better.mean()),
        }
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(
        f"{split}: {n} windows, {args.resamples} paired resamples; A = {names['A']} ({args.a}), "
        f"baseline B = {names['B']} ({args.b})"
    )
    print(f"{'metric':<14}{'A':>10}{'B':>10}{'A - B':>10}  {'95% interval of A - B':>26}  A better in")
    for m in diffs:
        r = report[m]
        lo, hi = r["ci95"]
        print(
            f"{m:<14}{r['A']:>10.4f}{r['B']:>10.4f}{r['A_minus_B']:>+10.4f}  [{lo:>+11.4f}, {hi:>+11.4f}]"
            f"  {100 * r['p_A_better']:5.1f} % of resamples"
        )


if __name__ == "__main__":
    main()
