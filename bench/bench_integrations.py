"""Integration throughput and latency against real local peers, each next to a named baseline run alongside.

1. Webhooks, events/s delivered to 1 and to 20 subscriptions (receivers: stdlib HTTP server processes on
   127.0.0.1, the 20 subscriptions spread over ``--receiver-procs`` of them). Path measured: submit (DuckDB
   transaction: events + outbox rows) -> claim -> signed POST -> mark_result, until the outbox is empty.
   Baseline: fire-and-forget, the same signed POSTs sent straight from memory with the same httpx client and
   concurrency (no outbox, no durability), i.e. what durability costs.
2. MQTT messages/s through MqttBridge (publish_event -> acknowledged by mosquitto) at QoS0 and QoS1.
   Baseline: plain aiomqtt, one ``await client.publish`` at a time (what a naive publisher does).
3. End-to-end latency at a paced rate: webhook (submit -> receiver got the request; receiver clock = our
   clock, same host) and MQTT (publish_event -> subscriber got it), p50/p99. Baseline: direct POST / direct
   aiomqtt publish of the same event.

Usage: PYTHONPATH=python:tests python bench/bench_integrations.py [--events 2000] [--mqtt-msgs 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "python"), str(HERE.parent / "tests")]

import aiomqtt  # noqa: E402
import httpx  # noqa: E402
from integration_samples import detected  # noqa: E402
from mqtt_broker import MOSQUITTO, MosquittoBroker  # noqa: E402
from webhook_receiver import Receiver  # noqa: E402

from wdp.integrations.mqtt import MqttBridge, MqttConfig  # noqa: E402
from wdp.integrations.webhooks import WebhookDispatcher, WebhookSettings, sign_payload  # noqa: E402
from wdp.schemas import JSON_ENCODER, RetryPolicy, WebhookSubscription  # noqa: E402
from wdp.store import Store, config  # noqa: E402


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


SETTINGS = WebhookSettings(
    concurrency=32, claim_batch=128, poll_interval_s=0.05, allowed_networks=["127.0.0.1/32"], lease_s=60
)


# ------------------------------------------------------------------------------------------------ webhooks


async def webhook_outbox(tmp: Path, urls: list[str], n_events: int) -> tuple[float, float]:
    """Durable path: seconds and CPU seconds to deliver n_events to every url."""
    db = tmp / f"wh-{len(urls)}-{time.monotonic_ns()}.duckdb"
    events = [detected(i) for i in range(n_events)]
    with Store(db) as store:
        for i, url in enumerate(urls):
            config.WEBHOOKS.put(
                store.cursor(),
                WebhookSubscription(id=f"s{i:02d}", url=url, events=["*"], secret="k", retry=RetryPolicy()),
            )
        async with WebhookDispatcher(store, SETTINGS) as hooks:
            t0, c0 = time.perf_counter(), cpu_s()
            for i in range(0, n_events, 50):  # events arrive in small bursts, as from the engine
                await hooks.submit(events[i : i + 50])
            # wait on the counter, not the outbox: polling DuckDB would cost more than it measures
            while hooks.stats.delivered < n_events * len(urls):
                await asyncio.sleep(0.01)
            dt, dc = time.perf_counter() - t0, cpu_s() - c0
        (left,) = store.cursor().execute("SELECT count(*) FROM outbox WHERE status != 'delivered'").fetchone()  # type: ignore[misc]
        assert left == 0 and hooks.stats.delivered == n_events * len(urls), hooks.stats
    return dt, dc


async def webhook_direct(urls: list[str], n_events: int) -> tuple[float, float]:
    """Baseline: same signed POSTs straight from memory, same concurrency, no outbox."""
    bodies = [JSON_ENCODER.encode(detected(i)) for i in range(n_events)]
    sem = asyncio.Semaphore(SETTINGS.concurrency)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=100), trust_env=False) as client:

        async def post(url: str, body: bytes) -> None:
            async with sem:
                ts = str(int(time.time()))
                r = await client.post(
                    url,
                    content=body,
                    headers={"X-Timestamp": ts, "X-Signature": sign_payload("k", ts, body)},
                )
                assert r.status_code == 200

        t0, c0 = time.perf_counter(), cpu_s()
        await asyncio.gather(*(post(u, b) for b in bodies for u in urls))
        return time.perf_counter() - t0, cpu_s() - c0


async def webhook_latency(
    tmp: Path, receiver: Receiver, n: int, rate: float
) -> tuple[list[float], list[float]]:
    """(outbox latencies, direct-POST latencies) in ms, from submit to the receiver's arrival timestamp."""
    db = tmp / "lat.duckdb"
    sent: dict[str, float] = {}
    with Store(db) as store:
        config.WEBHOOKS.put(
            store.cursor(), WebhookSubscription(id="s", url=receiver.url, events=["*"], secret="k")
        )
        async with WebhookDispatcher(store, SETTINGS) as hooks:
            for i in range(n):
                event = detected(100_000 + i)
                sent[event.event_id] = time.time()
                await hooks.submit([event])
                await asyncio.sleep(1 / rate)
            con = store.cursor()
            while con.execute("SELECT count(*) FROM outbox WHERE status != 'delivered'").fetchone()[0]:  # type: ignore[index]
                await asyncio.sleep(0.01)
    direct_sent: dict[str, float] = {}
    async with httpx.AsyncClient(trust_env=False) as client:
        for i in range(n):
            event = detected(200_000 + i)
            body = JSON_ENCODER.encode(event)
            direct_sent[event.event_id] = time.time()
            await client.post(receiver.url, content=body)
            await asyncio.sleep(1 / rate)
    outbox_ms, direct_ms = [], []
    for r in receiver.records():
        event_id = json.loads(r["body"])["event_id"]
        if event_id in sent:
            outbox_ms.append((r["t"] - sent[event_id]) * 1e3)
        elif event_id in direct_sent:
            direct_ms.append((r["t"] - direct_sent[event_id]) * 1e3)
    return outbox_ms, direct_ms


