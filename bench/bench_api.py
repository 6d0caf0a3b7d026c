"""API throughput and WebSocket fan-out, against real uvicorn processes on 127.0.0.1.

1. REST: GET /api/v1/pose/current (Bearer JWT, default filters, a 3-person frame refreshed at 30 FPS) under
   load from a separate process (wrk if installed, else a keep-alive asyncio load generator), req/s and
   latency percentiles. Baseline: the same endpoint as a minimal FastAPI + pydantic app
   (bench/fastapi_pose_baseline.py: HTTPBearer + pyjwt per request, pydantic response_model) under the same
   uvicorn settings. Target: >= 2x the baseline's req/s. The servers alternate (A B A B) and the median run
   of each is reported; the server is pinned to one CPU and the load generator to another where possible.
2. WebSocket fan-out: N clients (default 500, spread over several processes) subscribed to pose_updates
   at 30 FPS, plus one deliberately slow client that never reads its socket. Reports the p50/p99/max delivery
   latency (frame timestamp -> client receive), frames missed per client, stalls (a gap > 3 frame periods at
   a normal client) and what the server did with the slow client. Targets: p99 < 100 ms, zero stalls.

Usage: PYTHONPATH=python python bench/bench_api.py [--duration 10] [--connections 32] [--ws-clients 500]
       [--ws-duration 10] [--skip-rest] [--skip-ws]     (the baseline needs: pip install fastapi)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import msgspec
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret-0123456789abcdef0123456789abcdef"
ADMIN_PASSWORD = "bench-admin-password"
HUGE = {"limit": 10**12, "window_s": 3600.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return []


def _env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), *(p for p in sys.path if p)]),
        "WDP_JWT_SECRET": SECRET,
        "WDP_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "WDP_API__AUTH__ARGON2_TIME_COST": "1",
        "WDP_API__AUTH__ARGON2_MEMORY_KIB": "8192",
        "WDP_API__AUTH__ARGON2_PARALLELISM": "1",
        # limits stay on (the limiter runs on every request) but high enough never to refuse
        "WDP_API__RATE_LIMIT__TIERS": json.dumps(
            {t: HUGE for t in ("default", "authenticated", "premium", "streaming")}
        ),
        **extra,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), the fair measure on a shared machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def uvicorn(
    app: str, env: dict[str, str], cpu: int | None, factory: bool = False
) -> Iterator[tuple[str, int]]:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
        "--ws-per-message-deflate",
        "false",
        "--backlog",
        "4096",
    ]
    if factory:
        cmd.append("--factory")
    if cpu is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(cpu), *cmd]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/api/v1/pose/current", timeout=1.0)
                break
            except httpx.TransportError as exc:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    raise RuntimeError(f"{app} did not start: {err}") from exc
                time.sleep(0.1)
        yield base, proc.pid  # taskset execs uvicorn: same pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def admin_token(base: str) -> str:
    r = httpx.post(
        f"{base}/api/v1/auth/token",
        json={"grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD},
    )
    r.raise_for_status()
    return str(r.json()["access_token"])


# ------------------------------------------------------------------------------------------------ REST load


class LoadResult(msgspec.Struct):
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu_s: float = 0.0

    @property
    def cpu_us(self) -> float:
        return self.server_cpu_s / self.requests * 1e6

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def _wrk(url: str, token: str, connections: int, duration: int, cpu: int | None) -> LoadResult:
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        "-H",
        f"Authorization: Bearer {token}",
        url,
    ]
    if cpu is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(cpu), *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout

    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if m is None:
            raise RuntimeError(f"cannot parse wrk output:\n{out}")
        return float(m[1]) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m[2]]

    total = re.search(r"(\d+) requests in ([\d.]+)(s|m)", out)
    assert total is not None, out
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    seconds = float(total[2]) * (60 if total[3] == "m" else 1)
    return LoadResult(int(total[1]), seconds, ms("50"), ms("99"), int(errors[1]) if errors else 0)


def _py_load_worker(
    host: str, port: int, path: str, token: str, connections: int, duration: float, out: mp.Queue
) -> None:  # type: ignore[type-arg]
    """Keep-alive HTTP/1.1 load from one process (used when wrk is not installed)."""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()

    async def one(latencies: list[float], stop: float) -> int:
        reader, writer = await asyncio.open_connection(host, port)
        errors = 0
        while time.perf_counter() < stop:
            t = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"content-length: (\d+)", head, re.I)[1])  # type: ignore[index]
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - t)
            errors += not head.startswith(b"HTTP/1.1 200")
        writer.close()
        return errors

    async def run() -> None:
        latencies: list[float] = []
        t0 = time.perf_counter()
        errors = sum(await asyncio.gather(*(one(latencies, t0 + duration) for _ in range(connections))))
        seconds = time.perf_counter() - t0
        lat = np.asarray(latencies) * 1e3
        out.put(
            LoadResult(
                len(lat), seconds, float(np.percentile(lat, 50)), float(np.percentile(lat, 99)), errors
            )
        )

    asyncio.run(run())


def _py_load(url: str, token: str, connections: int, duration: int, cpu: int | None) -> LoadResult:
    m = re.match(r"http://([^:/]+):(\d+)(/.*)", url)
    assert m is not None
    q: mp.Queue = mp.get_context("spawn").Queue()  # type: ignore[type-arg]
    p = mp.get_context("spawn").Process(
        target=_py_load_worker, args=(m[1], int(m[2]), m[3], token, connections, float(duration), q)
    )
    p.start()
    if cpu is not None and p.pid is not None:
        os.sched_setaffinity(p.pid, {cpu})
    result = q.get(timeout=duration + 60)
    p.join()
    return result  # type: ignore[no-any-return]


def bench_rest(args: argparse.Namespace) -> None:
    cores = cpus()
    server_cpu, load_cpu = (cores[0], cores[1]) if len(cores) >= 2 and not args.no_pin else (None, None)
    load = _wrk if shutil.which("wrk") else _py_load
    tool = "wrk -t1" if load is _wrk else "asyncio keep-alive generator"
    path = "/api/v1/pose/current"
    servers = {
        "wdp (Litestar + msgspec)": (
            "wdp.serve.app:create_app_from_env",
            True,
            _env(WDP_API__DEMO_FEED__FPS="30", WDP_API__DEMO_FEED__PERSONS="3"),
        ),
        "baseline (FastAPI + pydantic)": (
            "bench.fastapi_pose_baseline:app",
            False,
            _env(BENCH_FPS="30", BENCH_PERSONS="3"),
        ),
    }
    results: dict[str, list[LoadResult]] = {name: [] for name in servers}
    token = ""
    for _ in range(args.rounds):
        for name, (app, factory, env) in servers.items():
            with uvicorn(app, env, server_cpu, factory=factory) as (base, pid):
                if not token:
                    token = admin_token(base)
                check = httpx.get(base + path, headers={"Authorization": f"Bearer {token}"})
                assert check.status_code == 200 and len(check.json()["persons"]) == 3, check.text
                load(base + path, token, args.connections, 2, load_cpu)  # warm-up
                cpu0 = cpu_seconds(pid)
                r = load(base + path, token, args.connections, args.duration, load_cpu)
                results[name].append(msgspec.structs.replace(r, server_cpu_s=cpu_seconds(pid) - cpu0))
    print(
        f"\n== REST GET {path} (Bearer JWT, 3-person frame), {args.connections} connections, "
        f"{args.duration} s x {args.rounds} rounds, load: {tool}"
        + (f", server on cpu {server_cpu}, load on cpu {load_cpu}" if server_cpu is not None else "")
        + " =="
    )
    print(
        f"{'server':32s} {'req/s':>8s} {'p50 ms':>7s} {'p99 ms':>7s} {'non-2xx':>7s} {'cpu us/req':>10s} "
        f"{'req/cpu-s':>9s} {'x req/s':>8s} {'x cpu':>6s}"
    )
    medians = {name: sorted(runs, key=lambda r: r.rps)[len(runs) // 2] for name, runs in results.items()}
    base = medians["baseline (FastAPI + pydantic)"]
    for name, r in medians.items():
        print(
            f"{name:32s} {r.rps:8,.0f} {r.p50_ms:7.2f} {r.p99_ms:7.2f} {r.errors:7d} {r.cpu_us:10.1f} "
            f"{1e6 / r.cpu_us:9,.0f} {r.rps / base.rps:7.2f}x {base.cpu_us / r.cpu_us:5.2f}x"
        )
    for name, runs in results.items():
        print(
            f"  {name}: req/s per round {', '.join(f'{r.rps:,.0f}' for r in runs)}; server cpu use "
            f"{', '.join(f'{r.server_cpu_s / r.seconds:.0%}' for r in runs)} of one core"
        )
    print(
        "  cpu us/req = server process user+sys CPU / requests: the fair figure when the machine is shared\n"
        "  (a server that gets only part of its core shows low req/s but the same CPU per request).\n"
        "  wdp also runs its rate limiter, Prometheus metrics and version headers on every request; the "
        "baseline does not."
    )


# ------------------------------------------------------------------------------------------------ WS fan-out


class _FrameTs(msgspec.Struct):
    frame_id: int
    timestamp: float


class _PoseMsg(msgspec.Struct):
    type: str
    frame: _FrameTs | None = None


def _ws_worker(url: str, n: int, start_at: float, stop_at: float, fps: float, out: mp.Queue) -> None:  # type: ignore[type-arg]
    from websockets.asyncio.client import connect

    decoder = msgspec.json.Decoder(_PoseMsg)
    period = 1.0 / fps

    async def client(i: int, ready: asyncio.Event) -> tuple[list[float], int, int, int]:
        latencies: list[float] = []
        stalls = gaps = received = 0
        async with connect(url, compression=None, max_size=2**22, open_timeout=60) as ws:
            await ws.recv()
            await ws.send('{"type":"subscribe","topic":"pose_updates","filters":{"min_confidence":0}}')
            await ws.recv()
            ready.set()
            last_id = last_t = None
            while True:
                raw = await ws.recv(decode=False)
                now = time.time()
                if now >= stop_at:
                    break
                msg = decoder.decode(raw)
                if msg.frame is None or now < start_at:
                    continue
                received += 1
                latencies.append(now - msg.frame.timestamp)
                if last_id is not None and msg.frame.frame_id != last_id + 1:
                    gaps += msg.frame.frame_id - last_id - 1
                if last_t is not None and now - last_t > 3 * period:
                    stalls += 1
                last_id, last_t = msg.frame.frame_id, now
        return latencies, stalls, gaps, received

    async def run() -> None:
        tasks = []
        for i in range(n):
            ready = asyncio.Event()
            tasks.append(asyncio.create_task(client(i, ready)))
            await asyncio.wait_for(ready.wait(), 60)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        ok = [r for r in results if not isinstance(r, BaseException)]
        lat = np.concatenate([np.asarray(r[0]) for r in ok]) if ok else np.empty(0)
        out.put(
            (
                lat.astype(np.float32).tobytes(),
                [r[1] for r in ok],
                [r[2] for r in ok],
                [r[3] for r in ok],
                len(results) - len(ok),
            )
        )

    asyncio.run(run())


async def _slow_client(url: str, port: int) -> object:
    from websockets.asyncio.client import connect

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    ws = await connect(url, sock=sock, compression=None, max_queue=1)
    await ws.send('{"type":"subscribe","topic":"pose_updates","filters":{"min_confidence":0}}')
    ws.transport.pause_reading()  # never reads again
    return ws


class FanoutRun(msgspec.Struct):
    slow_client: bool
    clients: int
    latency_ms: np.ndarray  # type: ignore[type-arg]
    received: list[int]
    missed: int
    stalls: int  # inter-arrival gaps > 3 frame periods, summed over clients
    failed: int
    run_cpu_s: float
    dropped: int
    slow_disconnects: int
    feed_skipped: int


def fanout_run(args: argparse.Namespace, with_slow: bool) -> FanoutRun:
    cores = cpus()
    pin = len(cores) >= 2 and not args.no_pin
    server_cpu = cores[0] if pin else None
    client_cpus = set(cores[1:]) if pin else None
    env = _env(
        WDP_API__DEMO_FEED__FPS=str(args.fps),
        WDP_API__DEMO_FEED__PERSONS="3",
        WDP_API__STREAM__MAX_CLIENTS=str(args.ws_clients + 10),
    )
    with uvicorn("wdp.serve.app:create_app_from_env", env, server_cpu, factory=True) as (base, pid):
        token = admin_token(base)
        port = int(base.rsplit(":", 1)[1])
        url = f"ws://127.0.0.1:{port}/ws/v1/stream?token={token}"
        ctx = mp.get_context("spawn")
        q = ctx.Queue()
        procs = max(1, min(args.ws_procs, args.ws_clients))
        per = [args.ws_clients // procs + (i < args.ws_clients % procs) for i in range(procs)]
        connect_s = max(10.0, args.ws_clients / 25)
        start_at = time.time() + connect_s
        stop_at = start_at + args.ws_duration
        workers = [ctx.Process(target=_ws_worker, args=(url, n, start_at, stop_at, args.fps, q)) for n in per]
        for w in workers:
            w.start()
            if client_cpus and w.pid is not None:
                os.sched_setaffinity(w.pid, client_cpus)

        async def hold_slow() -> None:
            ws = await _slow_client(url, port)
            await asyncio.sleep(max(0.0, stop_at - time.time()) + 1.0)
            ws.transport.abort()  # type: ignore[attr-defined]

        async def measure_cpu() -> float:
            await asyncio.sleep(max(0.0, start_at - time.time()))
            c0 = cpu_seconds(pid)
            await asyncio.sleep(max(0.0, stop_at - time.time()))
            return cpu_seconds(pid) - c0

        async def during() -> float:
            if not with_slow:
                return await measure_cpu()
            cpu, _ = await asyncio.gather(measure_cpu(), hold_slow())
            return cpu

        run_cpu_s = asyncio.run(during())
        parts = [q.get(timeout=connect_s + args.ws_duration + 120) for _ in workers]
        for w in workers:
            w.join()
        perf = httpx.get(
            f"{base}/api/v1/system/performance", headers={"Authorization": f"Bearer {token}"}
        ).json()
    return FanoutRun(
        slow_client=with_slow,
        clients=sum(len(p[3]) for p in parts),
        latency_ms=np.concatenate([np.frombuffer(p[0], np.float32) for p in parts]) * 1e3,
        received=[r for p in parts for r in p[3]],
        missed=sum(sum(p[2]) for p in parts),
        stalls=sum(sum(p[1]) for p in parts),
        failed=sum(p[4] for p in parts),
        run_cpu_s=run_cpu_s,
        dropped=perf["stream"]["messages_dropped"],
        slow_disconnects=perf["stream"]["slow_disconnects"],
        feed_skipped=perf["pipeline"]["frames_dropped"],
    )


def bench_ws(args: argparse.Namespace) -> None:
    runs = [fanout_run(args, with_slow=False), fanout_run(args, with_slow=True)]
    expected = args.fps * args.ws_duration
    pinned = len(cpus()) >= 2 and not args.no_pin
    print(
        f"\n== WebSocket fan-out: {args.ws_clients} clients on pose_updates at {args.fps:g} FPS (3 persons, "
        f"~2.6 kB/msg), {args.ws_duration:g} s measured, clients in {args.ws_procs} processes"
        + (", server pinned to one cpu, clients to the other" if pinned else ", no cpu pinning")
        + " =="
    )
    print(
        f"{'run':24s} {'p50 ms':>7s} {'p99 ms':>7s} {'max ms':>7s} {'>100ms':>7s} {'frames/client':>14s} "
        f"{'missed':>7s} {'stalls':>7s} {'failed':>6s} {'srv cpu':>8s} {'us/msg':>7s}"
    )
    for r in runs:
        lat = r.latency_ms
        name = "with 1 stalled client" if r.slow_client else "no slow client"
        print(
            f"{name:24s} {np.percentile(lat, 50):7.1f} {np.percentile(lat, 99):7.1f} {lat.max():7.1f} "
            f"{int((lat > 100).sum()):7d} {min(r.received):6d}-{max(r.received):<7d} {r.missed:7d} "
            f"{r.stalls:7d} "
            f"{r.failed:6d} {r.run_cpu_s / args.ws_duration:8.0%} {r.run_cpu_s / max(1, lat.size) * 1e6:7.1f}"
        )
    slow = runs[1]
    print(
        f"  target: p99 < 100 ms. ~{expected:.0f} frames published per run; missed = frame-id gaps at a\n"
        f"  client;"
        f" stalls = inter-arrival gaps > 3 frame periods at a client (includes publisher lateness:\n"
        f"  the feed"
        f" skipped {runs[0].feed_skipped} / {slow.feed_skipped} frame instants because its loop was late).\n"
        f"  stalled client: server dropped {slow.dropped} of its messages, slow disconnects "
        f"{slow.slow_disconnects} "
        f"(its kernel socket buffers absorb ~4 MB, ~50 s at this rate, before its server queue overflows)."
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=10, help="seconds per REST load run")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2, help="REST runs per server (alternating)")
    ap.add_argument("--ws-clients", type=int, default=500)
    ap.add_argument("--ws-procs", type=int, default=4)
    ap.add_argument("--ws-duration", type=float, default=10.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--no-pin", action="store_true", help="do not pin server and load generator to CPUs")
    ap.add_argument("--skip-rest", action="store_true")
    ap.add_argument("--skip-ws", action="store_true")
    args = ap.parse_args()
    import litestar
    import uvicorn as uv

    print(
        f"python {sys.version.split()[0]}, litestar {litestar.__version__.formatted(short=True)}, "
        f"msgspec {msgspec.__version__}, "
        f"uvicorn {uv.__version__}, {os.cpu_count()} cpus (affinity {cpus()}), "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    if not args.skip_rest:
        bench_rest(args)
    if not args.skip_ws:
        bench_ws(args)


if __name__ == "__main__":
    main()
