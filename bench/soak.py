"""Bounded soak of the default server (README set-up command 1: simulator source, shipped model) with the MQTT
bridge on, against a real mosquitto that is restarted every few minutes.

    .venv/bin/python bench/soak.py                       # 20 minutes, 20 WebSocket clients
    .venv/bin/python bench/soak.py --minutes 3 --json soak.json

Needs mosquitto (`apt-get install mosquitto`, .ci/setup does it). The broker is tests/mqtt_broker.py's
MosquittoBroker (imported from tests/, as bench_integrations.py does): persistence on, restarted on the same
port with its sessions and queued QoS 1 messages kept (SIGTERM, down for --broker-down-s, start).

The server runs as a subprocess, `python -m wdp serve --port P store.path=<tmp>/history.duckdb
mqtt.enabled=true mqtt.port=<broker>` (cwd and state in a temporary directory, WDP_JWT_SECRET and
WDP_ADMIN_PASSWORD in its environment), for --minutes under this load:

* --ws-clients WebSocket clients on /ws/v1/stream subscribed to pose_updates and sensing_updates; they
  authenticate with an ``Authorization: Bearer`` header (--ws-auth header, the default; if the server does not
  answer a header within 3 s the client falls back to the ``{"type": "auth", "token": ...}`` first message),
  or with the first message (--ws-auth message) or ``?token=`` (--ws-auth query, discouraged). A closed
  client reconnects after 1 s.
* REST polling at --rest-hz requests a second in a round: pose/current, sensing/current, system/status, a
  page of pose/history and of sensing/history (the last minute, a random page of 20).
* Zone edits over REST every --zone-every-s: create soak-N, next tick replace it (other polygon and
  max_occupancy), next tick delete it; a zone covering the whole floor, soak-all, is created at the start and
  replaced every cycle, so persons enter and leave zones and the engine emits zone events.
* Broker restarts every --broker-restart-s (mosquitto SIGTERM, down --broker-down-s, started again).

Measured (printed at the start, every --report-s and at the end): the server process's RSS (VmRSS of
/proc/<pid>/status, children included if any) and open file descriptors (/proc/<pid>/fd entries), the size
of the DuckDB history (file + .wal) and of the MQTT durable queue beside it, WebSocket messages received (by
type) and reconnects, REST requests by status (5xx: count and the first bodies), MQTT messages received by a
collector (QoS 1 subscriptions to wdp/events/# and wdp/pose/zone/#).

Lost QoS 1 messages (exact, on event ids): every engine event goes both to the history (DuckDB ``events``
table, one row per event_id) and to the MQTT bridge (``wdp/events/<type>``, QoS 1, payload = the event with
its event_id); both are fed from the same bus subscription topic. The collector subscribes with a persistent
session (clean_session false, fixed client id, QoS 1) *before* the server starts, so every event the bridge
publishes is routed to that session and kept by mosquitto across its restarts (persistence on, SIGTERM). When
the load ends at time T (broker up), the soak waits up to --drain-s for delivery, then reads the history's
events with ts < T through REST (GET /api/v1/analytics/export?table=events&format=csv&end_time=T) and reports

    window = [first event received over MQTT (its timestamp), T)
    lost = |{event_id in the history with ts in window} - {event_id received on wdp/events/#}|

which must be 0. The window opens at the first received event because the engine emits system.started and
router.connected before the bridge subscribes to its events: those are never published (not a QoS 1 loss),
and are reported apart as "never published". Received ids not in the history (``extra``) and duplicates
(at-least-once redelivery, allowed by QoS 1) are reported beside it. What it cannot see: an event the history
itself dropped. Zone occupancy (wdp/pose/zone/<id>/occupancy) is retained latest-value state (an unsent value
is replaced by the next one by design), so its messages are counted but not part of "lost".

Targets (PASS/FAIL in the summary):

* memory: RSS growth from the sample at --warmup-s (default 150 s: after the first broker outage, so the MQTT
  offline queue, the WebSocket client queues, DuckDB's buffer pool and the allocator's arenas have all been
  exercised once) to the end is below --rss-bound-mb (default 64 MB). Why 64 MB: the bounded buffers that
  can still fill after warm-up are the WebSocket queues (clients x stream.queue_size 64 x a few kB, 20 x 64 x
  ~3 kB = 4 MB), the MQTT queue of QoS 1 messages during an outage (a 5 s outage holds a few hundred person
  updates and events, < 1 MB; max_queued 10 000 x ~1 kB = 10 MB at worst) and the history writer's queue
  (flushed every second; empty unless DuckDB stalls), plus DuckDB's block cache as the history grows and
  glibc arena fragmentation (tens of MB). A leak of one WebSocket message per frame, or of one frame per
  frame, exceeds it within minutes (20 fps x ~3 kB = 3.6 MB/min). The RSS slope after warm-up (least squares,
  MB/min) is printed beside it. With --minutes below 2 x warm-up the baseline is the sample at a third of the
  run instead (the figure is then only indicative).
* fds: end - (the sample at the warm-up time above) <= --fd-slack (default 8). Not end - start: the start
  sample is taken before the load connects (the clients' WebSocket and keep-alive REST sockets are the
  server's fds too); both are printed. The slack covers REST keep-alive connections opened or closed at the
  moment of sampling and a WebSocket client reconnecting.
* zero lost QoS 1 event messages (above), and zero 5xx responses.

Exit status 0 when every target passes, 1 when one fails, 2 when the soak could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import aiomqtt  # noqa: E402
import httpx  # noqa: E402
import websockets  # noqa: E402
from mqtt_broker import MOSQUITTO, MosquittoBroker, free_port  # noqa: E402
from websockets.asyncio.client import connect as ws_connect  # noqa: E402

PASSWORD = "soak-admin-pw-123456"
PREFIX = "wdp"
WHOLE_FLOOR = [[-50.0, -50.0], [50.0, -50.0], [50.0, 50.0], [-50.0, 50.0]]
TYPE_RE = re.compile(r'"type"\s*:\s*"([a-z_]+)"')


# ------------------------------------------------------------------------------------------------ process


@dataclass
class Sample:
    t: float  # seconds since the load started
    rss_mb: float
    fds: int
    sockets: int  # of the fds
    threads: int
    db_mb: float  # history file + .wal
    queue_mb: float  # MQTT durable queue (+ -wal, -shm)
    ws_msgs: int
    rest: int
    mqtt_msgs: int


def _status_field(pid: int, name: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    return 0


def _children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
    return out


def process_tree(pid: int) -> list[int]:
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo += _children(p)
    return seen


def _socket_count(pid: int, names: list[str]) -> int:
    n = 0
    for name in names:
        with contextlib.suppress(OSError):
            n += os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:")
    return n


def rss_fds_threads(pid: int) -> tuple[float, int, int, int]:
    """VmRSS (MB), open fds and how many of them are sockets, of the server and its children (if any), and
    the server's thread count."""
    rss_kb, fds, sockets = 0, 0, 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            rss_kb += _status_field(p, "VmRSS")
            names = os.listdir(f"/proc/{p}/fd")
            fds += len(names)
            sockets += _socket_count(p, names)
    return rss_kb / 1024, fds, sockets, _status_field(pid, "Threads")