# ------------------------------------------------------------------------------------------------ MQTT


async def mqtt_bridge_rate(port: int, n: int, qos: int) -> tuple[float, float]:
    cfg = MqttConfig(
        host="127.0.0.1", port=port, client_id=f"bench-{qos}", discovery=False, max_queued=n + 10
    )
    payload = JSON_ENCODER.encode(detected(1))
    async with MqttBridge(cfg) as bridge:
        await bridge.wait_connected(5)
        await bridge.flush(5)
        t0, c0 = time.perf_counter(), cpu_s()
        for i in range(n):
            bridge.publish(f"bench/{i % 16}", payload, qos=qos)
            if i % 1000 == 999:
                await asyncio.sleep(0)  # a producer yields now and then, as the engine does
        assert await bridge.flush(120)
        return time.perf_counter() - t0, cpu_s() - c0


async def mqtt_naive_rate(port: int, n: int, qos: int) -> tuple[float, float]:
    payload = JSON_ENCODER.encode(detected(1))
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"naive-{qos}") as client:
        t0, c0 = time.perf_counter(), cpu_s()
        for i in range(n):
            await client.publish(f"bench/{i % 16}", payload, qos=qos)
        return time.perf_counter() - t0, cpu_s() - c0


async def mqtt_latency(port: int, n: int, rate: float) -> tuple[list[float], list[float]]:
    cfg = MqttConfig(host="127.0.0.1", port=port, client_id="bench-lat", discovery=False)
    got: dict[str, float] = {}
    async with aiomqtt.Client("127.0.0.1", port, identifier="lat-sub") as sub:
        await sub.subscribe("lat/#", qos=1)
        await sub.subscribe("wdp/events/#", qos=1)

        async def read() -> None:
            async for m in sub.messages:
                got[json.loads(m.payload)["event_id"]] = time.time()  # type: ignore[arg-type]

        reader = asyncio.create_task(read())
        sent_bridge: dict[str, float] = {}
        async with MqttBridge(cfg) as bridge:
            await bridge.wait_connected(5)
            for i in range(n):
                event = detected(300_000 + i)
                sent_bridge[event.event_id] = time.time()
                bridge.publish_event(event)
                await asyncio.sleep(1 / rate)
            await bridge.flush(10)
        sent_direct: dict[str, float] = {}
        async with aiomqtt.Client("127.0.0.1", port, identifier="lat-pub") as pub:
            for i in range(n):
                event = detected(400_000 + i)
                sent_direct[event.event_id] = time.time()
                await pub.publish("lat/x", JSON_ENCODER.encode(event), qos=1)
                await asyncio.sleep(1 / rate)
        await asyncio.sleep(0.3)
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    bridge_ms = [(got[k] - t) * 1e3 for k, t in sent_bridge.items() if k in got]
    direct_ms = [(got[k] - t) * 1e3 for k, t in sent_direct.items() if k in got]
    return bridge_ms, direct_ms


# ------------------------------------------------------------------------------------------------ main


def table(header: list[str], rows: list[list[object]], widths: list[int]) -> None:
    def cell(value: object, width: int, first: bool) -> str:
        if isinstance(value, float):
            text = f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
        else:
            text = str(value)
        return text.ljust(width) if first else text.rjust(width)

    for row in [header, *rows]:
        print(" ".join(cell(v, w, i == 0) for i, (v, w) in enumerate(zip(row, widths, strict=True))))


