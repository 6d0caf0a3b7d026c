"""History store throughput and query latency, each printed as a ratio against a baseline run alongside it.

1. Appends: person rows/s through PoseWriter.append(PoseFrame) and PoseWriter.append_arrays, against the naive
   baseline of one parameterized INSERT per person row (``executemany``) into the same table.
   Target: >= 100k person rows/s.
2. Queries over one hour at 30 FPS (108k frames, ``--persons`` per frame) inside a database that also holds
   ``--pad-hours`` of history before and after it. Baseline: the same query functions on a database with the
   same rows appended in shuffled time order, so row-group min/max (DuckDB's zonemaps; the tables carry no
   other index) cannot prune and every query is a full scan. Target: < 50 ms for the history page.

Usage: PYTHONPATH=python python bench/bench_store.py [--append-frames 40000] [--persons 3] [--pad-hours 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np

from wdp.schemas import FloorGrid, Person, PoseFrame
from wdp.store import Store, queries

FPS = 30
T0 = 1_700_000_000.0
ROOM = (10.0, 8.0)


def person_pool(n: int, rng: np.random.Generator) -> list[Person]:
    return [
        Person(
            track_id=i + 1,
            keypoints=rng.random((17, 3)).tolist(),
            box=tuple(rng.random(4).tolist()),
            confidence=float(rng.random()),
            zone_ids=["zone_a"] if i % 2 else ["zone_a", "zone_b"],
            activity="walking",
            position=(float(rng.uniform(0, ROOM[0])), float(rng.uniform(0, ROOM[1]))),
        )
        for i in range(n)
    ]


def bench_appends(tmp: Path, n_frames: int, n_persons: int) -> None:
    rng = np.random.default_rng(0)
    pool = person_pool(64, rng)
    frames = [
        PoseFrame(frame_id=i, timestamp=T0 + i / FPS, source="simulator", router_ids=["r1"], latency_ms=9.0,
                  persons=[pool[(i + k) % len(pool)] for k in range(n_persons)])
        for i in range(n_frames)
    ]
    rows = n_frames * n_persons
    kp = rng.random((rows, 17, 3), dtype=np.float32)
    box = rng.random((rows, 4), dtype=np.float32)
    pos = rng.uniform(0, 8, (rows, 2)).astype(np.float32)
    tid = np.tile(np.arange(1, n_persons + 1, dtype=np.int32), n_frames)
    conf = rng.random(rows, dtype=np.float32)
    zone_ids = [["zone_a"] if i % 2 else ["zone_a", "zone_b"] for i in range(rows)]
    results: list[tuple[str, float, float]] = []
    for batch in (300, 3000):
        with Store(tmp / f"append{batch}.duckdb") as store:
            t, c = time.perf_counter(), time.process_time()
            with store.writer(max_frames=batch, flush_interval_s=3600) as w:
                for f in frames:
                    w.append(f)
            results.append((f"PoseWriter.append(PoseFrame), {batch} frames/flush", time.perf_counter() - t,
                            time.process_time() - c))
            stored = store.cursor().execute("SELECT count(*) FROM pose_persons").fetchone()[0]
            assert stored == rows, stored
        # columnar path: what a batched model hands over
        with Store(tmp / f"append_arrays{batch}.duckdb") as store:
            t, c = time.perf_counter(), time.process_time()
            with store.writer(max_frames=batch, flush_interval_s=3600) as w:
                for s in range(0, n_frames, batch):
                    e = min(n_frames, s + batch)
                    ps, pe = s * n_persons, e * n_persons
                    w.append_arrays(
                        frame_id=np.arange(s, e), timestamp=T0 + np.arange(s, e) / FPS,
                        n_persons=np.full(e - s, n_persons), source="simulator", track_id=tid[ps:pe],
                        confidence=conf[ps:pe], keypoints=kp[ps:pe], box=box[ps:pe], position=pos[ps:pe],
                        activity=["walking"] * (pe - ps), zone_ids=zone_ids[ps:pe], router_ids=["r1"],
                    )
            results.append((f"PoseWriter.append_arrays, {batch} frames/flush", time.perf_counter() - t,
                            time.process_time() - c))

    # baselines: one parameterized INSERT per person row, (a) all in one transaction, (b) autocommit
    def naive_rate(n: int, one_transaction: bool) -> float:
        with Store(tmp / f"naive{int(one_transaction)}.duckdb") as store:
            con = store.cursor()
            params = [
                (T0 + i / FPS, i, int(tid[i]), float(conf[i]), box[i].tolist(), float(pos[i, 0]),
                 float(pos[i, 1]), "walking", kp[i].reshape(-1).tolist())
                for i in range(n)
            ]
            t = time.perf_counter()
            if one_transaction:
                con.execute("BEGIN TRANSACTION")
            con.executemany("INSERT INTO pose_persons VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", params)
            if one_transaction:
                con.execute("COMMIT")
            return n / (time.perf_counter() - t)

    naive = naive_rate(min(rows, 2000), True)
    naive_autocommit = naive_rate(min(rows, 300), False)
    print(f"\n== appends: {n_frames} frames x {n_persons} persons = {rows} person rows, file database ==")
    print(f"{'path':58s} {'rows/s':>12s} {'vs naive':>9s} {'rows/cpu-s':>12s}")
    print(f"{'baseline: executemany, one INSERT per row, one transaction':58s} {naive:12,.0f} {1:9.1f}x")
    print(f"{'  (same, autocommit: a commit per row)':58s} {naive_autocommit:12,.0f} "
          f"{naive_autocommit / naive:9.2f}x")
    for name, dt, cpu in results:
        print(f"{name:58s} {rows / dt:12,.0f} {rows / dt / naive:9.1f}x {rows / cpu:12,.0f}")
    print("  (rows/s covers everything: struct -> numpy, frames/zones/occupancy/track upserts, commit;\n"
          "   rows/cpu-s: per second of this process's CPU time, all threads; robust to other load, blind to "
          "I/O waits)")


def fill_hours(store: Store, hours: float, n_persons: int, shuffle: bool, seed: int = 1) -> int:
    """Write ``hours`` of 30 FPS frames from T0 with tracks walking around the room."""
    rng = np.random.default_rng(seed)
    n = int(hours * 3600 * FPS)
    batch = 3000
    starts = np.arange(0, n, batch)
    if shuffle:
        # shuffle at frame granularity inside big blocks so every row group spans the whole time range
        order = rng.permutation(n)
    with store.writer(max_frames=batch, flush_interval_s=3600) as w:
        for s in starts:
            idx = order[s:s + batch] if shuffle else np.arange(s, min(n, s + batch))
            f = idx.size
            p = f * n_persons
            t = T0 + idx / FPS
            phase = t[:, None] / 60.0 + np.arange(n_persons)[None, :]
            x = (ROOM[0] / 2 + 4.5 * np.sin(phase)).reshape(-1)
            y = (ROOM[1] / 2 + 3.5 * np.cos(1.3 * phase)).reshape(-1)
            zones = [["zone_a"] if xi < 5 else [] for xi in x]
            w.append_arrays(
                frame_id=idx, timestamp=t, n_persons=np.full(f, n_persons), source="simulator",
                track_id=np.tile(np.arange(1, n_persons + 1, dtype=np.int32), f),
                confidence=rng.random(p, dtype=np.float32),
                keypoints=rng.random((p, 17, 3), dtype=np.float32),
                box=rng.random((p, 4), dtype=np.float32), position=np.stack([x, y], axis=1),
                activity=["walking"] * p, zone_ids=zones,
            )
    return n


def median_ms(fn: Callable[[], object], reps: int) -> tuple[float, float]:
    """Median wall and CPU (this process, all threads) milliseconds."""
    fn()  # warm caches the same way for both databases
    times, cpus = [], []
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return statistics.median(times) * 1e3, statistics.median(cpus) * 1e3


def bench_queries(tmp: Path, n_persons: int, pad_hours: float, reps: int) -> None:
    total_hours = 1 + 2 * pad_hours
    dbs = {}
    for name, shuffle in (("ordered", False), ("shuffled", True)):
        store = Store(tmp / f"{name}.duckdb").open()
        t = time.perf_counter()
        n = fill_hours(store, total_hours, n_persons, shuffle)
        store.checkpoint()
        dt = time.perf_counter() - t
        print(f"built {name} database: {n} frames, {n * n_persons} person rows in {dt:.1f} s")
        dbs[name] = store
    start = T0 + pad_hours * 3600
    end = start + 3600
    grid = FloorGrid(x0=0, y0=0, cell_m=0.25, nx=40, ny=32)
    mid = 50_000  # a page in the middle of the hour
    cases: list[tuple[str, Callable[[object], object]]] = [
        ("history page: first 1000 frames of the hour",
         lambda c: queries.pose_history(c, start, end, limit=1000)),
        ("history page: 1000 frames at offset 50k in the hour",
         lambda c: queries.pose_history(c, start, end, limit=1000, offset=mid)),
        ("history page, track_id=2 filter",
         lambda c: queries.pose_history(c, start, end, track_id=2, limit=1000, offset=mid)),
        ("history page, zone_id=zone_a filter",
         lambda c: queries.pose_history(c, start, end, zone_id="zone_a", limit=1000, offset=mid // 2)),
        ("count frames in the hour", lambda c: queries.count_history(c, start, end)),
        ("trajectory of one track over the hour (numpy)",
         lambda c: queries.trajectory_arrays(c, 2, start, end)),
        ("trajectory, 1 s buckets", lambda c: queries.trajectory_arrays(c, 2, start, end, bucket_s=1.0)),
        ("heatmap 40x32 cells over the hour", lambda c: queries.occupancy_heatmap(c, grid, start, end)),
        ("zone occupancy series, 1 min buckets",
         lambda c: queries.zone_occupancy_series(c, "zone_a", start, end, 60.0)),
    ]
    # same answers from both layouts (sanity: the baseline does the same work)
    o, s = dbs["ordered"].cursor(), dbs["shuffled"].cursor()
    a, b = cases[0][1](o), cases[0][1](s)
    assert len(a) == 1000 and [(f.frame_id, [p.track_id for p in f.persons]) for f in a] == [
        (f.frame_id, [p.track_id for p in f.persons]) for f in b]
    assert (cases[7][1](o) == cases[7][1](s)).all()

    print(f"\n== one hour at {FPS} FPS ({3600 * FPS} frames x {n_persons} persons) inside "
          f"{total_hours:g} h of history; median of {reps} ==")
    print(f"{'query':50s} {'ms':>8s} {'full scan ms':>13s} {'speedup':>8s} {'cpu ms':>8s} {'scan cpu':>9s}")
    for name, fn in cases:
        ours, ours_cpu = median_ms(lambda fn=fn: fn(o), reps)
        base, base_cpu = median_ms(lambda fn=fn: fn(s), reps)
        print(f"{name:50s} {ours:8.1f} {base:13.1f} {base / ours:7.1f}x {ours_cpu:8.1f} {base_cpu:9.1f}")
    print("  baseline = same query on the same rows appended in shuffled time order (zonemaps cannot prune)")
    for store in dbs.values():
        store.close()


def load_average() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--append-frames", type=int, default=40_000)
    ap.add_argument("--persons", type=int, default=3)
    ap.add_argument("--pad-hours", type=float, default=1.0)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--skip-queries", action="store_true")
    ap.add_argument("--skip-appends", action="store_true")
    args = ap.parse_args()
    print(f"duckdb {duckdb.__version__}, numpy {np.__version__}, {os.cpu_count()} cpus, "
          f"load average {load_average()}")
    with tempfile.TemporaryDirectory(prefix="wdp-bench-store-") as d:
        if not args.skip_appends:
            bench_appends(Path(d), args.append_frames, args.persons)
        if not args.skip_queries:
            bench_queries(Path(d), args.persons, args.pad_hours, args.reps)


if __name__ == "__main__":
    main()