def file_mb(*paths: Path) -> float:
    return sum(p.stat().st_size for p in paths if p.exists()) / 2**20


# ------------------------------------------------------------------------------------------------ state


@dataclass
class Stats:
    ws_by_type: Counter = field(default_factory=Counter)
    ws_connects: int = 0
    ws_closes: Counter = field(default_factory=Counter)  # close code -> count (after the welcome)
    ws_auth: Counter = field(default_factory=Counter)  # how clients got in: header / message / query
    ws_errors: list[str] = field(default_factory=list)
    ws_dropped_total: int = 0  # the server's "dropped" notices (slow client)
    rest_by_status: Counter = field(default_factory=Counter)
    rest_transport_errors: int = 0
    rest_5xx: list[str] = field(default_factory=list)  # the first bodies
    zone_ops: Counter = field(default_factory=Counter)
    broker_restarts: int = 0
    mqtt_by_family: Counter = field(default_factory=Counter)
    mqtt_event_ids: Counter = field(default_factory=Counter)  # event_id -> times received
    mqtt_event_meta: dict[str, tuple[float, str]] = field(default_factory=dict)  # event_id -> (timestamp, type)
    mqtt_connects: int = 0

    @property
    def ws_total(self) -> int:
        return sum(self.ws_by_type.values())

    @property
    def rest_total(self) -> int:
        return sum(self.rest_by_status.values())

    @property
    def n5xx(self) -> int:
        return sum(n for s, n in self.rest_by_status.items() if s >= 500)


