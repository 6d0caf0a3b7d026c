"""Simulator throughput: training windows (CSI + labels) generated per second, one process.

    PYTHONPATH=python python bench/bench_simulator.py [--scenes 40] [--people 1 2 4]

Baseline: the 200 windows/s target for 2 people (a 20k-sample training set in under two minutes).
Also reports the stream (packets per wall second) and the share of CPU time spent on labels. Rates per
CPU second of this process are the single-core figures when other processes share the machine.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from wdp.csi.simulator import SceneSimulator, SimConfig, random_scene
from wdp.csi.simulator.splits import SPLIT_ROOMS

TARGET_WINDOWS_PER_S = 200.0  # for 2 people


def bench_windows(n_people: int, scenes: int, config: SimConfig) -> tuple[float, float, float]:
    """(windows per wall second, windows per CPU second of this process, share of labels in CPU time).
    CPU time is the one-core figure when the machine is shared."""
    rooms = list(SPLIT_ROOMS["train"])
    n_windows = 0
    wall = cpu = t_label = 0.0
    for i in range(scenes):
        w0, c0 = time.perf_counter(), time.process_time()
        sim = SceneSimulator(random_scene(rooms[i % len(rooms)], 1000 + i, config, n_people=n_people), config)
        batch = sim.sample()
        wall += time.perf_counter() - w0
        cpu += time.process_time() - c0
        n_windows += len(batch["t"])
        c0 = time.process_time()  # labels alone, re-rendered for a few windows (not counted above)
        for t in batch["t"][:4]:
            sim.labels(float(t))
        t_label += (time.process_time() - c0) * len(batch["t"]) / 4
    return n_windows / wall, n_windows / cpu, t_label / cpu


def bench_stream(n_people: int, seconds: float, config: SimConfig) -> float:
    sim = SceneSimulator(random_scene(5, 77, config, n_people=n_people), config)
    t0 = time.perf_counter()
    n = sum(1 for _ in sim.stream(0.0, seconds))
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=int, default=40)
    ap.add_argument("--people", type=int, nargs="+", default=[0, 1, 2, 4])
    args = ap.parse_args()
    cfg = SimConfig()
    SceneSimulator(random_scene(0, 0, cfg, n_people=1), cfg).sample()  # warm caches and imports
    print(
        f"wdp simulator bench: {args.scenes} scenes x {cfg.windows_per_scene} windows, window {cfg.window} "
        f"x {cfg.n_sub} sub x {cfg.n_rx}x{cfg.n_tx}, numpy {np.__version__}, one process"
    )
    cols = ("people", "win/s wall", "win/s cpu", "ms/win cpu", "labels %", "vs target", "stream pkt/s")
    print(" ".join(f"{c:>{w}}" for c, w in zip(cols, (6, 10, 10, 10, 9, 10, 13), strict=True)))
    for n in args.people:
        wall, cpu, label_share = bench_windows(n, args.scenes, cfg)
        stream = bench_stream(n, 5.0, cfg)
        ratio = cpu / TARGET_WINDOWS_PER_S
        share = 100 * label_share
        ms = 1000 / cpu
        print(f"{n:>6} {wall:>10.0f} {cpu:>10.0f} {ms:>10.2f} {share:>8.0f}% {ratio:>9.1f}x {stream:>13.0f}")
    base = f"{TARGET_WINDOWS_PER_S:.0f} windows/s with 2 people"
    print(f"baseline: {base} on one core (ratio 'vs target' = windows per CPU second / baseline)")


if __name__ == "__main__":
    main()
