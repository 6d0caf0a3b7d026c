"""Regenerate csikit_nexmon_atheros.json: CSIKit 2.5's readings of the sample captures as digests.

Run with the CSIKit reference venv (numpy < 1.24), not the project venv:
    /work/csikit-venv/bin/python tests/refs/make_csikit_refs.py /work/shared/data/csi \
        > tests/refs/csikit_nexmon_atheros.json
Only digests, shapes and a few values are stored, never the capture data itself. Arrays are put in
wdp's layout (subcarriers, rx, tx) as complex64 before hashing; Atheros values get CSIKit's +1 offset
removed (the original read_csi.c has none).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from CSIKit.reader.readers.read_atheros import ATHBeamformReader
from CSIKit.reader.readers.read_pcap import NEXBeamformReader


def digest(arrays: list[np.ndarray]) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype=np.complex64).tobytes())
    return h.hexdigest()


def summary(name: str, arrays: list[np.ndarray], timestamps: list[float], **extra: object) -> dict:
    shapes: dict[str, int] = {}
    for a in arrays:
        key = "x".join(map(str, a.shape))
        shapes[key] = shapes.get(key, 0) + 1
    first = arrays[0].reshape(-1)[:3] if arrays[0].ndim < 3 else arrays[0][:3, 0, 0]
    return {
        "file": name,
        "frames": len(arrays),
        "shapes": shapes,
        "sha256_complex64": digest(arrays),
        "first3": [[float(v.real), float(v.imag)] for v in first],
        "timestamp_first": float(timestamps[0]),
        "timestamp_last": float(timestamps[-1]),
        **extra,
    }


def nexmon(root: Path, name: str) -> dict:
    data = NEXBeamformReader(fill_skipped_frames=False).read_file(str(root / name), scaled=False)
    arrays = []
    for f in data.frames:
        m = np.asarray(f.csi_matrix)
        if m.ndim == 2:  # ungrouped record: (sub, 1)
            m = m[:, :, None]
        arrays.append(m.transpose(0, 2, 1))  # CSIKit (sub, stream, core) -> wdp (sub, core, stream)
    return summary(name, arrays, data.timestamps, skipped_frames=int(data.skipped_frames))


def atheros(root: Path, name: str) -> dict:
    data = ATHBeamformReader().read_file(str(root / name), scaled=False)
    # CSIKit (sub, nc, nr) -> wdp (sub, nr, nc), without CSIKit's +1 on both parts.
    arrays = [np.asarray(f.csi_matrix).transpose(0, 2, 1) - (1 + 1j) for f in data.frames]
    ts = [f.timestamp * 1e-6 for f in data.frames]
    return summary(name, arrays, ts)


def main() -> None:
    root = Path(sys.argv[1])
    out = {
        "csikit": "2.5",
        "numpy": np.__version__,
        "nexmon": [
            nexmon(root, f"nexmon/{n}")
            for n in ("nexmon_bcm4339_80mhz_csikit_example.pcap", "nexmon_bcm43455c0_40mhz_pcap-to-csv_sample1.pcap")
        ],
        "atheros": [
            atheros(root, f"atheros/{n}")
            for n in ("atheros_ath9k_bpir2_los_98pkts.dat", "atheros_csiread_ath_csi_1_3rx2tx.dat")
        ],
    }
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
