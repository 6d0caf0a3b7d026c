"""Survey: the share of amplitude samples the Sanitizer's causal Hampel filter replaces on real captures, for
a grid of threshold floors (hampel_min_rel, hampel_min_abs). The figures behind SanitizeConfig's defaults.

Every CSI file under the data folder is read with wdp.csi.read_capture and split into streams by (shape,
core, spatial stream): Nexmon writes one record per core/stream, and interleaving them would make a time
series that alternates between channels. The filter sees the Sanitizer's amplitude (|h| as float32, no
subcarrier interpolation); window median and MAD come from bench/numpy_sanitize.py. A sample counts as
replaced when |x - med| > max(n_sigma * 1.4826 * MAD, min_rel * |med|, min_abs), as in the filter.

    PYTHONPATH=python python bench/hampel_floor_survey.py [DATA_DIR] [--k 3] [--sigmas 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy_sanitize as ref  # noqa: E402

from wdp.csi import SanitizeConfig, read_capture  # noqa: E402

CSI_SUFFIXES = {".dat", ".pcap", ".csv", ".csi"}
DEFAULTS = (SanitizeConfig().hampel_min_rel, SanitizeConfig().hampel_min_abs)
FLOORS = [(0.0, 0.0), (0.1, 0.0), (0.25, 0.0), (0.5, 0.0), (0.0, 3.0), (0.1, 3.0), (0.2, 3.0), DEFAULTS,
          (0.3, 3.0), (0.25, 2.0), (0.25, 5.0)]


def default_data_dir() -> str:
    """shared/data/csi beside the repository (or a checkout above it), as tests/conftest.py finds it."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "shared" / "data" / "csi").is_dir():
            return str(parent / "shared" / "data" / "csi")
    return "shared/data/csi"


def streams(path: Path) -> list[np.ndarray]:
    """Amplitude (n, S, R, T) float32 of each stream of the capture, frames in file order."""
    cap = read_capture(path)
    by_stream: dict[tuple, list[np.ndarray]] = {}
    for i, a in enumerate(cap.csi):
        if a.size:
            key = (a.shape, int(cap.meta["core"][i]), int(cap.meta["spatial_stream"][i]))
            by_stream.setdefault(key, []).append(a)
    return [np.abs(np.stack(f).astype(np.complex128)).astype(np.float32) for f in by_stream.values()]


def replaced_counts(amp: np.ndarray, k: int, n_sigma: float) -> np.ndarray:
    med, mad = ref.NumpySanitizer(amp.shape[1:], hampel_k=k).window_median_mad(amp)
    dev = np.abs(amp.astype(np.float64) - med)
    sigma = (n_sigma * ref.MAD_SCALE) * mad
    return np.array([(dev > np.maximum(np.maximum(sigma, rel * np.abs(med)), floor)).sum()
                     for rel, floor in FLOORS])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=default_data_dir())
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--sigmas", type=float, default=3.0)
    args = ap.parse_args()
    files = sorted(p for p in Path(args.data).rglob("*") if p.suffix in CSI_SUFFIXES)
    if not files:
        sys.exit(f"no CSI files under {args.data}")
    print(f"causal Hampel k={args.k}, {args.sigmas} sigma: % of amplitude samples replaced for floors "
          f"(min_rel, min_abs); defaults {DEFAULTS}")
    head = " ".join(f"{f'{r:g},{a:g}':>8}" for r, a in FLOORS)
    print(f"{'file':<50} {'samples':>8} {head}")
    total, counts, shares = 0, np.zeros(len(FLOORS)), []
    for p in files:
        amps = streams(p)
        n = sum(a.size for a in amps)
        c = sum(replaced_counts(a, args.k, args.sigmas) for a in amps)
        total, counts = total + n, counts + c
        shares.append(c / n)
        print(f"{p.name[:50]:<50} {n:>8} " + " ".join(f"{100 * v:>8.2f}" for v in c / n))
    print(f"{'all samples':<50} {total:>8} " + " ".join(f"{100 * v:>8.2f}" for v in counts / total))
    print(f"{'median file':<50} {'':>8} " + " ".join(f"{100 * v:>8.2f}" for v in np.median(shares, axis=0)))


if __name__ == "__main__":
    main()