# ------------------------------------------------------------------------------------------------ MQTT


class EventCollector:
    """A persistent-session QoS 1 subscriber to <prefix>/events/# and <prefix>/pose/zone/#; reconnects."""

    def __init__(self, port: int, stats: Stats) -> None:
        self.port = port
        self.stats = stats
        self.client_id = f"soak-collector-{os.getpid()}"
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", self.port, identifier=self.client_id, clean_session=False, keepalive=10
                ) as client:
                    self.stats.mqtt_connects += 1
                    await client.subscribe(f"{PREFIX}/events/#", qos=1)
                    await client.subscribe(f"{PREFIX}/pose/zone/#", qos=1)
                    self._subscribed.set()
                    async for m in client.messages:
                        topic = m.topic.value
                        if topic.startswith(f"{PREFIX}/events/"):
                            self.stats.mqtt_by_family["events"] += 1
                            payload = m.payload if isinstance(m.payload, bytes) else str(m.payload).encode()
                            try:
                                event = json.loads(payload)
                                self.stats.mqtt_event_ids[event["event_id"]] += 1
                                self.stats.mqtt_event_meta[event["event_id"]] = (
                                    float(event["timestamp"]),
                                    str(event["type"]),
                                )
                            except (ValueError, KeyError, TypeError):
                                self.stats.mqtt_by_family["events_unparsed"] += 1
                        else:
                            self.stats.mqtt_by_family["zone"] += 1
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._subscribed.wait(), 10)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


# ------------------------------------------------------------------------------------------------ load


async def ws_client(url: str, token: str, mode: str, stats: Stats, stop: asyncio.Event) -> None:
    subscribe = [json.dumps({"type": "subscribe", "topic": t}) for t in ("pose_updates", "sensing_updates")]
    while not stop.is_set():
        headers = {"Authorization": f"Bearer {token}"} if mode == "header" else None
        target = f"{url}?token={token}" if mode == "query" else url
        try:
            async with ws_connect(target, additional_headers=headers, max_size=2**24, open_timeout=20) as ws:
                how = mode
                if mode == "message":
                    await ws.send(json.dumps({"type": "auth", "token": token}))
                try:
                    first = await asyncio.wait_for(ws.recv(), 3.0 if mode == "header" else 20.0)
                except TimeoutError:
                    if mode != "header":
                        raise
                    # a server that ignores the header waits for the auth message
                    await ws.send(json.dumps({"type": "auth", "token": token}))
                    how = "message (header ignored)"
                    first = await asyncio.wait_for(ws.recv(), 20.0)
                if '"connection"' not in str(first):
                    raise RuntimeError(f"no welcome: {str(first)[:200]}")
                stats.ws_connects += 1
                stats.ws_auth[how] += 1
                for msg in subscribe:
                    await ws.send(msg)
                async for raw in ws:
                    text = raw if isinstance(raw, str) else raw.decode(errors="replace")
                    m = TYPE_RE.search(text[:80]) or TYPE_RE.search(text)
                    kind = m.group(1) if m else "?"
                    stats.ws_by_type[kind] += 1
                    if kind == "dropped":
                        with contextlib.suppress(ValueError, KeyError):
                            stats.ws_dropped_total += int(json.loads(text)["count"])
                    if stop.is_set():
                        break
                if stop.is_set():
                    return
        except websockets.ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else 1006
            stats.ws_closes[code] += 1
            if len(stats.ws_errors) < 5:
                stats.ws_errors.append(f"closed {code}: {exc.rcvd.reason if exc.rcvd else ''}")
        except (OSError, TimeoutError, RuntimeError, websockets.InvalidHandshake) as exc:
            stats.ws_closes["error"] += 1
            if len(stats.ws_errors) < 5:
                stats.ws_errors.append(f"{type(exc).__name__}: {exc}"[:300])
        if not stop.is_set():
            await asyncio.sleep(1.0)


