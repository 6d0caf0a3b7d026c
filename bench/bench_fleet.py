"""Fleet throughput: N edges x R simulated routers publishing pose frames at F FPS per router through one real
mosquitto into 1 or 2 hub processes (``python -m wdp.fleet hub``) writing PostgreSQL (or DuckDB, 1 hub).

    .venv/bin/python bench/bench_fleet.py --edges 5 10 25 50 --hubs 1 2 --backend postgres duckdb --duration 10

Per run: frames offered and stored per second (stored = distinct rows in pose_frames after the hubs drained),
end-to-end latency p50/p99 (frame timestamp at the edge -> its batch committed in the store, i.e. visible to
the API's queries), hub CPU per stored frame (user+sys of the hub processes / frames), and whether every
frame was stored exactly once. Edges run as asyncio tasks in this process (each its own FleetEdge: own MQTT
connection and durable queue), so on a small machine the edges, the broker, the hubs and PostgreSQL share the
cores; the ``edge_cpu_s`` column shows what the simulated edges took. Prints a Markdown table; ``--json``
writes the rows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "python"), str(HERE.parent / "tests")]

import msgspec  # noqa: E402
from _store_frames import make_frames  # noqa: E402
from mqtt_broker import MosquittoBroker, bridge_config  # noqa: E402
from pg_server import PostgresServer  # noqa: E402

from wdp.fleet.edge import FleetEdge, FleetEdgeConfig  # noqa: E402
from wdp.store.postgres import open_store  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def start_hub(store: str, port: int, client_id: str, log: Path, stats: Path) -> subprocess.Popen[str]:
    err = open(log, "a")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen(
        [sys.executable, "-m", "wdp.fleet", "hub", "--store", store, "--port", str(port), "--client-id", client_id]
        + ["--stats-file", str(stats)],
        stdout=subprocess.PIPE,
        stderr=err,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    err.close()
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError(f"hub did not start:\n{log.read_text()[-2000:]}")
    return proc


def stop_hub(proc: subprocess.Popen[str]) -> dict[str, float]:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


async def run_edges(
    port: int, tmp: Path, n_edges: int, routers: int, fps: float, duration: float, paced: bool = True
) -> tuple[int, float, float]:
    edges = [
        FleetEdge(
            FleetEdgeConfig(site="bench", edge=f"e{i}", edge_index=i + 1),
            bridge_config(port, client_id=f"bench-e{i}", queue_path=str(tmp / f"e{i}.sqlite3"), max_queued=200_000),
        )
        for i in range(n_edges)
    ]
    for e in edges:
        await e.start()
    base = make_frames(50, n_tracks=1, seed=1)
    sent = 0
    t_cpu = time.process_time()
    t0 = time.monotonic()
    tick = 0
    while not paced or time.monotonic() - t0 < duration:
        wall = time.time()
        for e in edges:
            for r in range(routers):
                local = tick * routers + r + 1
                f = msgspec.structs.replace(
                    base[local % len(base)], frame_id=local, timestamp=wall, router_ids=[f"r{r}"], source="live"
                )
                sent += e.publish(f)
        tick += 1
        if paced:
            await asyncio.sleep(max(0.0, t0 + tick / fps - time.monotonic()))
        elif tick >= fps * duration:  # a backlog of duration x fps ticks, published as fast as possible
            break
        else:
            await asyncio.sleep(0)
    offered_s = time.monotonic() - t0
    for e in edges:
        await e.flush(120)
        await e.stop()
    return sent, offered_s, time.process_time() - t_cpu


def stored(store_target: str) -> int:
    with open_store(store_target) as store:
        row = store.cursor().execute("SELECT count(*), count(DISTINCT frame_id) FROM pose_frames").fetchone()
    if row[0] != row[1]:
        raise AssertionError(f"duplicates stored: {row}")
    return int(row[0])


def one_run(
    backend: str,
    n_hubs: int,
    n_edges: int,
    routers: int,
    fps: float,
    duration: float,
    pg: PostgresServer | None,
    drain: bool = False,
) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="wdp-bench-fleet-"))
    target = pg.fresh_database() if backend == "postgres" and pg is not None else str(tmp / "fleet.duckdb")
    with open_store(target):
        pass  # migrate once before the hubs start
    with MosquittoBroker(tmp / "broker") as broker:
        stats_files = [tmp / f"hub-{k}.json" for k in range(n_hubs)]
        hubs = [start_hub(target, broker.port, f"hub-{k}", tmp / f"hub-{k}.log", f) for k, f in enumerate(stats_files)]
        if drain:
            # capacity: the hubs' sessions queue a backlog at the broker while they are away, then they drain it
            for h in hubs:
                stop_hub(h)
            sent, _, edge_cpu = asyncio.run(run_edges(broker.port, tmp, n_edges, routers, fps, duration, paced=False))
            for f in stats_files:
                f.unlink(missing_ok=True)
            hubs = [
                start_hub(target, broker.port, f"hub-{k}", tmp / f"hub-{k}.log", f) for k, f in enumerate(stats_files)
            ]
            offered_s = 0.0
        cpu0 = [cpu_s(h.pid) for h in hubs]
        t0 = time.monotonic()
        if not drain:
            sent, offered_s, edge_cpu = asyncio.run(run_edges(broker.port, tmp, n_edges, routers, fps, duration))
        # drained: the hubs have taken every frame (or 120 s)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            counts = [json.loads(f.read_text()).get("frames", 0) if f.exists() else 0 for f in stats_files]
            if sum(counts) >= sent:
                break
            time.sleep(0.2)
        drained_s = time.monotonic() - t0
        cpu = [cpu_s(h.pid) - c for h, c in zip(hubs, cpu0, strict=True)]
        stats = [stop_hub(h) for h in hubs]
    n = stored(target)
    frames = sum(int(s.get("frames", 0)) for s in stats)
    p50 = max(float(s.get("latency_ms_p50", 0)) for s in stats)
    p99 = max(float(s.get("latency_ms_p99", 0)) for s in stats)
    return {
        "backend": backend,
        "hubs": n_hubs,
        "edges": n_edges,
        "routers": n_edges * routers,
        "mode": "drain" if drain else "live",
        "offered_fps": round(sent / offered_s, 1) if offered_s else None,
        "stored_fps": round(n / drained_s, 1),
        "stored": n,
        "sent": sent,
        "exactly_once": n == sent,
        "p50_ms": p50,
        "p99_ms": p99,
        "hub_cpu_ms_per_frame": round(1000 * sum(cpu) / max(n, 1), 3),
        "hub_frames_received": frames,
        "edge_cpu_s": round(edge_cpu, 1),
        "drain_s": round(drained_s - offered_s, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edges", type=int, nargs="+", default=[5, 10, 25, 50])
    ap.add_argument("--routers", type=int, default=4)
    ap.add_argument("--fps", type=float, default=20.0)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--hubs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--backend", nargs="+", default=["postgres", "duckdb"], choices=["postgres", "duckdb"])
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--drain",
        action="store_true",
        help="hub capacity: queue duration x fps ticks at the broker while the hubs are away, time their drain",
    )
    args = ap.parse_args()
    rows = []
    pg = PostgresServer().start() if "postgres" in args.backend else None
    try:
        for backend in args.backend:
            for n_hubs in args.hubs:
                if backend == "duckdb" and n_hubs > 1:
                    continue  # one process owns a DuckDB file
                for n_edges in args.edges:
                    row = one_run(backend, n_hubs, n_edges, args.routers, args.fps, args.duration, pg, args.drain)
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    finally:
        if pg is not None:
            pg.cleanup()
    cols = list(rows[0]) if rows else []
    print("\n| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
