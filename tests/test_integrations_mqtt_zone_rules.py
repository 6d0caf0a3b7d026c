"""Zone changes over MQTT (command/zone/{id}/configure) obey the REST API's zone rule (issue 12, item 11):
bounded numbers, polygons with an area, no control or bidi characters in names. Real mosquitto; the handler
merges each patch with ``ZonePatch.apply``, as the served app's zone command handler does, and records the zone
sets it would hand the engine."""

from __future__ import annotations

import json
from typing import Any

import aiomqtt
import pytest
from integration_samples import zone
from mqtt_broker import MosquittoBroker, bridge_config, run_async

from wdp.integrations.mqtt import CommandHandlers, MqttBridge
from wdp.integrations.mqtt.commands import ZonePatch
from wdp.schemas import Zone

pytestmark = pytest.mark.timeout(60)
SQUARE = [[0, 0], [2, 0], [2, 2], [0, 2]]


class ZoneSetRecorder:
    """The live zone set, changed only through ZonePatch.apply (the rule every zone command goes through)."""

    def __init__(self) -> None:
        self.current: list[Zone] = [zone("kitchen")]
        self.sets: list[list[Zone]] = []

    def configure_zone(self, zone_id: str, patch: ZonePatch) -> Zone:
        zones = {z.id: z for z in self.current}
        zones[zone_id] = patch.apply(zone_id, zones.get(zone_id))
        self.current = list(zones.values())
        self.sets.append(self.current)
        return zones[zone_id]


async def _request(client: aiomqtt.Client, topic: str, payload: dict[str, Any]) -> dict[str, Any]:
    response_topic = topic.replace("/command/", "/response/", 1)
    await client.publish(topic, json.dumps(payload), qos=1)
    async for m in client.messages:
        if m.topic.value == response_topic:
            return json.loads(m.payload)  # type: ignore[arg-type]
    raise AssertionError("no response")


def test_zone_commands_are_held_to_the_rest_zone_rule(broker: MosquittoBroker) -> None:
    adapter = ZoneSetRecorder()
    bad = [
        ("kitchen", {"max_occupancy": 2**70}, "<= 10000"),
        ("kitchen", {"max_occupancy": -1}, ">= 0"),
        ("kitchen", {"name": "abc\u202efed"}, "U+202E"),
        ("kitchen", {"name": "two\nlines"}, "U+000A"),
        ("kitchen", {"name": "x" * 129}, "length <= 128"),
        ("kitchen", {"polygon": [[0, 0], [1e300, 0], [0, 1]]}, "<= 10000"),
        ("kitchen", {"polygon": [[i, i % 2] for i in range(300)]}, "length <= 257"),
        ("kitchen", {"polygon": [[0, 0], [1, 1], [2, 2]]}, "no area"),
        ("kitchen", {"alerts": {"cooldown_s": 1e300}}, "<="),
        ("hall", {"name": "Hall"}, "give a polygon"),
    ]

    async def scenario() -> None:
        async with MqttBridge(
            bridge_config(broker.port, discovery=False), handlers=CommandHandlers(configure_zone=adapter.configure_zone)
        ) as bridge:
            await bridge.wait_connected(5)
            async with aiomqtt.Client("127.0.0.1", broker.port, identifier="operator") as op:
                await op.subscribe("wdp/response/#", qos=1)
                for i, (zone_id, configuration, reason) in enumerate(bad):
                    cid = f"bad-{i}"
                    body = {"correlation_id": cid, "configuration": configuration}
                    r = await _request(op, f"wdp/command/zone/{zone_id}/configure", body)
                    assert r["status"] == "error" and r["correlation_id"] == cid, (configuration, r)
                    assert reason in r["error"], (configuration, r["error"])
                assert adapter.sets == []  # the engine never saw any of them
                body = {"correlation_id": "ok", "configuration": {"name": "Hall 👩\u200d🍳", "polygon": SQUARE}}
                r = await _request(op, "wdp/command/zone/hall/configure", body)
                assert r["status"] == "ok", r
                assert [z.id for z in adapter.current] == ["kitchen", "hall"]

    run_async(scenario())