async def request(
    http: httpx.AsyncClient, stats: Stats, method: str, path: str, route: str, **kw: Any
) -> httpx.Response | None:
    try:
        r = await http.request(method, path, **kw)
    except httpx.HTTPError as exc:
        stats.rest_transport_errors += 1
        if len(stats.rest_5xx) < 5 and not isinstance(exc, httpx.TimeoutException):
            stats.rest_5xx.append(f"{method} {route}: transport error {type(exc).__name__}: {exc}"[:400])
        return None
    stats.rest_by_status[r.status_code] += 1
    if r.status_code >= 500 and len(stats.rest_5xx) < 5:
        stats.rest_5xx.append(f"{method} {route} -> {r.status_code}: {r.text[:300]}")
    return r


async def rest_poller(http: httpx.AsyncClient, hz: float, stats: Stats, stop: asyncio.Event) -> None:
    def history(kind: str) -> tuple[str, dict[str, Any]]:
        now = time.time()
        params = {"start_time": now - 60, "end_time": now, "limit": 20, "skip": random.choice((0, 20, 100, 400))}
        return f"/api/v1/{kind}/history", params

    rounds = [
        lambda: ("/api/v1/pose/current", {}),
        lambda: ("/api/v1/sensing/current", {}),
        lambda: ("/api/v1/system/status", {}),
        lambda: history("pose"),
        lambda: history("sensing"),
    ]
    i = 0
    while not stop.is_set():
        t = time.monotonic()
        path, params = rounds[i % len(rounds)]()
        i += 1
        await request(http, stats, "GET", path, path, params=params)
        await asyncio.sleep(max(0.0, 1.0 / hz - (time.monotonic() - t)))


def _square(cx: float, cy: float, r: float) -> list[list[float]]:
    return [[cx - r, cy - r], [cx + r, cy - r], [cx + r, cy + r], [cx - r, cy + r]]


async def zone_editor(http: httpx.AsyncClient, every_s: float, stats: Stats, stop: asyncio.Event) -> None:
    base = "/api/v1/config/zones"
    whole = {"id": "soak-all", "name": "Soak whole floor", "polygon": WHOLE_FLOOR, "max_occupancy": 5}
    r = await request(http, stats, "POST", base, "POST zones", json=whole)
    stats.zone_ops[f"create {r.status_code if r is not None else 'error'}"] += 1
    n, step = 0, 0
    while not stop.is_set():
        await asyncio.sleep(every_s)
        if stop.is_set():
            break
        zid = f"soak-{n}"
        cx, cy = random.uniform(1, 5), random.uniform(1, 5)
        if step == 0:
            body = {"id": zid, "name": f"Soak {n}", "polygon": _square(cx, cy, 1.5), "max_occupancy": 1}
            r = await request(http, stats, "POST", base, "POST zones", json=body)
            op = "create"
        elif step == 1:
            body = {"id": zid, "name": f"Soak {n} moved", "polygon": _square(cx, cy, 2.5), "max_occupancy": 2}
            r = await request(http, stats, "PUT", f"{base}/{zid}", "PUT zones/{id}", json=body)
            op = "replace"
        else:
            r = await request(http, stats, "DELETE", f"{base}/{zid}", "DELETE zones/{id}")
            op = "delete"
            # the whole-floor zone: shrink to nothing useful and back, so persons leave and re-enter it
            poly = WHOLE_FLOOR if n % 2 else _square(100.0, 100.0, 1.0)
            r2 = await request(http, stats, "PUT", f"{base}/soak-all", "PUT zones/{id}", json=whole | {"polygon": poly})
            stats.zone_ops[f"replace {r2.status_code if r2 is not None else 'error'}"] += 1
            n += 1
        stats.zone_ops[f"{op} {r.status_code if r is not None else 'error'}"] += 1
        step = (step + 1) % 3


async def broker_restarter(
    broker: MosquittoBroker, every_s: float, down_s: float, stats: Stats, stop: asyncio.Event
) -> None:
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
            return
        print(f"  [broker] restart {stats.broker_restarts + 1}: down for {down_s:g} s", flush=True)
        # shielded: a restart in progress always finishes (the broker is up when this task ends)
        await asyncio.shield(asyncio.to_thread(broker.restart, down_s))
        stats.broker_restarts += 1


# ------------------------------------------------------------------------------------------------ main


def fmt_sample(s: Sample) -> str:
    return (
        f"t={s.t:7.1f}s  rss={s.rss_mb:7.1f} MB  fds={s.fds:4d} ({s.sockets:3d} sockets)  threads={s.threads:3d}  "
        f"db={s.db_mb:6.2f} MB  mqtt-queue={s.queue_mb:5.2f} MB  ws-msgs={s.ws_msgs:8d}  "
        f"rest={s.rest:6d}  mqtt-msgs={s.mqtt_msgs:6d}"
    )


