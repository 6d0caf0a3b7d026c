"""gRPC vs WebSocket streaming, and GraphQL vs REST history queries, against one real server process.

The server: ``uvicorn wdp.serve.app:create_app_from_env --factory`` on 127.0.0.1 with the gRPC API enabled
in the same process (api.grpc.enabled), the demo feed publishing a 3-person frame at 30 FPS (each frame's
timestamp is its publish time), and a history store of 20,000 frames.

1. Streaming: N clients (default 100) subscribed to all pose frames at 30 FPS, over gRPC (StreamPoses, grpc.aio
   client, 10 streams per channel) and over the WebSocket (/ws/v1/stream, pose_updates), in the same run,
   phase after phase (gRPC, WS, gRPC, WS), the clients in a separate process. Per protocol: delivery latency
   p50/p99 (frame timestamp -> client receive, same clock), frames delivered, and server CPU per delivered
   message (server process user+sys CPU over the phase / messages). Target: gRPC p99 < 50 ms at 100 clients.
2. History: the same page (100 frames, all fields) as REST GET /api/v1/pose/history and as the GraphQL
   ``poseHistory`` query, closed loop with C concurrent keep-alive clients (default 4) for D seconds each
   (alternating, twice): req/s and server CPU per request. Target: GraphQL within 1.5x of REST's cost.

Usage: python bench/bench_protocols.py [--clients 100] [--duration 10] [--history-duration 8] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import msgspec
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_api import ROOT, _env, cpu_seconds, free_port  # noqa: E402

T0 = 1_700_000_000.0
HISTORY_FRAMES = 20_000
REST_PATH = "/api/v1/pose/history"
GRAPHQL_QUERY = """query($s: Float!, $e: Float!) { poseHistory(startTime: $s, endTime: $e, limit: 100) {
  total limit skip frames { frameId timestamp source routerIds latencyMs
    persons { trackId keypoints box confidence zoneIds activity position } } } }"""


def make_history(path: Path) -> None:
    import msgspec

    from wdp.serve.demo_feed import synthetic_frame
    from wdp.store import Store

    with Store(str(path)) as store, store.writer() as w:
        for i in range(HISTORY_FRAMES):
            f = synthetic_frame(i, i / 30.0, 3)
            w.append(msgspec.structs.replace(f, timestamp=T0 + i / 30.0))


@contextmanager
def server(store_path: Path) -> Iterator[tuple[str, int, int, str]]:
    port, grpc_port = free_port(), free_port()
    env = _env(
        WDP_API__STORE_PATH=str(store_path),
        WDP_API__DEMO_FEED__FPS="30",
        WDP_API__DEMO_FEED__PERSONS="3",
        WDP_API__GRPC__ENABLED="true",
        WDP_API__GRPC__PORT=str(grpc_port),
        WDP_API__STREAM__MAX_CLIENTS="5000",
    )
    cmd = [sys.executable, "-m", "uvicorn", "wdp.serve.app:create_app_from_env", "--factory", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--log-level", "warning", "--no-access-log", "--ws-per-message-deflate", "false"]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/api/v1/system/health", timeout=1.0)
                break
            except httpx.TransportError as exc:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"server did not start: {proc.stderr.read().decode() if proc.stderr else ''}"
                    ) from exc
                time.sleep(0.1)
        r = httpx.post(
            f"{base}/api/v1/auth/token",
            json={"grant_type": "password", "username": "admin", "password": "bench-admin-password"},
        )
        r.raise_for_status()
        yield base, grpc_port, proc.pid, r.json()["access_token"]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


# ------------------------------------------------------------------------------------------ streaming clients


class _WsFrame(msgspec.Struct):
    timestamp: float


class _WsMsg(msgspec.Struct):
    type: str
    frame: _WsFrame | None = None


async def _grpc_clients(port: int, token: str, n: int, start_at: float, stop_at: float) -> list[float]:
    import grpc

    from wdp.serve.rpc import stubs

    pb, rpc, _ = stubs.load()
    md = (("authorization", f"Bearer {token}"),)
    lat: list[float] = []
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for _ in range(max(1, n // 10))]

    async def one(i: int) -> None:
        stub = rpc.WdpServiceStub(channels[i % len(channels)])
        call = stub.StreamPoses(pb.StreamPosesRequest(), metadata=md)
        try:
            async for frame in call:
                now = time.time()
                if now >= stop_at:
                    break
                if now >= start_at:
                    lat.append(now - frame.timestamp)
        finally:
            call.cancel()

    await asyncio.gather(*(one(i) for i in range(n)))
    for ch in channels:
        await ch.close()
    return lat


async def _ws_clients(base: str, token: str, n: int, start_at: float, stop_at: float) -> list[float]:
    from websockets.asyncio.client import connect

    decode = msgspec.json.Decoder(_WsMsg).decode
    lat: list[float] = []
    url = base.replace("http://", "ws://") + "/ws/v1/stream"

    async def one() -> None:
        headers = {"Authorization": f"Bearer {token}"}
        async with connect(url, additional_headers=headers, compression=None, max_size=2**22, open_timeout=60) as ws:
            await ws.recv()
            await ws.send('{"type":"subscribe","topic":"pose_updates","filters":{"min_confidence":0}}')
            while True:
                raw = await ws.recv(decode=False)
                now = time.time()
                if now >= stop_at:
                    return
                msg = decode(raw)
                if msg.frame is not None and now >= start_at:
                    lat.append(now - msg.frame.timestamp)

    await asyncio.gather(*(one() for _ in range(n)))
    return lat


def _client_process(kind: str, target: str, token: str, n: int, start_at: float, stop_at: float, out: mp.Queue) -> None:  # type: ignore[type-arg]
    if kind == "grpc":
        lat = asyncio.run(_grpc_clients(int(target), token, n, start_at, stop_at))
    else:
        lat = asyncio.run(_ws_clients(target, token, n, start_at, stop_at))
    out.put(lat)


def stream_phase(kind: str, target: str, token: str, pid: int, n: int, duration: float) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    connect_s = 3.0 + n * 0.02  # clients connect and subscribe before the measured window
    start_at = time.time() + connect_s
    stop_at = start_at + duration
    p = ctx.Process(target=_client_process, args=(kind, target, token, n, start_at, stop_at, out))
    p.start()
    time.sleep(max(0.0, start_at - time.time()))
    cpu0 = cpu_seconds(pid)
    time.sleep(max(0.0, stop_at - time.time()))
    cpu = cpu_seconds(pid) - cpu0
    lat = np.array(out.get(timeout=60 + n)) * 1000.0
    p.join(timeout=30)
    return {
        "messages": float(lat.size),
        "msg_per_s": lat.size / duration,
        "p50_ms": float(np.percentile(lat, 50)) if lat.size else float("nan"),
        "p99_ms": float(np.percentile(lat, 99)) if lat.size else float("nan"),
        "cpu_us_per_msg": cpu / max(lat.size, 1) * 1e6,
        "server_cpu": cpu / duration,
    }


# ------------------------------------------------------------------------------------------ history


async def _history_load(base: str, token: str, kind: str, concurrency: int, duration: float) -> tuple[int, int]:
    headers = {"Authorization": f"Bearer {token}"}
    rng = np.random.default_rng(0)
    ok = bad = 0
    stop = time.monotonic() + duration

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal ok, bad
        while time.monotonic() < stop:
            s = T0 + float(rng.uniform(0, HISTORY_FRAMES / 30.0 - 10))
            if kind == "rest":
                r = await client.get(REST_PATH, params={"start_time": s, "end_time": s + 10, "limit": 100})
                good = r.status_code == 200 and len(r.json()["frames"]) == 100
            else:
                r = await client.post("/graphql", json={"query": GRAPHQL_QUERY, "variables": {"s": s, "e": s + 10}})
                body = r.json()
                good = (
                    r.status_code == 200 and "errors" not in body and len(body["data"]["poseHistory"]["frames"]) == 100
                )
            ok += good
            bad += not good

    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return ok, bad


def history_phase(base: str, token: str, pid: int, kind: str, concurrency: int, duration: float) -> dict[str, float]:
    cpu0 = cpu_seconds(pid)
    t = time.monotonic()
    ok, bad = asyncio.run(_history_load(base, token, kind, concurrency, duration))
    seconds = time.monotonic() - t
    cpu = cpu_seconds(pid) - cpu0
    return {"req_per_s": ok / seconds, "errors": float(bad), "cpu_ms_per_req": cpu / max(ok, 1) * 1e3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--history-duration", type=float, default=8.0)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        store_path = Path(tmp) / "history.duckdb"
        print(f"writing {HISTORY_FRAMES} history frames ...", flush=True)
        make_history(store_path)
        with server(store_path) as (base, grpc_port, pid, token):
            streams: dict[str, list[dict[str, float]]] = {"grpc": [], "websocket": []}
            for r in range(args.rounds):
                for kind, target in (("grpc", str(grpc_port)), ("websocket", base)):
                    res = stream_phase(kind, target, token, pid, args.clients, args.duration)
                    streams[kind].append(res)
                    print(f"round {r + 1} {kind}: {json.dumps({k: round(v, 3) for k, v in res.items()})}", flush=True)
            history: dict[str, list[dict[str, float]]] = {"rest": [], "graphql": []}
            for kind in ("rest", "graphql"):  # warm-up
                history_phase(base, token, pid, kind, args.concurrency, 1.0)
            for r in range(args.rounds):
                for kind in ("rest", "graphql"):
                    res = history_phase(base, token, pid, kind, args.concurrency, args.history_duration)
                    history[kind].append(res)
                    print(f"round {r + 1} {kind}: {json.dumps({k: round(v, 3) for k, v in res.items()})}", flush=True)

    def med(rows: list[dict[str, float]], key: str) -> float:
        return float(np.median([row[key] for row in rows]))

    print(f"\n{args.clients} streaming clients at 30 FPS, {args.duration:g} s x {args.rounds} rounds (medians):")
    print("| protocol | msgs/s delivered | p50 ms | p99 ms | server CPU us/msg | server CPU (cores) |")
    print("|---|---|---|---|---|---|")
    for kind, rows in streams.items():
        print(
            f"| {kind} | {med(rows, 'msg_per_s'):,.0f} | {med(rows, 'p50_ms'):.1f} | {med(rows, 'p99_ms'):.1f} | "
            f"{med(rows, 'cpu_us_per_msg'):.0f} | {med(rows, 'server_cpu'):.2f} |"
        )
    print(f"\nhistory page (100 frames x 3 persons, all fields), {args.concurrency} clients (medians):")
    print("| API | req/s | server CPU ms/req | errors |")
    print("|---|---|---|---|")
    for kind, rows in history.items():
        errors = sum(r["errors"] for r in rows)
        print(f"| {kind} | {med(rows, 'req_per_s'):.1f} | {med(rows, 'cpu_ms_per_req'):.2f} | {errors:.0f} |")
    ratio = med(history["graphql"], "cpu_ms_per_req") / med(history["rest"], "cpu_ms_per_req")
    p99 = med(streams["grpc"], "p99_ms")
    print(f"\ngRPC p99 {p99:.1f} ms (target < 50 ms): {'met' if p99 < 50 else 'MISSED'}")
    print(f"GraphQL/REST cost per request {ratio:.2f}x (target <= 1.5x): {'met' if ratio <= 1.5 else 'MISSED'}")
    if args.json:
        args.json.write_text(json.dumps({"streams": streams, "history": history, "args": vars(args) | {"json": None}}))


if __name__ == "__main__":
    main()
