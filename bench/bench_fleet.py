"""Fleet throughput: N edges x R simulated routers publishing pose frames at F FPS per router through one real
mosquitto into 1 or 2 hub processes (``python -m wdp.fleet hub``) writing PostgreSQL (or DuckDB, 1 hub).

    .venv/bin/python bench/bench_fleet.py --edges 5 10 25 50 --hubs 1 2 --backend postgres duckdb --duration 10
    # live, the edges spread over 4 processes (real FleetEdge publishers: MQTT 5, durable spool)
    .venv/bin/python bench/bench_fleet.py --edges 50 --hubs 2 --backend postgres --duration 30 --edge-procs 4

Per run: frames offered and stored per second (stored = distinct rows in pose_frames after the hubs drained),
end-to-end latency p50/p99 (frame timestamp at the edge -> its batch committed in the store, i.e. visible to
the API's queries), hub CPU per stored frame (user+sys of the hub processes / frames), and whether every
frame was stored exactly once. Edges run as asyncio tasks in this process (each its own FleetEdge: own MQTT
connection and durable queue), so on a small machine the edges, the broker, the hubs and PostgreSQL share the
cores; the ``edge_cpu_s`` column shows what the simulated edges took. ``--edge-procs P`` spreads the edges over
P processes (edge i in process i mod P), each feeding its FleetEdges pre-made PoseFrames at F FPS per router
(in a deployment each edge's engine makes them on the edge's own machine; here only the publishing side runs).
``stored_fps_in_run`` (edge processes): frames the hubs had committed when the edges' run time was over,
divided by it (the hubs' stats files are up to 0.5 s old, so it reads a little low). ``edge_lag_ms`` is how
far the edges' 20 FPS schedule slipped (max over the run): the edges could not keep up when it grows.
``cpu_busy`` is the whole machine's busy share during the run; ``broker_cpu_s``/``pg_cpu_s`` what mosquitto
and PostgreSQL took; ``fleet_cores`` the cores the whole fleet (hubs, edges, mosquitto, PostgreSQL) used on
average. Prints a Markdown table; ``--json`` writes the rows.
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


def tree_cpu_s(root: int) -> float:
    """CPU (user+sys) of ``root`` and its living descendants (PostgreSQL's backends)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
    tree, total = {root}, 0.0
    for pid in sorted(parents):  # children have larger pids than their parent here (no pid wrap-around)
        if pid == root or parents[pid] in tree:
            tree.add(pid)
            try:
                total += cpu_s(pid)
            except OSError:
                pass
    return total


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all cores since boot (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


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
    port: int,
    tmp: Path,
    edge_ids: list[int],
    routers: int,
    fps: float,
    duration: float,
    paced: bool = True,
    start_at: float | None = None,
) -> dict[str, float]:
    """Publish from FleetEdges ``edge_ids`` (real MQTT, real spool): per tick, one frame per router per edge.
    ``start_at`` (epoch s): begin then (edge processes start together)."""
    edges = [
        FleetEdge(
            FleetEdgeConfig(site="bench", edge=f"e{i}", edge_index=i + 1),
            bridge_config(port, client_id=f"bench-e{i}", queue_path=str(tmp / f"e{i}.sqlite3"), max_queued=200_000),
        )
        for i in edge_ids
    ]
    for e in edges:
        await e.start()
    base = make_frames(50, n_tracks=1, seed=1)  # pre-made poses (one person), re-stamped as they are sent
    if start_at is not None:
        await asyncio.sleep(max(0.0, start_at - time.time()))
    sent = 0
    lag = 0.0
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
            behind = time.monotonic() - (t0 + tick / fps)
            lag = max(lag, behind)
            await asyncio.sleep(max(0.0, -behind))
        elif tick >= fps * duration:  # a backlog of duration x fps ticks, published as fast as possible
            break
        else:
            await asyncio.sleep(0)
    offered_s = time.monotonic() - t0
    for e in edges:
        await e.flush(120)
        await e.stop()
    return {"sent": sent, "offered_s": offered_s, "cpu_s": time.process_time() - t_cpu, "lag_s": lag}


def start_edge_procs(
    port: int, tmp: Path, n_edges: int, procs: int, routers: int, fps: float, duration: float
) -> tuple[list[subprocess.Popen[str]], float]:
    start_at = time.time() + 2.0 + 0.05 * n_edges  # time for every edge to connect first
    out = []
    for p in range(procs):
        ids = ",".join(str(i) for i in range(p, n_edges, procs))
        cmd = [sys.executable, __file__, "--edge-worker", ids, "--port", str(port), "--tmp", str(tmp)]
        cmd += ["--routers", str(routers), "--fps", str(fps), "--duration", str(duration), "--start-at", str(start_at)]
        out.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}))
    return out, start_at


def join_edge_procs(procs: list[subprocess.Popen[str]]) -> dict[str, float]:
    rows = []
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"edge process failed ({proc.returncode})")
        rows.append(json.loads(out.strip().splitlines()[-1]))
    return {
        "sent": sum(r["sent"] for r in rows),
        "offered_s": max(r["offered_s"] for r in rows),
        "cpu_s": sum(r["cpu_s"] for r in rows),
        "lag_s": max(r["lag_s"] for r in rows),
    }


