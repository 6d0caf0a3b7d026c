"""``python -m wdp.fleet hub --store DSN --host H --port P --client-id ID [--webhooks]``: one hub process
(consumer + optional webhook delivery) until SIGTERM/SIGINT. Prints ``ready`` once subscribed and a JSON line
of its stats at exit. ``wdp serve role=hub`` runs the same pieces from the serve config."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from dataclasses import asdict

from wdp.fleet.hub import FleetHub, FleetHubConfig
from wdp.store.postgres import open_store


async def run_hub(args: argparse.Namespace) -> int:
    from wdp.integrations.webhooks import WebhookDispatcher, WebhookSettings

    store = open_store(args.store).open()
    hub = FleetHub(
        FleetHubConfig(host=args.host, port=args.port, client_id=args.client_id, root=args.root, group=args.group),
        store,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    dispatcher = None
    try:
        hub.start()
        if not await asyncio.to_thread(hub.wait_connected, 10.0):
            print("broker not reachable", file=sys.stderr)
            return 1
        if args.webhooks:
            settings = WebhookSettings(
                poll_interval_s=0.05,
                allowed_networks=["127.0.0.0/8"],
                lease_s=10,
                total_timeout_s=5,
                report_linger_s=0.0,  # record each outcome at once: a hub killed after a 2xx repeats fewer
            )
            dispatcher = await WebhookDispatcher(store, settings).start()
        print("ready", flush=True)
        while not stop.is_set():
            if args.stats_file:  # progress for benchmarks: counters rewritten twice a second
                counters = {k: v for k, v in asdict(hub.stats).items() if k != "latencies_ms"}
                tmp = f"{args.stats_file}.tmp"
                with open(tmp, "w") as f:
                    json.dump(counters, f)
                os.replace(tmp, args.stats_file)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
    finally:
        if dispatcher is not None:
            await dispatcher.stop()
        await asyncio.to_thread(hub.stop)
        store.close()
    stats: dict[str, object] = asdict(hub.stats)
    lat = sorted(stats.pop("latencies_ms"))  # type: ignore[arg-type]
    if lat:
        stats["latency_ms_p50"] = round(lat[len(lat) // 2], 2)
        stats["latency_ms_p99"] = round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 2)
    print(json.dumps(stats), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wdp.fleet")
    sub = parser.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("hub", help="consume the fleet's messages into the store")
    h.add_argument("--store", required=True, help="postgresql:// DSN (or a DuckDB file for a single hub)")
    h.add_argument("--host", default="127.0.0.1")
    h.add_argument("--port", type=int, default=1883)
    h.add_argument("--client-id", default="wdp-hub")
    h.add_argument("--root", default="wdp/fleet")
    h.add_argument("--group", default="wdp-hubs")
    h.add_argument("--webhooks", action="store_true", help="also deliver the outbox's webhooks")
    h.add_argument("--stats-file", default=None, help="rewrite this JSON file with the hub's counters every 0.5 s")
    args = parser.parse_args(argv)
    return asyncio.run(run_hub(args))


if __name__ == "__main__":
    raise SystemExit(main())
