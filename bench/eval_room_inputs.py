"""Issue 16 item 3's rows: a net with room inputs (experiment=rooms_ref) in rooms it never saw.

The net reads each window with its room's empty-room reference and geometry (wdp.data.room_context) and has a
floor-position head. Test windows: the unseen rooms 80-99, test-split seeds and people, one person, regenerated
from the model card's data settings (``--windows``). Figures:

* floor position (the net's floor head, metres, receiver's frame): median error against the best constant in
  hindsight (the mean true position of the evaluated windows), the constant learned on the validation
  rooms 64-79, and each test room's own mean position in hindsight (bench/eval_site_engine.py's constant,
  which no model can know); target <= 0.5 m;
* image pose through the dense heads (the card's decoding): PCK@0.2 against the constant-pose baseline (the
  mean true pose of the windows, best in hindsight), AP, centre error;
* person count / presence accuracy of the count head.

The engine does not serve such a model (it has no empty-room reference or geometry to feed it), so this is
measured on windows, not end to end.

Usage: PYTHONPATH=python python bench/eval_room_inputs.py EXPORT_DIR [--windows 1024] [--data-dir data/sim/targets]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling bench scripts

from compare_nets import decoded_images, metrics, sanitize_kwargs  # noqa: E402
from eval_targets import constant_pose_pck, split_dir  # noqa: E402

from wdp.csi.sanitize_numpy import sanitize_phase  # noqa: E402
from wdp.data.room_context import RoomContext  # noqa: E402
from wdp.model.exported import load_exported  # noqa: E402
from wdp.model.spec import ROOM_INPUT_NAMES  # noqa: E402
from wdp.train.datamodule import people_probs, read_split  # noqa: E402


def windows(root: Path, split: str, n: int, seed: int, sim: dict, sanitize: dict) -> dict[str, np.ndarray]:
    """A regenerated split of one-person windows with its room inputs and floor labels."""
    out = split_dir(root, f"rooms-ref-{split}-{n}", split, n, seed, sim, None)
    arrays, meta = read_split(out, with_meta=True)
    ctx = RoomContext(meta["config"], sanitize).arrays(arrays["room_id"], arrays.pop("seed"), arrays.pop("t"))
    arrays.update(ctx)
    arrays["phase"] = sanitize_phase(arrays["phase"], axis=-3, **sanitize)
    return arrays


def predict(net, arrays: dict[str, np.ndarray], batch: int = 64) -> tuple[list, np.ndarray, np.ndarray]:
    images, floor, counts = [], [], []
    for s in range(0, len(arrays["amplitude"]), batch):
        rows = slice(s, s + batch)
        out = net(*(arrays[k][rows] for k in ("amplitude", "phase", *ROOM_INPUT_NAMES)))
        images += decoded_images(out, net.card, arrays, rows)
        floor.append(out["floor_xy"].numpy())
        counts.append(out["person_count"].argmax(-1).numpy())
    return images, np.concatenate(floor), np.concatenate(counts)


def evaluate(export: Path, n: int, data_dir: Path) -> dict:
    net = load_exported(export)
    if not net.room_inputs:
        raise SystemExit(f"{export} is not a net with room inputs (experiment=rooms_ref)")
    data = net.card["training"]["data"]
    sim = {**dict(data["sim_config"]), "people_probs": people_probs(1)}
    sanitize = sanitize_kwargs(net.card)
    test = windows(data_dir, "test", n, int(data["seed"]) + 2, sim, sanitize)
    val = windows(data_dir, "val", 512, int(data["seed"]) + 1, sim, sanitize)
    images, floor, counts = predict(net, test)
    has = test["num_people"] > 0
    true = test["floor_xy"][:, 0][has]
    err = np.linalg.norm(floor[has] - true, axis=1)
    const_hind = np.linalg.norm(true - true.mean(axis=0), axis=1)
    val_true = val["floor_xy"][:, 0][val["num_people"] > 0]
    const_val = np.linalg.norm(true - val_true.mean(axis=0), axis=1)
    rooms = test["room_id"][has]  # each room's own mean position, in hindsight (no model can know it)
    room_mean = np.stack([true[rooms == r].mean(axis=0) for r in rooms])
    const_room = np.linalg.norm(true - room_mean, axis=1)
    return {
        "model": str(export),
        "windows": int(len(has)),
        "with_person": int(has.sum()),
        "floor_median_m": float(np.median(err)),
        "floor_mean_m": float(err.mean()),
        "floor_const_hindsight_median_m": float(np.median(const_hind)),
        "floor_const_val_median_m": float(np.median(const_val)),
        "floor_room_mean_hindsight_median_m": float(np.median(const_room)),
        **{f"image_{k}": v for k, v in metrics(images, 0.3).items()},
        "image_pck_const": constant_pose_pck(test),
        "count_accuracy": float((counts == test["num_people"]).mean()),
        "presence_accuracy": float(((counts > 0) == has).mean()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("export", type=Path, help="export directory of a rooms_ref run")
    ap.add_argument("--windows", type=int, default=1024, help="test windows in the unseen rooms 80-99")
    ap.add_argument("--data-dir", type=Path, default=Path("data/sim/targets"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    r = evaluate(args.export, args.windows, args.data_dir)
    if args.json:
        print(json.dumps(r))
        return
    ok = "met" if r["floor_median_m"] <= 0.5 else f"MISSED (-{r['floor_median_m'] - 0.5:.2f})"
    beat = "above" if r["image_pck@0.2"] > r["image_pck_const"] else "NOT above"
    print(f"unseen rooms 80-99, {r['windows']} windows ({r['with_person']} with the person), {r['model']}")
    print(
        f"floor error median {r['floor_median_m']:.2f} m (mean {r['floor_mean_m']:.2f}) <= 0.5 m: {ok}; constant "
        f"guess {r['floor_const_hindsight_median_m']:.2f} m (best in hindsight), "
        f"{r['floor_const_val_median_m']:.2f} m (validation rooms' mean); each room's own mean in hindsight "
        f"{r['floor_room_mean_hindsight_median_m']:.2f} m"
    )
    print(
        f"image: PCK@0.2 {r['image_pck@0.2']:.3f} vs constant pose {r['image_pck_const']:.3f} ({beat}), "
        f"AP {r['image_ap']:.4f}, centre error {r['image_center_error']:.1f} px"
    )
    print(f"count accuracy {r['count_accuracy']:.3f}, presence accuracy {r['presence_accuracy']:.3f}")


if __name__ == "__main__":
    main()
