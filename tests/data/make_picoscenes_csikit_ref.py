"""Regenerate picoscenes_csikit_ref.npz from CSIKit (run with the CSIKit venv, numpy < 1.24).

    /work/csikit-venv/bin/python tests/data/make_picoscenes_csikit_ref.py ../shared/data/csi/picoscenes

Stores, per sample file: every frame's CSIKit matrix shape, CSIKit's relative timestamps, per-frame
fingerprints (sum of real parts, of imaginary parts, of squared magnitudes) and full matrices of a few
frames (first, second, middle, last, and the first of each shape). Keys are "<stem>/<what>".
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from CSIKit.reader import PicoScenesBeamformReader


def main(folder: str) -> None:
    out: dict[str, np.ndarray] = {}
    for path in sorted(Path(folder).glob("*.csi")):
        data = PicoScenesBeamformReader().read_file(str(path), scaled=False)
        mats = [np.asarray(f.csi_matrix) for f in data.frames]
        stem = path.stem
        out[f"{stem}/shapes"] = np.array([m.shape for m in mats], dtype=np.int64)
        out[f"{stem}/timestamps"] = np.asarray(data.timestamps, dtype=np.float64)
        out[f"{stem}/fingerprint"] = np.array(
            [[m.real.sum(), m.imag.sum(), (np.abs(m) ** 2).sum()] for m in mats], dtype=np.float64
        )
        picks = {0, 1, len(mats) // 2, len(mats) - 1}
        seen: set[tuple[int, ...]] = set()
        for i, m in enumerate(mats):
            if m.shape not in seen:
                seen.add(m.shape)
                picks.add(i)
        picks_sorted = sorted(picks)
        out[f"{stem}/picked"] = np.array(picks_sorted, dtype=np.int64)
        for i in picks_sorted:
            out[f"{stem}/frame{i}"] = mats[i].astype(np.complex128)
        print(stem, len(mats), {s: sum(1 for m in mats if m.shape == s) for s in seen}, picks_sorted)
    np.savez_compressed(Path(__file__).with_name("picoscenes_csikit_ref.npz"), **out)


if __name__ == "__main__":
    main(sys.argv[1])
