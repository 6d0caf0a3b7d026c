"""MQTT durability against a real mosquitto: the QoS1/2 queue survives bridge restarts (a clean stop and a
SIGKILL, each in its own process) while the broker is down, and arrives once and in order when it is back; a
zone set over an MQTT command is stored like a REST edit (in GET /config/zones, after a restart too)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from integration_samples import detected
from litestar.testing import AsyncTestClient
from mqtt_broker import Collector, MosquittoBroker, bridge_config, run_async

from wdp.engine import Bus, Engine
from wdp.integrations.mqtt import MqttBridge
from wdp.integrations.mqtt.spool import MessageSpool
from wdp.schemas import EVENT_JSON
from wdp.serve import create_app, load_settings
from wdp.serve.engine_adapter import EngineAdapter
from wdp.serve.integrations_plugin import IntegrationsPlugin
from wdp.store import Store

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.timeout(90)


def _child(port: int, queue: Path, first: int, n: int, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HERE / "_mqtt_spool_child.py"), str(port), str(queue), str(first), str(n), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_queue_survives_bridge_restarts_while_the_broker_is_down(broker: MosquittoBroker, tmp_path: Path) -> None:
    queue = tmp_path / "state" / "mqtt-queue.sqlite3"
    broker.stop()
    stopped = _child(broker.port, queue, 0, 30, "stop")  # queues 0..29, stops cleanly (nothing acknowledged)
    try:
        out = stopped.communicate(timeout=60)[0]
    finally:
        stopped.kill()  # a no-op once it has exited
    assert stopped.returncode == 0 and "spooled" in out, out
    killed = _child(broker.port, queue, 30, 30, "kill")  # restores 0..29, queues 30..59, then dies hard
    assert killed.stdout is not None
    line = killed.stdout.readline()
    killed.send_signal(signal.SIGKILL)
    killed.wait(10)
    rest = killed.stdout.read()
    killed.stdout.close()
    assert line.strip() == "spooled", line + rest
    broker.start()

    async def scenario() -> tuple[list[int], Any]:
        async with Collector(broker.port, "wdp/events/#", qos=1, client_id="sub") as sub:
            bridge = MqttBridge(bridge_config(broker.port, discovery=False, queue_path=str(queue)))
            async with bridge:
                await bridge.wait_connected(10)
                assert await bridge.flush(20)
                await sub.wait_for(lambda ms: len(ms) >= 60, timeout=10)
                stats = bridge.stats
        return [EVENT_JSON.decode(m.payload).track_id for m in sub.messages], stats  # type: ignore[union-attr]

    ids, stats = run_async(scenario(), timeout=60)
    assert ids == list(range(60))  # every queued message, once, in publish order
    assert stats.restored == 60 and stats.restored_dropped == 0
    assert stats.published[1] >= 60
    assert MessageSpool(queue).load() == []  # acknowledged: off the durable queue


def test_restored_queue_over_the_bound_drops_the_oldest(tmp_path: Path) -> None:
    queue = tmp_path / "q.sqlite3"

    async def fill() -> None:
        async with MqttBridge(bridge_config(1, discovery=False, queue_path=str(queue))) as bridge:
            assert all(bridge.publish_event(detected(i)) for i in range(8))

    async def reopen() -> tuple[Any, list[int]]:
        bridge = MqttBridge(bridge_config(1, discovery=False, queue_path=str(queue), max_queued=5))
        return bridge.stats, [EVENT_JSON.decode(m.payload).track_id for m in bridge._queue]  # type: ignore[union-attr]

    run_async(fill())
    stats, queued = run_async(reopen())
    assert stats.restored == 5 and stats.restored_dropped == 3 and queued == [3, 4, 5, 6, 7]


def _no_engine(bus: Bus) -> Engine:
    raise AssertionError("this test never starts the engine")


def _settings() -> Any:
    secret = "test-secret-0123456789abcdef0123456789abcdef"
    fast = {"argon2_time_cost": 1, "argon2_memory_kib": 8192, "argon2_parallelism": 1}
    return load_settings({"auth": {"jwt": {"secret": secret}, **fast}}, env={})


def test_zone_set_over_mqtt_is_stored_like_a_rest_edit(broker: MosquittoBroker, tmp_path: Path) -> None:
    db = tmp_path / "h.duckdb"
    mqtt = {
        "enabled": True,
        "host": "127.0.0.1",
        "port": broker.port,
        "client_id": "wdp-zones",
        "discovery": False,
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.4,
    }
    polygon = [[0.0, 0.0], [4.0, 0.0], [4.0, 3.0], [0.0, 3.0]]

    async def zones_listed(app: Any, client: AsyncTestClient[Any]) -> list[dict[str, Any]]:
        token = app.state["services"].tokens.issue("alice", ["config:write"])[0]
        r = await client.get("/api/v1/config/zones", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    async def first_run() -> dict[str, Any]:
        adapter = EngineAdapter(_no_engine)
        plugin = IntegrationsPlugin(adapter, Store(db), mqtt=mqtt)
        app = create_app(_settings(), engine_view=adapter, store=plugin.store, plugins=[plugin])
        async with AsyncTestClient(app) as client:
            while plugin.bridge is None or not plugin.bridge.connected:
                await asyncio.sleep(0.02)
            async with aiomqtt.Client("127.0.0.1", broker.port, identifier="commander") as c:
                await c.subscribe("wdp/response/#", qos=1)
                body = {"correlation_id": "z-1", "configuration": {"name": "Kitchen", "polygon": polygon}}
                await c.publish("wdp/command/zone/kitchen/configure", json.dumps(body), qos=1)
                async for msg in c.messages:
                    response = json.loads(msg.payload)  # type: ignore[arg-type]
                    break
            assert [z["id"] for z in await zones_listed(app, client)] == ["kitchen"]
            assert [z.id for z in adapter.zones()] == ["kitchen"]  # live in the engine too
        return response  # type: ignore[no-any-return]

    async def after_restart() -> tuple[list[dict[str, Any]], list[str]]:
        adapter = EngineAdapter(_no_engine)
        app = create_app(_settings(), engine_view=adapter, store=Store(db))
        async with AsyncTestClient(app) as client:
            return await zones_listed(app, client), [z.id for z in adapter.zones()]

    response = run_async(first_run(), timeout=60)
    assert response["status"] == "ok" and response["correlation_id"] == "z-1", response
    listed, live = run_async(after_restart(), timeout=60)
    assert [(z["id"], z["name"]) for z in listed] == [("kitchen", "Kitchen")]
    assert live == ["kitchen"]  # the restarted server hands the stored zone to the engine