async def bench_webhooks(tmp: Path, args: argparse.Namespace) -> None:
    procs = [Receiver(None).start() for _ in range(args.receiver_procs)]
    rows: list[list[object]] = []
    try:
        for n_subs in (1, 20):
            urls = [procs[i % len(procs)].url.replace("/hook", f"/s{i}") for i in range(n_subs)]
            n_ev = args.events if n_subs == 1 else max(100, args.events // 5)
            dt0, cpu0 = await webhook_direct(urls, n_ev)
            dt, cpu = await webhook_outbox(tmp, urls, n_ev)
            deliveries = n_ev * n_subs
            rows.append(
                [
                    f"{n_subs:2d} subs, baseline: direct POST (no outbox)",
                    n_ev / dt0,
                    deliveries / dt0,
                    "1.00x",
                    cpu0 / deliveries * 1e3,
                ]
            )
            rows.append(
                [
                    f"{n_subs:2d} subs, durable outbox + dispatcher",
                    n_ev / dt,
                    deliveries / dt,
                    f"{dt0 / dt:.2f}x",
                    cpu / deliveries * 1e3,
                ]
            )
    finally:
        for p in procs:
            p.stop()
    print(
        f"\n== webhooks: {args.events} events (1 sub) / {max(100, args.events // 5)} events (20 subs), "
        f"{args.receiver_procs} stdlib receiver processes =="
    )
    table(["path", "events/s", "deliveries/s", "vs direct", "cpu ms/delivery"], rows, [46, 9, 13, 10, 16])


async def bench_mqtt_rates(port: int, args: argparse.Namespace) -> None:
    rows: list[list[object]] = []
    for qos in (0, 1):
        dt0, cpu0 = await mqtt_naive_rate(port, args.mqtt_msgs, qos)
        dt, cpu = await mqtt_bridge_rate(port, args.mqtt_msgs, qos)
        rows.append(
            [
                f"qos{qos} baseline: aiomqtt, await each publish",
                args.mqtt_msgs / dt0,
                "1.00x",
                cpu0 / args.mqtt_msgs * 1e6,
            ]
        )
        rows.append(
            [
                f"qos{qos} MqttBridge (queue, inflight window 64)",
                args.mqtt_msgs / dt,
                f"{dt0 / dt:.2f}x",
                cpu / args.mqtt_msgs * 1e6,
            ]
        )
    size = len(JSON_ENCODER.encode(detected(1)))
    print(f"\n== MQTT publish rate: {args.mqtt_msgs} messages of {size} bytes, acknowledged by mosquitto ==")
    table(["path", "msgs/s", "vs naive", "cpu us/msg"], rows, [50, 9, 9, 11])


async def main_async(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="wdp-bench-int-"))
    print(
        f"{os.cpu_count()} cpus, load average {os.getloadavg()[0]:.1f} (a shared machine: figures are noisy)"
    )
    try:
        await bench_webhooks(tmp, args)
        with Receiver(tmp / "lat.jsonl") as receiver:
            outbox_ms, direct_ms = await webhook_latency(tmp, receiver, args.latency_events, args.rate)
        latencies = [
            ("baseline: direct POST", direct_ms),
            ("webhook: submit -> outbox -> receiver", outbox_ms),
        ]
        if MOSQUITTO is None:
            print("\nmosquitto not installed: MQTT benchmarks skipped")
        else:
            with MosquittoBroker(tmp / "broker") as broker:
                bridge_ms, naive_ms = await mqtt_latency(broker.port, args.latency_events, args.rate)
                latencies += [
                    ("baseline: aiomqtt publish -> subscriber (qos1)", naive_ms),
                    ("MQTT: publish_event -> subscriber (qos1)", bridge_ms),
                ]
                await bench_mqtt_rates(broker.port, args)
        print(f"\n== end-to-end latency, {args.latency_events} events at {args.rate:g}/s (ms) ==")
        table(
            ["path", "p50", "p90", "p99", "max"],
            [[name, pct(v, 50), pct(v, 90), pct(v, 99), max(v)] for name, v in latencies],
            [48, 7, 7, 7, 7],
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--events", type=int, default=2000, help="events for the 1-subscription run (20: a fifth)"
    )
    ap.add_argument("--receiver-procs", type=int, default=4)
    ap.add_argument("--mqtt-msgs", type=int, default=20000)
    ap.add_argument("--latency-events", type=int, default=300)
    ap.add_argument("--rate", type=float, default=50.0, help="events/s for the latency runs")
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
