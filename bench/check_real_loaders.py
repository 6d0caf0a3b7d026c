"""Load every files.tsv recording present under a root with wdp.data.real and print per-dataset totals.

Usage: python bench/check_real_loaders.py [ROOT]   (ROOT defaults to $WDP_REAL_DATA, else the fixtures)

Prints per dataset: files listed (recordings, no metadata), present under ROOT, loaded with frames, empty
(with their note), failures (with the error), kept frames, dropped frames per rule, frames reordered into time
order, median/min/max rate_hz and the seconds spent. Not a timed test: a check that the loaders read every
development file. Reserved parts (D2 environment B, D5 HAU1) are not in files.tsv and are never read.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from wdp.data.real import DATASETS, DROP_KINDS, default_root, load_recording, read_files_tsv


def main(root: Path) -> int:
    rows = [r for r in read_files_tsv() if r.is_recording]
    listed: dict[str, int] = defaultdict(int)
    present: dict[str, list] = defaultdict(list)
    for r in rows:
        listed[r.dataset] += 1
        if (root / r.dataset / r.path).is_file():
            present[r.dataset].append(r)
    print(f"root: {root}")
    failures_total = 0
    for ds in DATASETS:
        t0 = time.perf_counter()
        loaded = frames = reordered = nonmonotonic = 0
        dropped = dict.fromkeys(DROP_KINDS, 0)
        rates: list[float] = []
        empty: list[str] = []
        failures: list[str] = []
        for row in present[ds]:
            try:
                rec = load_recording(root, row)
            except Exception as exc:  # a check script: report every failure, keep going
                failures.append(f"{row.path}: {type(exc).__name__}: {exc}")
                continue
            if len(rec) == 0:
                empty.append(f"{row.path} ({rec.note})")
                continue
            loaded += 1
            frames += len(rec)
            reordered += rec.reordered
            nonmonotonic += int(np.any(np.diff(rec.times) < 0))
            for k, v in rec.dropped.items():
                dropped[k] += v
            rates.append(rec.rate_hz)
        dt = time.perf_counter() - t0
        r = np.array(rates) if rates else np.array([np.nan])
        print(
            f"{ds}: listed {listed[ds]}  present {len(present[ds])}  loaded {loaded}  empty {len(empty)}  "
            f"failed {len(failures)}  frames {frames}  dropped {dropped}  reordered {reordered}  "
            f"non-monotonic {nonmonotonic}  rate_hz median {np.nanmedian(r):.2f} "
            f"[{np.nanmin(r):.2f}, {np.nanmax(r):.2f}]  {dt:.1f}s"
        )
        for e in empty:
            print(f"  empty: {e}")
        for f in failures:
            print(f"  FAILED: {f}")
        failures_total += len(failures)
    return 1 if failures_total else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else default_root()))