def slope_mb_per_min(samples: list[Sample]) -> float | None:
    if len(samples) < 3:
        return None
    xs = [s.t / 60 for s in samples]
    ys = [s.rss_mb for s in samples]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else None


def wait_healthy(base: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{base}/api/v1/system/health", timeout=2.0).status_code == 200:
                return
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server was not healthy within {timeout:g} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.25)


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        print("  the server did not stop within 30 s of SIGTERM: killed", flush=True)
        proc.kill()
        proc.wait()


async def history_events(http: httpx.AsyncClient, end_time: float) -> dict[str, tuple[float, str]]:
    """event_id -> (ts, type) of the history's events with ts < end_time (the REST CSV export)."""
    r = await http.get(
        "/api/v1/analytics/export", params={"table": "events", "format": "csv", "end_time": end_time}, timeout=60
    )
    r.raise_for_status()
    return {row["event_id"]: (float(row["ts"]), row["type"]) for row in csv.DictReader(io.StringIO(r.text))}


def compare_events(hist: dict[str, tuple[float, str]], stats: Stats, cutoff: float) -> dict[str, Any]:
    """The delivery check (see the module docstring). The window opens at the first event received over MQTT:
    events the engine emitted before the bridge subscribed to its events (at start: system.started,
    router.connected) were never published, so they are reported apart ("before_bridge") instead of as
    lost QoS 1 messages."""
    received = {i: m for i, m in stats.mqtt_event_meta.items() if m[0] < cutoff}
    first = min((m[0] for m in received.values()), default=cutoff)
    window = {i: m for i, m in hist.items() if m[0] >= first}
    before = {i: m for i, m in hist.items() if m[0] < first and i not in received}
    lost = sorted(set(window) - set(received), key=lambda i: window[i][0])
    extra = set(received) - set(hist)
    return {
        "cutoff_unix": cutoff,
        "window_start_unix": first,
        "in_history": len(hist),
        "in_window": len(window),
        "received": len(received),
        "received_msgs": stats.mqtt_by_family["events"],
        "lost": len(lost),
        "lost_first": [f"{window[i][1]} {i} at {window[i][0] - first:+.1f} s" for i in lost[:10]],
        "lost_types": dict(Counter(window[i][1] for i in lost)),
        "before_bridge": len(before),
        "before_bridge_types": dict(Counter(m[1] for m in before.values())),
        "extra": len(extra),
        "duplicates": sum(n - 1 for i, n in stats.mqtt_event_ids.items() if n > 1 and i in received),
        "types": dict(Counter(m[1] for m in window.values())),
    }


