"""Parse throughput of wdp's native parsers vs CSIKit on the largest shared sample of each format.

CSIKit needs numpy<1.24, so it runs in a bench-only venv (bench/.venv-csikit, created on first use).
Usage: python bench/bench_parse.py [--reps 5] [--shared ../shared/data/csi]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from wdp.csi import read_capture

HERE = Path(__file__).resolve().parent
CSIKIT_VENV = HERE / ".venv-csikit"
FOLDERS = {"intel5300": "intel5300", "nexmon_pcap": "nexmon", "esp32": "esp32", "atheros": "atheros",
           "picoscenes": "picoscenes"}


def csikit_python() -> Path:
    py = CSIKIT_VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(CSIKIT_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "csikit==2.5", "numpy==1.23.5"], check=True)
    return py


def csikit_input(fmt: str, path: Path, tmp: Path) -> Path:
    """CSIKit raises on the whole ESP32 file for one corrupt line: give it the same file minus bad lines."""
    if fmt != "esp32":
        return path
    good = []
    for line in path.read_text().splitlines():
        if line.startswith("CSI_DATA"):
            values = line.rsplit("[", 1)[-1].strip(" ]").split()
            if len(values) % 2:
                continue
        good.append(line)
    out = tmp / path.name
    out.write_text("\n".join(good) + "\n")
    return out


def time_wdp(fmt: str, path: Path, reps: int) -> tuple[float, int]:
    best = float("inf")
    frames = 0
    for _ in range(reps):
        t0 = time.perf_counter()
        cap = read_capture(path, fmt)
        best = min(best, time.perf_counter() - t0)
        frames = len(cap)
    return best, frames


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared" / "data" / "csi")
    args = ap.parse_args()
    py = csikit_python()
    rows = []
    with tempfile.TemporaryDirectory() as tmpd:
        cases = []
        for fmt, folder in FOLDERS.items():
            files = sorted((args.shared / folder).iterdir(), key=lambda p: p.stat().st_size)
            cases.append((fmt, files[-1]))
        # The largest PicoScenes sample is an SDR capture whose bytes are mostly baseband samples that neither
        # reader decodes (74 frames in 1.35 MB), so also time the largest NIC capture of that format.
        cases.append(("picoscenes", args.shared / "picoscenes" / "picoscenes_ax200_csikit_example.csi"))
        for fmt, path in cases:
            try:
                ours_s, ours_n = time_wdp(fmt, path, args.reps)
            except Exception as e:  # a parser that is missing must not hide the others' figures
                print(f"{fmt}: wdp failed: {e}")
                continue
            res = subprocess.run([str(py), str(HERE / "_csikit_timer.py"), fmt,
                                  str(csikit_input(fmt, path, Path(tmpd))), str(args.reps)],
                                 capture_output=True, text=True)
            if res.returncode != 0:
                kit = {"seconds": float("nan"), "frames": 0, "error": res.stderr.strip().splitlines()[-1]}
            else:
                kit = json.loads(res.stdout.strip().splitlines()[-1])  # CSIKit prints warnings to stdout
            mb = path.stat().st_size / 1e6
            rows.append((fmt, path.name, mb, ours_n, ours_s, kit["frames"], kit["seconds"],
                         kit["seconds"] / ours_s))
    print(f"{'format':<12} {'file':<52} {'MB':>6} {'wdp fr':>7} {'wdp ms':>8} {'wdp MB/s':>9} "
          f"{'CSIKit fr':>9} {'CSIKit ms':>10} {'ratio':>7}")
    for fmt, name, mb, n, s, kn, ks, ratio in rows:
        print(f"{fmt:<12} {name:<52} {mb:6.2f} {n:7d} {s * 1e3:8.2f} {mb / s:9.1f} {kn:9d} {ks * 1e3:10.1f} "
              f"{ratio:6.1f}x")
    print("ratio = CSIKit time / wdp time (best of --reps runs each, same machine, same run); target >= 20x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
