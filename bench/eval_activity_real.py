"""Activity/fall models on the real labelled recordings, every protocol, with the targets of issue 14.

    WDP_REAL_DATA=/path/to/restore python bench/eval_activity_real.py [--data har_intel5300 har_nexmon]
        [--protocols lopo cross_room] [--out DIR] [--ship] [--docs-img DIR] [--set key=value ...]

For each data group (conf/data/har_*.yaml: D1 Intel 5300, D2 nexmon environment A of
../shared/data/real/MANIFEST.md) this runs `python -m wdp.train task=activity` (wdp.train.activity) once per
protocol with targets: ActivityNet, the SenseFi-style GRU and the random forest are trained and tested on the
same folds (LOPO / leave-one-user-out / cross-room; each fold's validation files come from its training
people/rooms and pick the epoch and the fall threshold). It prints macro-F1, fall precision/recall/F1, false
falls per hour of non-fall recording, the lead over each baseline with a paired bootstrap CI over test
recordings, and every target met or MISSED. With --ship the model is also trained on all recordings of each
group (timed: target <= 30 min) and exported; the exported model's inference time per window on one thread
(target <= 2 ms) is measured on real windows: the ONNX model alone and with preprocessing (classify_window).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np


def _compose(data: str, protocol: str, out: Path, ship: bool, extra: list[str]):
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="wdp.conf", version_base="1.3"):
        return compose(
            "train",
            overrides=[
                "task=activity",
                f"data={data}",
                f"protocol='{protocol}'",  # quoted: a comma list is one string, not a sweep
                f"paths.output_dir={out}",
                f"activity.ship={str(ship).lower()}",
                *extra,
            ],
        )


def inference_timing(model_dir: Path, corpus, repeats: int = 300) -> dict[str, float]:
    """Median ms per window on one thread: the ONNX model on one ready window, and classify_window (preprocess
    of a window_s buffer of real frames + model)."""
    import torch

    from wdp.activity import ActivityClassifier, preprocess

    torch.set_num_threads(1)
    clf = ActivityClassifier.load(model_dir)
    card = clf.card
    row = corpus.rows[0]
    csi, times = corpus._csi[row.path]
    keep = times <= times[0] + card.window_s
    buf_csi, buf_t = csi[keep], times[keep]
    x = preprocess(buf_csi, buf_t, card).x[:1]
    for _ in range(20):
        clf.predict(x)
    model_ms, full_ms = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        clf.predict(x)
        model_ms.append((time.perf_counter() - t0) * 1e3)
    for _ in range(max(repeats // 3, 20)):
        t0 = time.perf_counter()
        clf.classify_window(buf_csi, buf_t)
        full_ms.append((time.perf_counter() - t0) * 1e3)
    return {
        "model_ms": float(np.median(model_ms)),
        "with_preprocess_ms": float(np.median(full_ms)),
        "frames_per_window": int(keep.sum()),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", nargs="+", default=["har_intel5300", "har_nexmon"])
    ap.add_argument("--protocols", nargs="+", default=None, help="default: every protocol with targets")
    ap.add_argument("--out", type=Path, default=Path("outputs/eval_activity_real"))
    ap.add_argument("--ship", action="store_true", help="also train on all recordings, export, time inference")
    ap.add_argument("--docs-img", type=Path, default=None, help="copy the confusion PNGs of the model here")
    ap.add_argument("--set", nargs="*", default=[], help="extra Hydra overrides, e.g. model.optim.epochs=10")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    root = os.environ.get("WDP_REAL_DATA")
    if not root or not Path(root).is_dir():
        print(
            "WDP_REAL_DATA is not set to a restore of the real labelled datasets (see "
            "../shared/data/real/MANIFEST.md, restore.sh); e.g. WDP_REAL_DATA=/work/realdata "
            "python bench/eval_activity_real.py",
            file=sys.stderr,
        )
        return 2

    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("pytorch_lightning", "lightning_fabric", "lightning"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from wdp.train.activity import train_activity

    rows, summary = [], {}
    for data in args.data:
        probe = _compose(data, "fixed", args.out / data, False, args.set)
        protocols = args.protocols or [p for p in probe.data.protocols if p in (probe.data.get("targets") or {})]
        # D2's lopo and luo are the same folds: run one of them
        if "luo" in protocols and "lopo" in protocols:
            protocols.remove("lopo")
        protocols = [p for p in protocols if p in probe.data.protocols]
        if not protocols:
            continue
        cfg = _compose(data, ",".join(protocols), args.out / data, args.ship, args.set)
        t0 = time.perf_counter()
        metrics, objects = train_activity(cfg)
        results = objects["results"]
        entry = {"results": results, "seconds": time.perf_counter() - t0, "dataset": str(cfg.data.dataset)}
        for p, s in results.items():
            for t in s["targets"]:
                rows.append((str(cfg.data.dataset), data, p, t))
            if args.docs_img:
                args.docs_img.mkdir(parents=True, exist_ok=True)
                png = Path(s["models"][str(cfg.model.compare[0])]["confusion_png"])
                shutil.copy(png, args.docs_img / png.name)
        if objects["exported"] is not None:
            timing = inference_timing(objects["exported"], objects["corpus"])
            entry["shipped"] = {
                "dir": str(objects["exported"]),
                "train_seconds": metrics["ship/train_seconds"],
                **timing,
            }
            for key in ("model_ms", "with_preprocess_ms"):
                target = {"target": f"inference_{key}_per_window", "goal": 2.0, "value": timing[key]}
                rows.append((entry["dataset"], data, "shipped", {**target, "met": timing[key] <= 2.0}))
            rows.append(
                (
                    entry["dataset"],
                    data,
                    "shipped",
                    {
                        "target": "train_minutes",
                        "goal": 30.0,
                        "value": metrics["ship/train_seconds"] / 60,
                        "met": metrics["ship/train_seconds"] <= 1800,
                    },
                )
            )
        summary[data] = entry
        print((Path(objects["report_dir"]) / "results.md").read_text())

    print("| set | protocol | target | goal | value | met |")
    print("|---|---|---|---|---|---|")
    for ds, _, p, t in rows:
        v = t["value"]
        val = "nan" if v is None or v != v else f"{v:.3f}"
        if "ci" in t:
            val += f" (95 % CI {t['ci'][0]:+.3f}..{t['ci'][1]:+.3f})"
        print(f"| {ds} | {p} | {t['target']} | {t['goal']} | {val} | {'met' if t['met'] else 'MISSED'} |")
    if args.json:
        from wdp.train.activity import _json_ready

        args.json.write_text(json.dumps(_json_ready(summary), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
