"""Pose-net ceiling study (issue 16): what limits the site model — the information in the signal, the model, or
the budget? The shipped model's own training (``experiment=site``: room 101, Intel 5300, wdpnet) at one fixed
budget of 1,024 optimiser steps (32 windows each), changing one thing at a time:

  base      as shipped: receiver impairments and 8-bit I/Q quantisation on, 16,384 training windows (2 epochs)
  noquant   quantisation off, the other impairments on (2 epochs)
  noimp     impairments and quantisation all off: a clean channel (2 epochs)
  data2x    as shipped, but 32,768 distinct training windows (1 epoch: the same steps, twice the data)

The learning-rate schedule (ReduceLROnPlateau, patience 3) cannot act before epoch 4, so "base" at its second
epoch is exactly a 2-epoch run: a longer base run can stand in for it. Scored on the same 512 validation windows
of room 101 (people and scene seeds never trained on) after the budget: loss, centre error (px of 256), PCK@0.2,
AP. Each run is one `python -m wdp.train` (one thread; ~10-25 min each on this 2-core CPU).

Usage: PYTHONPATH=python python bench/study_pose_ceiling.py --out DIR [--run] [--only base,noimp]
       (without --run: the table from runs already in DIR/<name>)
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
from pathlib import Path

STEPS = 1024
RUNS: dict[str, list[str]] = {
    "base": ["trainer.max_epochs=2"],
    "noquant": ["trainer.max_epochs=2", "+data.sim.impairments={quantize:false}"],
    "noimp": ["trainer.max_epochs=2", "+data.sim.impairments={enabled:false}"],
    "data2x": ["trainer.max_epochs=1", "data.num_train=32768"],
}
LABELS = {
    "base": "as shipped (impairments + 8-bit on), 16,384 windows",
    "noquant": "8-bit quantisation off, other impairments on",
    "noimp": "impairments and quantisation all off",
    "data2x": "as shipped, 32,768 distinct windows (same steps)",
}
COLUMNS = ("val/loss", "val/center_error", "val/center_error_const", "val/pck@0.2", "val/ap")


def train(out: Path, name: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WDP_DATA_DIR": str(out / "data")}
    cmd = [sys.executable, "-m", "wdp.train", "experiment=site", f"task_name=ceil_{name}"]
    cmd += [f"hydra.run.dir={out / name}", *RUNS[name]]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)


def at_budget(run: Path) -> dict[str, float] | None:
    """The validation metrics logged when the run had taken STEPS optimiser steps (the end of that epoch)."""
    path = run / "csv" / "metrics.csv"
    if not path.is_file():
        return None
    rows = list(csv.DictReader(path.open()))
    for r in rows:
        if r.get("val/loss") and r.get("step") and int(r["step"]) + 1 == STEPS:
            return {k: float(r[k]) for k in COLUMNS if r.get(k)}
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder of the runs (DIR/<name>) and their data")
    ap.add_argument("--run", action="store_true", help="train the runs that are missing first")
    ap.add_argument("--only", default=",".join(RUNS), help="comma-separated subset of " + ",".join(RUNS))
    args = ap.parse_args()
    names = [n for n in args.only.split(",") if n]
    if args.run:
        for n in names:
            if at_budget(args.out / n) is None:
                train(args.out, n)
    print(f"| room 101, {STEPS} steps of 32 windows | val loss | centre error px (constant) | PCK@0.2 | AP |")
    print("|---|---|---|---|---|")
    for n in names:
        m = at_budget(args.out / n)
        if m is None:
            print(f"| {LABELS[n]} | not run | | | |")
            continue
        print(
            f"| {LABELS[n]} | {m['val/loss']:.3f} | {m['val/center_error']:.1f} ({m['val/center_error_const']:.1f}) "
            f"| {m['val/pck@0.2']:.4f} | {m['val/ap']:.4f} |"
        )


if __name__ == "__main__":
    main()