async def soak(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    stats = Stats()
    samples: list[Sample] = []
    db = work / "history.duckdb"
    queue_files = [work / f"history.duckdb.mqtt-queue.sqlite3{s}" for s in ("", "-wal", "-shm", "-journal")]
    log_path = work / "server.log"
    broker = MosquittoBroker(work / "broker")
    broker.start()
    collector = EventCollector(broker.port, stats)
    proc: subprocess.Popen[bytes] | None = None
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    restarter: asyncio.Task[None] | None = None
    result: dict[str, Any] = {}
    try:
        await collector.start()  # before the server: every event it publishes lands in this session
        port = args.port or free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "WDP_JWT_SECRET": "s" * 48, "WDP_ADMIN_PASSWORD": PASSWORD}
        cmd = [
            sys.executable, "-m", "wdp", "serve", "--port", str(port), f"store.path={db}",
            "mqtt.enabled=true", f"mqtt.port={broker.port}", f"mqtt.prefix={PREFIX}", *args.override,
        ]  # fmt: skip
        print("server:", " ".join(cmd), flush=True)
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
        t_start = time.monotonic()
        await asyncio.to_thread(wait_healthy, base, proc, log_path, args.start_timeout_s)
        print(f"server pid {proc.pid} healthy after {time.monotonic() - t_start:.1f} s", flush=True)
        async with httpx.AsyncClient(base_url=base, timeout=30) as anon:
            r = await anon.post(
                "/api/v1/auth/token", json={"grant_type": "password", "username": "admin", "password": PASSWORD}
            )
            r.raise_for_status()
            token = r.json()["access_token"]
        limits = httpx.Limits(max_connections=8)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30, limits=limits) as http:
            t0 = time.monotonic()

            def sample() -> Sample:
                assert proc is not None
                rss, fds, sockets, threads = rss_fds_threads(proc.pid)
                return Sample(
                    t=time.monotonic() - t0,
                    rss_mb=rss,
                    fds=fds,
                    sockets=sockets,
                    threads=threads,
                    db_mb=file_mb(db, db.with_name(db.name + ".wal")),
                    queue_mb=file_mb(*queue_files),
                    ws_msgs=stats.ws_total,
                    rest=stats.rest_total,
                    mqtt_msgs=sum(stats.mqtt_by_family.values()),
                )

            samples.append(sample())
            print("start ", fmt_sample(samples[0]), flush=True)
            url = f"ws://127.0.0.1:{port}/ws/v1/stream"
            tasks += [
                asyncio.create_task(ws_client(url, token, args.ws_auth, stats, stop)) for _ in range(args.ws_clients)
            ]
            tasks.append(asyncio.create_task(rest_poller(http, args.rest_hz, stats, stop)))
            tasks.append(asyncio.create_task(zone_editor(http, args.zone_every_s, stats, stop)))
            restarter = asyncio.create_task(
                broker_restarter(broker, args.broker_restart_s, args.broker_down_s, stats, stop)
            )
            duration = args.minutes * 60
            next_report = args.report_s
            sample_every = min(10.0, args.report_s)
            while (elapsed := time.monotonic() - t0) < duration:
                if proc.poll() is not None:
                    raise RuntimeError(f"the server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
                await asyncio.sleep(min(sample_every, duration - elapsed))
                samples.append(sample())
                if samples[-1].t >= next_report:
                    next_report += args.report_s
                    print("      ", fmt_sample(samples[-1]), flush=True)
            stop.set()
            await restarter  # an outage in progress ends first: the broker is up from here on
            t_cutoff = time.time()
            end = sample()
            samples.append(end)
            print("end   ", fmt_sample(end), flush=True)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            tasks.clear()

            # delivery check: every event in the history before the cutoff must have reached the collector
            deadline = time.monotonic() + args.drain_s
            await asyncio.sleep(2.0)  # the history writer flushes once a second
            while True:
                hist = await history_events(http, t_cutoff)
                if not compare_events(hist, stats, t_cutoff)["lost"] or time.monotonic() > deadline:
                    break
                await asyncio.sleep(1.0)
            waited = args.drain_s - max(0.0, deadline - time.monotonic())
            metrics_text = (await http.get("/metrics")).text
        result["events"] = compare_events(hist, stats, t_cutoff) | {"drain_waited_s": round(waited, 1)}
        result["server_metrics"] = {
            m.group(1): float(m.group(2))
            for m in re.finditer(
                r"^(wdp_ws_dropped_total|wdp_pipeline_frames_total|wdp_pipeline_drops_total|"
                r"wdp_ws_disconnects_total\{[^}]*\}|wdp_http_rate_limited_total\{[^}]*\})\s+(\S+)$",
                metrics_text,
                re.M,
            )
        }
    finally:
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if restarter is not None:  # a restart in its thread finishes before the broker is stopped for good
            await asyncio.gather(restarter, return_exceptions=True)
        if proc is not None:
            await asyncio.to_thread(stop_server, proc)
        await collector.stop()
        broker.stop()
    log_text = log_path.read_text(errors="replace") if log_path.exists() else ""
    result.update(
        samples=[asdict(s) for s in samples],
        stats=stats,
        db_after_stop_mb=file_mb(db, db.with_name(db.name + ".wal")),
        queue_after_stop_mb=file_mb(*queue_files),
        # uvicorn re-raises SIGTERM after its shutdown, so the exit status is -15 either way
        clean_shutdown="Application shutdown complete" in log_text,
        log_tracebacks=log_text.count("Traceback"),
        log_errors=[ln[:300] for ln in log_text.splitlines() if " ERROR " in ln or "CRITICAL" in ln][:5],
        server_exit=proc.returncode if proc is not None else None,
        server_pid=proc.pid if proc is not None else None,
    )
    return result


def report(args: argparse.Namespace, res: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    stats: Stats = res["stats"]
    samples = [Sample(**s) for s in res["samples"]]
    start, end = samples[0], samples[-1]
    duration = end.t
    warmup = args.warmup_s if duration >= 2 * args.warmup_s else duration / 3
    base = min(samples, key=lambda s: abs(s.t - warmup))
    growth = end.rss_mb - base.rss_mb
    slope = slope_mb_per_min([s for s in samples if s.t >= base.t])
    ev = res["events"]
    targets = {
        f"RSS growth after {base.t:.0f} s < {args.rss_bound_mb:g} MB": (
            growth < args.rss_bound_mb,
            f"{growth:+.1f} MB",
        ),
        f"open fds end - at {base.t:.0f} s <= {args.fd_slack}": (
            end.fds - base.fds <= args.fd_slack,
            f"{end.fds - base.fds:+d} (start {start.fds}, at {base.t:.0f} s {base.fds}, end {end.fds})",
        ),
        "lost QoS 1 event messages == 0": (ev["lost"] == 0, f"{ev['lost']} of {ev['in_window']}"),
        "5xx responses == 0": (stats.n5xx == 0, str(stats.n5xx)),
    }
    ok = all(p for p, _ in targets.values())
    rows = [
        ("duration", f"{duration / 60:.1f} min", ""),
        ("server RSS", f"{start.rss_mb:.1f} MB", f"{end.rss_mb:.1f} MB (at {base.t:.0f} s: {base.rss_mb:.1f} MB)"),
        ("RSS slope after warm-up", "", f"{slope:+.2f} MB/min" if slope is not None else "n/a"),
        ("RSS peak", "", f"{max(s.rss_mb for s in samples):.1f} MB"),
        (
            "open fds (sockets)",
            f"{start.fds} ({start.sockets})",
            f"{end.fds} ({end.sockets}) (at {base.t:.0f} s: {base.fds} ({base.sockets}))",
        ),
        ("threads", str(start.threads), str(end.threads)),
        (
            "DuckDB history (+wal)",
            f"{start.db_mb:.2f} MB",
            f"{end.db_mb:.2f} MB ({res['db_after_stop_mb']:.2f} after stop)",
        ),
        (
            "MQTT durable queue (+wal)",
            f"{start.queue_mb:.2f} MB",
            f"{end.queue_mb:.2f} MB ({res['queue_after_stop_mb']:.2f} after stop)",
        ),
        ("WebSocket messages", "", f"{stats.ws_total} {dict(stats.ws_by_type.most_common())}"),
        ("WebSocket connects/closes", "", f"{stats.ws_connects} / {dict(stats.ws_closes)} auth {dict(stats.ws_auth)}"),
        ("WebSocket dropped (server notices)", "", str(stats.ws_dropped_total)),
        ("REST requests", "", f"{stats.rest_total} {dict(sorted(stats.rest_by_status.items()))}"),
        ("REST transport errors", "", str(stats.rest_transport_errors)),
        ("zone edits", "", str(dict(sorted(stats.zone_ops.items())))),
        ("broker restarts", "", f"{stats.broker_restarts} (collector connects {stats.mqtt_connects})"),
        ("MQTT received", "", str(dict(stats.mqtt_by_family))),
        (
            "QoS 1 events: history / received",
            "",
            f"{ev['in_window']} / {ev['received']} ids (window from the first received event to the cutoff; "
            f"{ev['received_msgs']} msgs in all, {ev['duplicates']} dup, {ev['extra']} not in history, "
            f"drain {ev['drain_waited_s']} s)",
        ),
        ("QoS 1 events by type", "", str(ev["types"])),
        (
            "events never published",
            "",
            f"{ev['before_bridge']} {ev['before_bridge_types']} (emitted before the bridge subscribed)",
        ),
        (
            "server log",
            "",
            f"{res['log_tracebacks']} tracebacks, exit {res['server_exit']}, "
            f"clean shutdown: {'yes' if res['clean_shutdown'] else 'NO'}",
        ),
    ]
    print("\n== soak summary ==")
    w = max(len(r[0]) for r in rows)
    print(f"{'':{w}}  {'start':>10}  end")
    for name, a, b in rows:
        print(f"{name:{w}}  {a:>10}  {b}")
    if stats.rest_5xx:
        print("\nfirst 5xx / transport errors:")
        for line in stats.rest_5xx:
            print("  ", line)
    if stats.ws_errors:
        print("\nfirst WebSocket errors:")
        for line in stats.ws_errors:
            print("  ", line)
    if res["log_errors"]:
        print("\nfirst server log errors:")
        for line in res["log_errors"]:
            print("  ", line)
    if ev["lost_first"]:
        print(f"\nlost QoS 1 events {ev['lost_types']}, first 10:")
        for line in ev["lost_first"]:
            print("  ", line)
    if res.get("server_metrics"):
        print("\nserver /metrics:", ", ".join(f"{k}={v:g}" for k, v in res["server_metrics"].items()))
    print("\n== targets ==")
    for name, (passed, value) in targets.items():
        print(f"{'PASS' if passed else 'FAIL'}  {name}: {value}")
    out = {
        "args": vars(args),
        "targets": {k: {"pass": p, "value": v} for k, (p, v) in targets.items()},
        "pass": ok,
        "rss_baseline": asdict(base),
        "rss_growth_mb": growth,
        "rss_slope_mb_per_min": slope,
        "events": ev,
        "ws": {
            "messages": stats.ws_total,
            "by_type": dict(stats.ws_by_type),
            "connects": stats.ws_connects,
            "closes": {str(k): v for k, v in stats.ws_closes.items()},
            "auth": dict(stats.ws_auth),
            "dropped": stats.ws_dropped_total,
            "errors": stats.ws_errors,
        },
        "rest": {
            "requests": stats.rest_total,
            "by_status": {str(k): v for k, v in stats.rest_by_status.items()},
            "transport_errors": stats.rest_transport_errors,
            "errors": stats.rest_5xx,
        },
        "zone_ops": dict(stats.zone_ops),
        "broker_restarts": stats.broker_restarts,
        "mqtt": dict(stats.mqtt_by_family),
        "server_metrics": res.get("server_metrics", {}),
        "log_tracebacks": res["log_tracebacks"],
        "log_errors": res["log_errors"],
        "db_after_stop_mb": res["db_after_stop_mb"],
        "queue_after_stop_mb": res["queue_after_stop_mb"],
        "clean_shutdown": res["clean_shutdown"],
        "server_pid": res["server_pid"],
        "samples": res["samples"],
    }
    return out, ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--ws-clients", type=int, default=20)
    ap.add_argument("--ws-auth", choices=("header", "message", "query"), default="header")
    ap.add_argument("--rest-hz", type=float, default=4.0, help="REST requests a second (round robin)")
    ap.add_argument("--zone-every-s", type=float, default=3.0)
    ap.add_argument("--broker-restart-s", type=float, default=120.0)
    ap.add_argument("--broker-down-s", type=float, default=5.0)
    ap.add_argument("--report-s", type=float, default=60.0)
    ap.add_argument("--warmup-s", type=float, default=150.0, help="RSS baseline sample time (see the docstring)")
    ap.add_argument("--rss-bound-mb", type=float, default=64.0)
    ap.add_argument("--fd-slack", type=int, default=8)
    ap.add_argument("--drain-s", type=float, default=30.0, help="longest wait for QoS 1 delivery after the load")
    ap.add_argument("--start-timeout-s", type=float, default=120.0)
    ap.add_argument("--port", type=int, default=0, help="server port (0: a free one)")
    ap.add_argument("--keep", type=Path, default=None, help="work in this directory and keep it (logs, DB)")
    ap.add_argument("--json", type=Path, default=None, help="write the summary and samples here")
    ap.add_argument("override", nargs="*", help="extra `wdp serve` overrides (key=value)")
    args = ap.parse_args()
    if MOSQUITTO is None:
        print("bench/soak.py needs mosquitto (apt-get install mosquitto; .ci/setup installs it): not found on PATH "
              "or at /usr/sbin/mosquitto", file=sys.stderr)  # fmt: skip
        return 2
    try:
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            res = asyncio.run(soak(args, args.keep.resolve()))
        else:
            with tempfile.TemporaryDirectory(prefix="wdp-soak-") as tmp:
                res = asyncio.run(soak(args, Path(tmp)))
    except (RuntimeError, TimeoutError, OSError, httpx.HTTPError) as exc:
        print(f"soak failed: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted (server and broker stopped)", file=sys.stderr)
        return 2
    out, ok = report(args, res)
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=2, default=str) + "\n")
        print(f"\nwrote {args.json}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
