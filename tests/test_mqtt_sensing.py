"""Training-free sensing over MQTT against a real mosquitto: SensingStates become retained
sensing/{router|zone}/{id}/state messages, sensing events go out on events/{type}, and each router and zone gets
Home Assistant entities (motion, occupancy, breathing rate, motion score) whose templates, rendered with jinja2
on the payloads the broker retained, give what Home Assistant needs (ON/OFF, a number, or "None" = unknown).
The served plugin is checked too: states published on the engine adapter's bus reach the broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import types
import uuid

import aiomqtt
import jinja2
import msgspec
import pytest
from mqtt_broker import Collector, MosquittoBroker, Received, bridge_config, run_async

from wdp.engine import Topic
from wdp.integrations.mqtt import MqttBridge
from wdp.integrations.mqtt.config import topic_id
from wdp.schemas import (
    EVENT_JSON,
    BreathingUpdated,
    MotionStarted,
    MotionStopped,
    PresenceChanged,
    SensingState,
    Zone,
)

pytestmark = pytest.mark.timeout(60)
T0 = 1_750_000_000.0
HA = "homeassistant"


def state(t: float, *, router: str | None = None, zone: str | None = None, **kw) -> SensingState:  # type: ignore[no-untyped-def]
    fields = dict(
        motion=False,
        motion_score=0.9,
        threshold=3.0,
        presence=False,
        calibration="auto",
        packet_rate=100.0,
        source="simulator",
    )
    return SensingState(timestamp=T0 + t, router_id=router, zone_id=zone, **(fields | kw))


async def retained(port: int, topic_filter: str) -> dict[str, Received]:
    """Every message the broker retains under ``topic_filter`` now. The broker queues them when the filter is
    subscribed; a marker published to a second subscribed topic afterwards arrives behind them, so reading up
    to the marker reads them all (no settle time)."""
    marker = f"test-sync/{uuid.uuid4().hex}"
    got: dict[str, Received] = {}
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"retained-{uuid.uuid4().hex[:8]}") as client:
        await client.subscribe(marker, qos=2)
        await client.subscribe(topic_filter, qos=2)
        await client.publish(marker, b"sync", qos=2)
        async for m in client.messages:
            if m.topic.value == marker:
                break
            if m.retain:
                payload = m.payload if isinstance(m.payload, bytes) else str(m.payload).encode()
                got[m.topic.value] = Received(m.topic.value, payload, m.qos, m.retain)
    return got


def render(template: str, payload: bytes) -> str:
    """What Home Assistant does with value_template: jinja2 over the JSON payload (value_json)."""
    return jinja2.Template(template).render(value_json=json.loads(payload)).strip()


def test_sensing_states_are_retained_per_router_and_zone(broker: MosquittoBroker) -> None:
    async def scenario() -> None:
        async with MqttBridge(bridge_config(broker.port, discovery=False)) as bridge:
            await bridge.wait_connected(20)
            async with Collector(broker.port, "wdp/sensing/#", client_id="live") as live:
                bridge.publish_sensing(state(1, router="sim-0"))
                bridge.publish_sensing(state(1, router="sim-1", zone="kitchen"))  # a link inside a zone
                bridge.publish_sensing(state(1, zone="kitchen", motion=True, motion_score=7.5, presence=True))
                bridge.publish_sensing(state(2, router="sim-0", motion=True, motion_score=5.0, presence=True))
                assert await bridge.flush(20)
                await live.wait_for(lambda ms: {"wdp/sensing/zone/kitchen/state"} <= {m.topic for m in ms}, 20)
            assert {m.qos for m in live.messages} == {1}
            got = await retained(broker.port, "wdp/sensing/#")
            assert set(got) == {
                "wdp/sensing/router/sim-0/state",
                "wdp/sensing/router/sim-1/state",
                "wdp/sensing/zone/kitchen/state",
            }
            assert all(m.retain and m.qos == 1 for m in got.values())
            # the retained value is the latest state, the SensingState JSON as it is
            sim0 = json.loads(got["wdp/sensing/router/sim-0/state"].payload)
            assert sim0["timestamp"] == T0 + 2 and sim0["motion"] is True and sim0["motion_score"] == 5.0
            assert sim0["router_id"] == "sim-0" and sim0["zone_id"] is None and sim0["threshold"] == 3.0
            kitchen = msgspec.json.decode(got["wdp/sensing/zone/kitchen/state"].payload, type=SensingState)
            assert kitchen == state(1, zone="kitchen", motion=True, motion_score=7.5, presence=True)
            link = json.loads(got["wdp/sensing/router/sim-1/state"].payload)
            assert link["router_id"] == "sim-1" and link["zone_id"] == "kitchen"

    run_async(scenario())


def test_sensing_events_go_to_event_topics(broker: MosquittoBroker) -> None:
    events = [
        MotionStarted(timestamp=T0 + 1, motion_score=6.2, router_id="sim-0"),
        PresenceChanged(timestamp=T0 + 1, presence=True, zone_id="kitchen"),
        MotionStopped(timestamp=T0 + 9, duration_s=8.0, router_id="sim-0"),
        BreathingUpdated(timestamp=T0 + 40, breathing_bpm=14.5, confidence=0.8, router_id="sim-0", zone_id="kitchen"),
    ]

    async def scenario() -> None:
        async with MqttBridge(bridge_config(broker.port, discovery=False)) as bridge:
            await bridge.wait_connected(20)
            async with Collector(broker.port, "wdp/#", client_id="events") as c:
                for event in events:
                    assert bridge.publish_event(event)
                assert await bridge.flush(20)
                await c.wait_for(lambda ms: len([m for m in ms if "/events/" in m.topic]) == len(events), 20)
            on_topics = [m for m in c.messages if "/events/" in m.topic]
            assert [m.topic for m in on_topics] == [
                "wdp/events/motion.started",
                "wdp/events/presence.changed",
                "wdp/events/motion.stopped",
                "wdp/events/breathing.updated",
            ]
            assert all(m.qos == 1 and not m.retain for m in on_topics)
            assert [EVENT_JSON.decode(m.payload) for m in on_topics] == events
            # not alerts: nothing on system/alerts/...
            assert not [m for m in c.messages if "/alerts/" in m.topic]

    run_async(scenario())


def test_home_assistant_sensing_entities(broker: MosquittoBroker) -> None:
    async def scenario() -> None:
        cfg = bridge_config(broker.port, node_id="house1", sensing_expire_after_s=20)
        async with MqttBridge(cfg) as bridge:
            bridge.set_zones([Zone(id="kitchen", name="Kitchen", polygon=[(0, 0), (3, 0), (3, 3)])])
            bridge.set_sensing_zones(["kitchen"])  # the sensing stage's zones (sensing.zones)
            await bridge.wait_connected(20)
            bridge.publish_sensing(state(1, router="sim-0", calibration="calibrating"))
            assert await bridge.flush(20)
            configs = {t: json.loads(m.payload) for t, m in (await retained(broker.port, f"{HA}/#")).items()}
            sensing = {t: c for t, c in configs.items() if "/sensing_" in t}
            per = {
                kind: {
                    f"{HA}/binary_sensor/house1/sensing_{kind}_{ident}_motion/config",
                    f"{HA}/binary_sensor/house1/sensing_{kind}_{ident}_presence/config",
                    f"{HA}/sensor/house1/sensing_{kind}_{ident}_breathing_rate/config",
                    f"{HA}/sensor/house1/sensing_{kind}_{ident}_motion_score/config",
                }
                for kind, ident in (("router", "sim-0"), ("zone", "kitchen"))
            }
            # the router announced with its first state, the sensing zone before any state
            assert set(sensing) == per["router"] | per["zone"]
            unique = {c["unique_id"] for c in configs.values()}
            assert len(unique) == len(configs)  # no clash with the existing entities either
            for c in sensing.values():
                assert c["device"]["identifiers"] == ["wdp_house1"]  # the one wdp device
                # an empty (clearing) payload is not JSON: the template renders nothing, Home Assistant ignores it
                assert jinja2.Template(c["value_template"]).render() == ""
                (avail,) = c["availability"]
                assert avail["topic"] == "wdp/system/status" and avail["payload_available"] == "online"
                assert c["expire_after"] == 20
            router = {
                what: sensing[f"{HA}/{component}/house1/sensing_router_sim-0_{what}/config"]
                for component, what in (
                    ("binary_sensor", "motion"),
                    ("binary_sensor", "presence"),
                    ("sensor", "breathing_rate"),
                    ("sensor", "motion_score"),
                )
            }
            assert router["motion"]["unique_id"] == "house1_sensing_router_sim-0_motion"
            assert router["motion"]["device_class"] == "motion"
            assert router["presence"]["device_class"] == "occupancy"
            for c in (router["motion"], router["presence"]):
                assert (c["payload_on"], c["payload_off"]) == ("ON", "OFF")
            assert router["breathing_rate"]["unit_of_measurement"] == "breaths/min"
            assert router["breathing_rate"]["state_class"] == "measurement"
            assert router["motion_score"]["state_class"] == "measurement"
            assert router["motion"]["name"] == "Router sim-0 motion"
            kitchen_motion = sensing[f"{HA}/binary_sensor/house1/sensing_zone_kitchen_motion/config"]
            assert kitchen_motion["name"] == "Kitchen motion"
            assert kitchen_motion["state_topic"] == "wdp/sensing/zone/kitchen/state"
            assert {c["state_topic"] for c in router.values()} == {"wdp/sensing/router/sim-0/state"}

            async def rendered(entity: dict) -> str:
                got = await retained(broker.port, entity["state_topic"])
                return render(entity["value_template"], got[entity["state_topic"]].payload)

            # calibrating: nothing can be told yet -> "None" (Home Assistant: unknown), not OFF
            assert await rendered(router["motion"]) == "None"
            assert await rendered(router["presence"]) == "None"
            assert await rendered(router["motion_score"]) == "None"
            assert await rendered(router["breathing_rate"]) == "None"

            # someone walks in
            bridge.publish_sensing(state(2, router="sim-0", motion=True, motion_score=6.5, presence=True))
            bridge.publish_sensing(state(2, zone="kitchen", motion=True, motion_score=6.5, presence=True))
            assert await bridge.flush(20)
            assert await rendered(router["motion"]) == "ON"
            assert await rendered(router["presence"]) == "ON"
            assert float(await rendered(router["motion_score"])) == 6.5
            assert await rendered(router["breathing_rate"]) == "None"
            assert await rendered(kitchen_motion) == "ON"

            # ... and sits still, breathing
            bridge.publish_sensing(
                state(60, router="sim-0", motion_score=1.1, presence=True, still=True, breathing_bpm=14.2)
            )
            assert await bridge.flush(20)
            assert await rendered(router["motion"]) == "OFF"
            assert await rendered(router["presence"]) == "ON"
            assert float(await rendered(router["breathing_rate"])) == 14.2

            # the room empties
            bridge.publish_sensing(state(90, router="sim-0", motion_score=0.8))
            assert await bridge.flush(20)
            assert await rendered(router["presence"]) == "OFF"
            assert await rendered(router["motion"]) == "OFF"

            # the zone is removed but still sensed: its sensing entities stay, named by its id
            bridge.set_zones([])
            assert await bridge.flush(20)
            renamed = await retained(broker.port, f"{HA}/binary_sensor/house1/sensing_zone_kitchen_motion/config")
            assert json.loads(next(iter(renamed.values())).payload)["name"] == "kitchen motion"
            # no longer sensed: its sensing configs and retained state are deleted, the router's stay
            bridge.set_sensing_zones([])
            assert await bridge.flush(20)
            left = set(await retained(broker.port, f"{HA}/#"))
            assert not per["zone"] & left and per["router"] <= left
            assert set(await retained(broker.port, "wdp/sensing/#")) == {"wdp/sensing/router/sim-0/state"}

    run_async(scenario())


def test_router_ids_that_are_not_topic_levels() -> None:
    assert topic_id("sim-0") == "sim-0"
    a, b = topic_id("udp-192.168.1.5:5500"), topic_id("udp-192.168.1.5_5500")
    assert a.startswith("udp-192.168.1.5_5500-") and b == "udp-192.168.1.5_5500" and a != b
    assert "/" not in topic_id("/dev/ttyUSB0") and "+" not in topic_id("a+b#")
    assert len(topic_id("x" * 200 + ":")) <= 64


def test_unsafe_router_id_gets_a_safe_topic(broker: MosquittoBroker) -> None:
    async def scenario() -> None:
        async with MqttBridge(bridge_config(broker.port, node_id="n")) as bridge:
            await bridge.wait_connected(20)
            bridge.publish_sensing(state(1, router="udp-10.0.0.7:5500", motion=True, motion_score=4.0))
            assert await bridge.flush(20)
            seg = topic_id("udp-10.0.0.7:5500")
            got = await retained(broker.port, "wdp/sensing/#")
            assert set(got) == {f"wdp/sensing/router/{seg}/state"}
            assert json.loads(got[f"wdp/sensing/router/{seg}/state"].payload)["router_id"] == "udp-10.0.0.7:5500"
            configs = await retained(broker.port, f"{HA}/#")
            motion = json.loads(configs[f"{HA}/binary_sensor/n/sensing_router_{seg}_motion/config"].payload)
            assert motion["name"] == "Router udp-10.0.0.7:5500 motion"

    run_async(scenario())


def test_sensing_can_be_turned_off(broker: MosquittoBroker) -> None:
    async def scenario() -> None:
        async with MqttBridge(bridge_config(broker.port, sensing=False)) as bridge:
            bridge.set_zones(["kitchen"])
            bridge.set_sensing_zones(["kitchen"])
            await bridge.wait_connected(20)
            bridge.publish_sensing(state(1, router="sim-0"))
            assert await bridge.flush(20)
            assert not await retained(broker.port, "wdp/sensing/#")
            assert not [t for t in await retained(broker.port, f"{HA}/#") if "sensing_" in t]

    run_async(scenario())


def test_served_plugin_publishes_sensing_from_the_engine_bus(broker: MosquittoBroker) -> None:
    """The serve integration: the bridge follows Topic.SENSING on the engine adapter's bus (no engine runs)."""
    from wdp.serve.engine_adapter import EngineAdapter
    from wdp.serve.integrations_plugin import IntegrationsPlugin

    def no_engine(bus):  # type: ignore[no-untyped-def]
        raise AssertionError("the engine is not started in this test")

    async def scenario() -> None:
        adapter = EngineAdapter(no_engine)
        mqtt = {
            "enabled": True,
            "host": "127.0.0.1",
            "port": broker.port,
            "client_id": f"serve-{uuid.uuid4().hex[:6]}",
            "reconnect_min_s": 0.05,
            "queue_path": "",  # the offline queue in memory: this test has no store
        }
        plugin = IntegrationsPlugin(adapter, None, mqtt=mqtt, webhooks={"enabled": False})
        # the lifespan reads the app's services (zone commands persist through them; none is sent here)
        app = types.SimpleNamespace(state={"services": types.SimpleNamespace(store=None)})
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(plugin.lifespan(app))  # type: ignore[arg-type]
            assert plugin.bridge is not None
            await plugin.bridge.wait_connected(20)
            async with Collector(broker.port, "wdp/#", client_id="served") as c:
                # the pump subscribes as its task starts: publish until the first state comes through
                while not c.on("sensing/router/sim-0/state"):
                    adapter.bus.publish(Topic.SENSING, state(1, router="sim-0", motion=True, motion_score=5.0))
                    await asyncio.sleep(0.05)
                adapter.bus.publish(Topic.SENSING, state(2, zone="hall", presence=True))
                adapter.bus.publish(Topic.EVENT, MotionStarted(timestamp=T0 + 2, motion_score=5.0, router_id="sim-0"))
                await c.wait_for(lambda ms: any(m.topic.endswith("events/motion.started") for m in ms), 20)
                await c.wait_for(lambda ms: any(m.topic == "wdp/sensing/zone/hall/state" for m in ms), 20)
            assert json.loads(c.on("sensing/router/sim-0/state")[-1].payload)["motion"] is True
            configs = await retained(broker.port, f"{HA}/#")
            assert f"{HA}/binary_sensor/wdp/sensing_zone_hall_presence/config" in configs

    run_async(scenario())


def test_sensing_zone_is_announced_once_under_its_zone_name(broker: MosquittoBroker) -> None:
    """Home Assistant keeps the first name an entity was announced with in its registry (the device page shows
    it even after a rename): a sensing zone is announced only once the zone set (and so its name) is known."""

    async def scenario() -> None:
        async with Collector(broker.port, f"{HA}/+/wdp/+/config", client_id="ha") as ha:
            async with MqttBridge(bridge_config(broker.port)) as bridge:
                bridge.set_sensing_zones(["desk", "room"])  # told before the zones (as `wdp serve` may be)
                await bridge.wait_connected(20)
                assert await bridge.flush(20)
                bridge.set_zones([Zone(id="desk", name="Desk", polygon=[(0, 0), (3, 0), (3, 3)])])
                assert await bridge.flush(20)
                motion = {z: f"{HA}/binary_sensor/wdp/sensing_zone_{z}_motion/config" for z in ("desk", "room")}
                await ha.wait_for(lambda ms: {m.topic for m in ms} >= set(motion.values()))
            names = {z: [json.loads(m.payload)["name"] for m in ha.messages if m.topic == t] for z, t in motion.items()}
            assert names == {"desk": ["Desk motion"], "room": ["room motion"]}

    run_async(scenario())
