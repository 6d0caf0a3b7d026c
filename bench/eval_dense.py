"""DensePose quality of the shipped model: part IoU and dpAP (GPS) on its room's test split, beside the paper.

Protocol: the model card names what trained the model (``training.data``: simulator settings, room 101 for
train/val/test, seed); this script regenerates the card's TEST split (the test seed, people the model never
trained on; the simulator is deterministic) into a cache directory unless ``--split`` names a split
directory, sanitizes phase as the card says and runs the exported model (ONNX/TorchScript, as served).

Metrics (wdp.model.metrics): part IoU (mean over the 24 parts, pixel confusion of the whole map: what training
reports as part_miou) and body IoU; dpAP over GPS 0.5:0.95 (COCO DensePose's GPS with its per-part kappa;
the SMPL geodesic replaced by the documented surface-distance stand-in), counting the detections that pass
the card's person threshold (the ones the engine publishes), each with its share of the window's part map
(wdp.model.dense.split_by_person; the labels are cut per person the same way). The paper ("DensePose From
WiFi", same-layout protocol, real data) reports dpAP·GPS 45.3.

Usage: PYTHONPATH=python python bench/eval_dense.py [--model default] [--split DIR] [--cache DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from wdp.engine.models import resolve_model
from wdp.model.decode import decode_densepose, decode_poses
from wdp.model.dense import people_maps
from wdp.model.exported import load_exported
from wdp.model.metrics import DenseAP, PartConfusion

PAPER_DP_AP = 45.3  # "DensePose From WiFi", dpAP·GPS, same layout, real data


def card_test_split(card: dict, cache: Path) -> Path:
    """The card's test split, generated once into ``cache`` (same settings as training's datamodule)."""
    from wdp.data import write_dataset

    data = card["training"]["data"]
    sim = dict(data.get("sim_config") or {})
    seed = int(data["seed"]) + 2  # CsiDataModule: train seed, val seed + 1, test seed + 2
    n = int(data["sizes"]["test"])
    rooms = (data.get("rooms") or {}).get("test")
    key = hashlib.sha256(json.dumps([sim, seed, n, rooms], sort_keys=True).encode()).hexdigest()[:10]
    out = cache / f"test-{key}"
    if not (out / "meta.json").is_file():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".test-", dir=cache))
        write_dataset(tmp, "test", n, seed, sim, shard_size=256, rooms=rooms, progress=False)
        tmp.rename(out)
    return out


def evaluate(model_spec: str, split: Path | None, cache: Path, batch: int = 64) -> dict[str, float]:
    from wdp.train.datamodule import CsiWindows

    path = resolve_model(model_spec)
    net = load_exported(path)
    card = net.card
    split = split or card_test_split(card, cache)
    sanitize = {k: v for k, v in (card["training"]["data"].get("sanitize") or {}).items() if k != "axis"}
    data = CsiWindows(split, sanitize)
    dec = {k: v for k, v in card.get("decode", {}).items() if k in ("max_people", "refine_radius", "refine_threshold")}
    min_score = float(card.get("decode", {}).get("min_score", 0.3))
    conf, dense = PartConfusion(), DenseAP()
    a = data.arrays
    n = len(data)
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        sl = slice(i, min(i + batch, n))
        out = net(a["amplitude"][sl], a["phase"][sl])
        with torch.no_grad():
            decoded = decode_poses(out["center"], out["offsets"], out["keypoint_heatmaps"], **dec)
            parts, uv = decode_densepose(out["part_logits"], out["uv"])
        parts, uv = parts.numpy(), uv.numpy()
        gt_parts, gt_uv = a["part_mask"][sl].numpy(), a["uv"][sl].numpy()
        conf.add(parts, gt_parts, uv, gt_uv)
        kp, bx, sc = decoded.keypoints.numpy(), decoded.boxes.numpy(), decoded.scores.numpy()
        gkp, gbx, gn = a["keypoints"][sl].numpy(), a["boxes"][sl].numpy(), a["num_people"][sl].numpy()
        for j in range(len(parts)):
            keep = sc[j] >= min_score
            dt = people_maps(parts[j], uv[j], kp[j][keep], bx[j][keep])
            gt = people_maps(gt_parts[j], gt_uv[j], gkp[j, : gn[j]], gbx[j, : gn[j]])
            dense.add(dt, sc[j][keep], gt)
    return {
        **conf.compute(),
        **dense.compute(),
        "windows": float(n),
        "people": float(a["num_people"].sum()),
        "seconds": time.perf_counter() - t0,
        "min_score": min_score,
        "split": str(split),  # type: ignore[dict-item]
        "model": str(path),  # type: ignore[dict-item]
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--split", type=Path, default=None, help="a split directory (default: the card's test split)")
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("WDP_SIM_CACHE", "data/sim")) / "eval-dense")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()
    torch.set_num_threads(1)
    r = evaluate(args.model, args.split, args.cache)
    if args.json:
        print(json.dumps(r, indent=1))
        return
    print(f"model {r['model']}\nsplit {r['split']}: {int(r['windows'])} windows, {int(r['people'])} people")
    print(f"part IoU (mean over parts) {r['part_miou']:.3f}   body IoU {r['body_iou']:.3f}", end="   ")
    print(f"UV error {r['uv_error']:.3f}")
    ours = 100 * r["dp_ap"]
    verdict = "met" if ours >= PAPER_DP_AP else f"missed by {PAPER_DP_AP - ours:.1f}"
    print(f"dpAP (GPS) {ours:.1f}   paper {PAPER_DP_AP:.1f}   {verdict}")
    print(f"dpAP50 {100 * r['dp_ap50']:.1f}   dpAP75 {100 * r['dp_ap75']:.1f}")
    print(f"dpAR (GPS) {100 * r['dp_ar']:.1f}; mean best GPS per true person {r['dp_gps_mean']:.3f} (AP counts >= 0.5)")
    print(f"person threshold {r['min_score']:.4f} (model card); {r['seconds']:.1f} s")


if __name__ == "__main__":
    main()