def committed(stats_files: list[Path]) -> list[int]:
    """Frames each hub has committed, from its stats file (rewritten every 0.5 s)."""
    out = []
    for f in stats_files:
        try:
            out.append(int(json.loads(f.read_text()).get("frames", 0)))
        except (OSError, ValueError):
            out.append(0)
    return out


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
    edge_procs: int = 1,
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
            run = asyncio.run(run_edges(broker.port, tmp, list(range(n_edges)), routers, fps, duration, paced=False))
            sent, edge_cpu, lag = int(run["sent"]), run["cpu_s"], 0.0
            for f in stats_files:
                f.unlink(missing_ok=True)
            hubs = [
                start_hub(target, broker.port, f"hub-{k}", tmp / f"hub-{k}.log", f) for k, f in enumerate(stats_files)
            ]
            offered_s = 0.0
        workers: list[subprocess.Popen[str]] = []
        if not drain and edge_procs > 1:
            workers, start_at = start_edge_procs(broker.port, tmp, n_edges, edge_procs, routers, fps, duration)
            time.sleep(max(0.0, start_at - time.time()))  # the edges connected; measure from their start
        pg_pid = int((pg.data / "postmaster.pid").read_text().split()[0]) if backend == "postgres" and pg else None
        assert broker.proc is not None
        side0 = (cpu_s(broker.proc.pid), tree_cpu_s(pg_pid) if pg_pid else 0.0)
        busy0 = machine_busy()
        cpu0 = [cpu_s(h.pid) for h in hubs]
        t0 = time.monotonic()
        in_time = None  # frames the hubs had committed when the edges' run time was over (edge processes)
        if workers:
            while any(w.poll() is None for w in workers) and in_time is None:
                time.sleep(0.1)
                if time.monotonic() - t0 >= duration:
                    in_time = sum(committed(stats_files))
            run = join_edge_procs(workers)
        elif not drain:
            run = asyncio.run(run_edges(broker.port, tmp, list(range(n_edges)), routers, fps, duration))
        if not drain:
            sent, offered_s, edge_cpu, lag = int(run["sent"]), run["offered_s"], run["cpu_s"], run["lag_s"]
        # drained: the hubs have taken every frame (or 120 s)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if sum(committed(stats_files)) >= sent:
                break
            time.sleep(0.2)
        drained_s = time.monotonic() - t0
        cpu = [cpu_s(h.pid) - c for h, c in zip(hubs, cpu0, strict=True)]
        busy1 = machine_busy()
        broker_cpu = cpu_s(broker.proc.pid) - side0[0]
        pg_cpu = (tree_cpu_s(pg_pid) - side0[1]) if pg_pid else 0.0
        stats = [stop_hub(h) for h in hubs]
    if drain:
        # the hubs start draining while they start up (one after the other): time and CPU from each hub's own
        # first message to its last commit (HubStats), not from when the last of them was ready
        busy = [s for s in stats if s.get("frames")]
        drained_s = max(s["last_commit_at"] for s in busy) - min(s["first_message_at"] for s in busy)
        cpu = [s["cpu_last_commit_s"] - s["cpu_first_message_s"] for s in busy]
    n = stored(target)
    frames = sum(int(s.get("frames", 0)) for s in stats)
    p50 = max(float(s.get("latency_ms_p50", 0)) for s in stats)
    p99 = max(float(s.get("latency_ms_p99", 0)) for s in stats)
    return {
        "backend": backend,
        "hubs": n_hubs,
        "edges": n_edges,
        "routers": n_edges * routers,
        "mode": "drain" if drain else ("live" if edge_procs <= 1 else f"live x{edge_procs} procs"),
        "offered_fps": round(sent / offered_s, 1) if offered_s else None,
        "stored_fps": round(n / drained_s, 1),
        # committed while the edges ran / their run time (stats up to 0.5 s old): the rate the hubs kept up with
        "stored_fps_in_run": None if in_time is None else round(in_time / duration, 1),
        "stored": n,
        "sent": sent,
        "exactly_once": n == sent,
        "p50_ms": p50,
        "p99_ms": p99,
        "hub_cpu_ms_per_frame": round(1000 * sum(cpu) / max(n, 1), 3),
        "hub_frames_received": frames,
        "edge_cpu_s": round(edge_cpu, 1),
        "edge_lag_ms": round(lag * 1000, 1),
        "broker_cpu_s": round(broker_cpu, 1),
        "pg_cpu_s": round(pg_cpu, 1),
        "fleet_cores": round((sum(cpu) + edge_cpu + broker_cpu + pg_cpu) / drained_s, 2),
        "cpu_busy": round((busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1]), 2),
        "drain_s": round(drained_s - offered_s, 2),
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
    ap.add_argument("--edge-procs", type=int, default=1, help="spread the edges over this many processes (live)")
    ap.add_argument("--edge-worker", default=None, help=argparse.SUPPRESS)  # internal: comma-separated edge ids
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--tmp", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--start-at", type=float, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.edge_worker is not None:  # one edge process of a --edge-procs run
        ids = [int(i) for i in args.edge_worker.split(",") if i]
        run = asyncio.run(
            run_edges(args.port, args.tmp, ids, args.routers, args.fps, args.duration, True, args.start_at)
        )
        print(json.dumps(run), flush=True)
        return 0
    rows = []
    pg = PostgresServer().start() if "postgres" in args.backend else None
    try:
        for backend in args.backend:
            for n_hubs in args.hubs:
                if backend == "duckdb" and n_hubs > 1:
                    continue  # one process owns a DuckDB file
                for n_edges in args.edges:
                    row = one_run(
                        backend, n_hubs, n_edges, args.routers, args.fps, args.duration, pg, args.drain, args.edge_procs
                    )
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
