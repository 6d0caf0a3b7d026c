"""MQTT bridge against a real mosquitto (started per test on a free 127.0.0.1 port): topic tree with QoS and
retain, commands and their responses, invalid commands, queueing across a broker restart without losing a
QoS1 event, drop-oldest for pose/current, Home Assistant discovery, last will, TLS + password auth."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import aiomqtt
import jinja2
import msgspec
import pytest
from integration_samples import detected, fall, frame, person, zone
from mqtt_broker import MOSQUITTO, Collector, MosquittoBroker, bridge_config, free_port, retained, run_async
from tls_certs import make_certs

from wdp.integrations.mqtt import CommandHandlers, CommandProcessor, MqttBridge, TlsConfig, Topics
from wdp.integrations.mqtt.commands import ZonePatch
from wdp.schemas import EVENT_JSON, PersonDetected

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.timeout(60)


# ---------------------------------------------------------------------------------------------- topics


def test_topic_tree_qos_retain_and_payloads(broker: MosquittoBroker) -> None:
    async def scenario() -> None:
        async with MqttBridge(bridge_config(broker.port, discovery=False)) as bridge:
            await bridge.wait_connected(5)
            async with Collector(broker.port, "wdp/#", client_id="live") as live:
                bridge.publish_frame(frame(1, [person(7, ["kitchen"]), person(8)]))
                assert bridge.publish_event(fall(7))
                assert bridge.publish_event(detected(3))
                assert await bridge.flush(5)
                expected = {
                    "wdp/events/person.detected",
                    "wdp/system/alerts/fall_detected",
                    "wdp/pose/current",
                    "wdp/events/person.fall_detected",
                    "wdp/pose/person/8/update",
                }
                await live.wait_for(lambda ms: expected <= {m.topic for m in ms if not m.retain})
                fresh = {m.topic: m for m in live.messages if not m.retain}
            # live QoS = publish QoS (the collector subscribed at 2)
            assert fresh["wdp/pose/current"].qos == 0
            assert fresh["wdp/pose/person/7/update"].qos == 1
            assert fresh["wdp/pose/person/8/update"].qos == 1
            assert fresh["wdp/pose/zone/kitchen/occupancy"].qos == 1
            assert fresh["wdp/system/alerts/fall_detected"].qos == 2
            assert fresh["wdp/events/person.fall_detected"].qos == 1
            assert fresh["wdp/events/person.detected"].qos == 1

            current = json.loads(fresh["wdp/pose/current"].payload)
            assert current["person_count"] == 2 and current["frame_id"] == 1 and current["source"] == "simulator"
            assert current["persons"][0]["track_id"] == 7 and current["persons"][0]["keypoints_detected"] == 12
            update = json.loads(fresh["wdp/pose/person/7/update"].payload)
            assert len(update["person"]["keypoints"]) == 17 and update["person"]["zone_ids"] == ["kitchen"]
            alert = json.loads(fresh["wdp/system/alerts/fall_detected"].payload)
            assert alert["event_type"] == "person.fall_detected" and alert["severity"] == "high"
            assert alert["event"]["track_id"] == 7
            event = EVENT_JSON.decode(fresh["wdp/events/person.detected"].payload)
            assert event == detected(3)

            # retained: exactly the state topics, with their QoS
            state = await retained(broker.port, "wdp/#")
            assert set(state) == {"wdp/pose/current", "wdp/pose/zone/kitchen/occupancy", "wdp/system/status"}
            assert state["wdp/pose/current"].qos == 0
            assert state["wdp/pose/zone/kitchen/occupancy"].qos == 1
            assert state["wdp/system/status"].qos == 1
            occ = json.loads(state["wdp/pose/zone/kitchen/occupancy"].payload)
            assert occ["occupancy_count"] == 1 and occ["person_ids"] == [7]
            assert json.loads(state["wdp/system/status"].payload)["availability"] == "online"

            # person 7 leaves the kitchen: retained occupancy goes to 0 (not left at the last non-zero count)
            bridge.publish_frame(frame(2, [person(8)]))
            assert await bridge.flush(5)
            state = await retained(broker.port, "wdp/pose/#")
            assert json.loads(state["wdp/pose/zone/kitchen/occupancy"].payload)["occupancy_count"] == 0
            assert json.loads(state["wdp/pose/current"].payload)["frame_id"] == 2

    run_async(scenario())


def test_prefix_is_configurable(broker: MosquittoBroker) -> None:
    async def scenario() -> None:
        async with MqttBridge(bridge_config(broker.port, prefix="site/a", discovery=False)) as bridge:
            await bridge.wait_connected(5)
            bridge.publish_frame(frame(1))
            assert await bridge.flush(5)
            state = await retained(broker.port, "#")
            assert {"site/a/pose/current", "site/a/system/status"} <= set(state)
            assert not any(t.startswith("wdp/") for t in state)

    run_async(scenario())


# ---------------------------------------------------------------------------------------------- commands


class FakeEngine:
    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.running = False

    def configure_zone(self, zone_id: str, patch: ZonePatch) -> dict:
        if zone_id == "explode":
            raise RuntimeError("zone store unavailable")
        self.calls.append(("configure", zone_id, patch.changes()))
        z = msgspec.structs.replace(zone(zone_id), **patch.changes())
        return msgspec.to_builtins(z)

    async def start(self) -> dict:
        await asyncio.sleep(0)
        self.running = True
        self.calls.append(("start",))
        return {"state": "running"}

    def stop(self, reason: str) -> dict:
        self.running = False
        self.calls.append(("stop", reason))
        return {"state": "stopped"}

    def handlers(self) -> CommandHandlers:
        return CommandHandlers(configure_zone=self.configure_zone, start=self.start, stop=self.stop)  # no status


async def _request(client: aiomqtt.Client, topic: str, payload: bytes | str) -> dict:
    """Publish a command and return the next response on the matching response topic."""
    response_topic = topic.replace("/command/", "/response/", 1)
    await client.publish(topic, payload, qos=2)
    async for m in client.messages:
        if m.topic.value == response_topic:
            return json.loads(m.payload)  # type: ignore[arg-type]
    raise AssertionError("no response")


def test_command_round_trips_with_correlation_id(broker: MosquittoBroker) -> None:
    engine = FakeEngine()

    async def scenario() -> None:
        async with MqttBridge(bridge_config(broker.port), handlers=engine.handlers()) as bridge:
            await bridge.wait_connected(5)
            async with aiomqtt.Client("127.0.0.1", broker.port, identifier="operator") as op:
                await op.subscribe("wdp/response/#", qos=1)
                body = {
                    "correlation_id": "c-1",
                    "configuration": {
                        "max_occupancy": 2,
                        "restricted": True,
                        "polygon": [[0, 0], [1, 0], [1, 1]],
                    },
                }
                r = await _request(op, "wdp/command/zone/kitchen/configure", json.dumps(body))
                assert r["status"] == "ok" and r["correlation_id"] == "c-1" and r["command"] == "zone.configure"
                assert r["target"] == "kitchen"
                assert r["result"]["max_occupancy"] == 2 and r["result"]["restricted"] is True
                assert r["result"]["polygon"] == [[0, 0], [1, 0], [1, 1]]
                assert engine.calls[-1] == (
                    "configure",
                    "kitchen",
                    {"polygon": [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0)], "max_occupancy": 2, "restricted": True},
                )
                r = await _request(op, "wdp/command/system/start", b"")  # empty payload == {}
                assert r == {
                    **r,
                    "status": "ok",
                    "command": "system.start",
                    "correlation_id": None,
                    "result": {"state": "running"},
                }
                assert engine.running
                r = await _request(
                    op,
                    "wdp/command/system/stop",
                    json.dumps({"correlation_id": "c-3", "reason": "maintenance"}),
                )
                assert r["status"] == "ok" and r["correlation_id"] == "c-3" and not engine.running
                assert engine.calls[-1] == ("stop", "maintenance")
            assert bridge.stats.commands_ok == 3 and bridge.stats.commands_error == 0

    run_async(scenario())


def test_invalid_commands_get_error_responses_and_never_crash(broker: MosquittoBroker) -> None:
    engine = FakeEngine()

    async def scenario() -> None:
        cfg = bridge_config(broker.port, max_command_bytes=1024)
        async with MqttBridge(cfg, handlers=engine.handlers()) as bridge:
            await bridge.wait_connected(5)
            async with aiomqtt.Client("127.0.0.1", broker.port, identifier="operator") as op:
                await op.subscribe("wdp/response/#", qos=1)
                zone_topic = "wdp/command/zone/kitchen/configure"
                cases = [
                    (zone_topic, b"{not json", None, "invalid command payload"),
                    (
                        zone_topic,
                        b'{"correlation_id": "u1", "configuration": {"colour": "red"}}',
                        "u1",
                        "unknown field",
                    ),
                    (
                        zone_topic,
                        b'{"correlation_id": "t1", "configuration": {"max_occupancy": "two"}}',
                        "t1",
                        "Expected `int | null`",
                    ),
                    (
                        zone_topic,
                        b'{"correlation_id": "p1", "configuration": {"polygon": [[0, 0]]}}',
                        "p1",
                        "length >= 3",
                    ),
                    (zone_topic, b'{"correlation_id": "m1"}', "m1", "missing required field `configuration`"),
                    (zone_topic, b"[1, 2]", None, "Expected `object`"),
                    (zone_topic, b"\xff\xfe", None, "invalid command payload"),
                    (
                        zone_topic,
                        b'{"correlation_id": "big", "configuration": {"name": "' + b"x" * 2000 + b'"}}',
                        None,
                        "exceeds 1024",
                    ),
                    (
                        "wdp/command/zone/explode/configure",
                        b'{"correlation_id": "x1", "configuration": {}}',
                        "x1",
                        "RuntimeError: zone store unavailable",
                    ),
                    (
                        "wdp/command/zone/bad$id/configure",
                        b'{"correlation_id": "z1", "configuration": {}}',
                        "z1",
                        "invalid zone id",
                    ),
                    (
                        "wdp/command/system/reboot",
                        b'{"correlation_id": "r1"}',
                        "r1",
                        "unknown system command",
                    ),
                    ("wdp/command/system/status", b'{"correlation_id": "s1"}', "s1", "no status handler"),
                    (
                        "wdp/command/system/start",
                        b'{"correlation_id": "e1", "extra": 1}',
                        "e1",
                        "unknown field",
                    ),
                ]
                for topic, payload, cid, message in cases:
                    r = await _request(op, topic, payload)
                    assert r["status"] == "error", (topic, payload, r)
                    assert r["correlation_id"] == cid, (payload, r)
                    assert message in r["error"], (message, r["error"])
                # still alive and serving
                r = await _request(op, "wdp/command/system/start", b'{"correlation_id": "ok"}')
                assert r["status"] == "ok" and r["correlation_id"] == "ok"
            assert bridge.stats.commands_error == len(cases) and bridge.stats.commands_ok == 1
            assert bridge.connected and bridge.stats.connects == 1
            assert engine.calls == [("start",)]

    run_async(scenario())


def test_command_processor_without_broker() -> None:
    async def scenario() -> None:
        def bad_result() -> object:
            return object()

        proc = CommandProcessor(Topics("wdp"), CommandHandlers(status=bad_result), clock=lambda: 1.0)
        assert await proc.process("other/command/system/status", b"") is None  # not under our prefix
        assert await proc.process("wdp/pose/current", b"") is None
        topic, r = await proc.process("wdp/command/system/status", b"")
        assert topic == "wdp/response/system/status"
        assert r.status == "error" and "not JSON-encodable" in (r.error or "")
        topic, r = await proc.process("wdp/command/zone/a/b/c", b"")
        assert topic == "wdp/response/zone/a/b/c" and r.status == "error" and "unknown command topic" in r.error

    run_async(scenario())


# ---------------------------------------------------------------------------------------------- delivery


def test_broker_restart_mid_stream_loses_no_qos1_event(broker: MosquittoBroker) -> None:
    """Publish a steady stream of events; restart the broker in the middle (down ~0.4 s while events keep
    coming). Every event arrives at a persistent QoS1 subscriber, and the first copies arrive in order."""
    n = 1000

    async def scenario() -> None:
        sub = Collector(broker.port, "wdp/events/#", qos=1, client_id="persistent-sub", clean_session=False)
        await sub.start()
        try:
            async with MqttBridge(bridge_config(broker.port, discovery=False)) as bridge:
                await bridge.wait_connected(5)
                seq = 0
                while seq < n:
                    # a burst right before the broker goes down, so publishes are in flight when it does
                    for _ in range(300 if seq == n // 3 else 1):
                        assert bridge.publish_event(detected(seq))
                        seq += 1
                    if seq == n // 3 + 300:
                        await asyncio.sleep(0.001)
                        await asyncio.to_thread(broker.stop)
                    if seq == n // 2 + 300:
                        assert bridge.stats.queued > 0  # the backlog is waiting, not lost
                        await asyncio.to_thread(broker.start)
                    await asyncio.sleep(0.002)
                assert await bridge.flush(10)
                await sub.wait_for(lambda ms: len({m.payload for m in ms}) >= n, timeout=10)
                stats = bridge.stats
            assert stats.connects >= 2 and stats.disconnects >= 1
            assert stats.rejected_full == 0
            assert stats.requeued > 0  # the burst was in flight when the broker went down: the path was exercised
        finally:
            await sub.stop()
        seqs = [EVENT_JSON.decode(m.payload).track_id for m in sub.messages]  # type: ignore[union-attr]
        first: list[int] = []
        seen: set[int] = set()
        for s in seqs:
            if s not in seen:
                seen.add(s)
                first.append(s)
        assert seen == set(range(n))
        assert first == sorted(first), "first copies out of order"
        assert all(m.qos == 1 for m in sub.messages)

    run_async(scenario(), timeout=40)


def test_queue_bound_and_pose_current_drop_oldest_while_broker_is_down(tmp_path: Path) -> None:
    if MOSQUITTO is None:
        pytest.skip("mosquitto binary not found")
    port = free_port()

    async def scenario() -> None:
        async with MqttBridge(bridge_config(port, max_queued=5, discovery=False)) as bridge:
            await asyncio.sleep(0.2)
            assert not bridge.connected and bridge.stats.connect_failures >= 1
            accepted = [bridge.publish_event(detected(i)) for i in range(8)]
            assert accepted == [True] * 5 + [False] * 3
            for i in range(1, 4):
                bridge.publish_frame(frame(i))
            stats = bridge.stats
            assert stats.rejected_full == 3 and stats.current_dropped == 2 and stats.queued == 5
            with MosquittoBroker(tmp_path / "late", port) as late:
                sub = await Collector(late.port, "wdp/#", client_id="late-sub").start()
                try:
                    await bridge.wait_connected(5)
                    assert await bridge.flush(5)
                    await sub.wait_for(lambda ms: len([m for m in ms if "/events/" in m.topic]) >= 5)
                    events = [EVENT_JSON.decode(m.payload).track_id for m in sub.messages if "/events/" in m.topic]
                    assert events == [0, 1, 2, 3, 4]
                    state = await retained(late.port, "wdp/pose/current")
                    assert json.loads(state["wdp/pose/current"].payload)["frame_id"] == 3  # the newest frame
                finally:
                    await sub.stop()

    run_async(scenario())


def test_person_updates_cannot_crowd_events_out_of_the_queue() -> None:
    async def scenario() -> None:
        bridge = MqttBridge(bridge_config(free_port(), max_queued=6, max_queued_person_updates=2, discovery=False))
        async with bridge:  # no broker there: everything waits
            assert not bridge.publish_frame(frame(1, [person(1), person(2), person(3)]))
            assert bridge.publish_frame(frame(2))  # no persons: nothing to reject
            assert [bridge.publish_event(detected(i)) for i in range(5)] == [True] * 4 + [False]
            stats = bridge.stats
            assert stats.rejected_person_updates == 1 and stats.rejected_full == 1 and stats.queued == 6

    run_async(scenario())


# ---------------------------------------------------------------------------------------------- discovery


def _render(template: str, payload: bytes) -> str:
    return jinja2.Template(template).render(value_json=json.loads(payload)).strip()


def test_home_assistant_discovery(broker: MosquittoBroker) -> None:
    async def scenario() -> None:
        cfg = bridge_config(broker.port, node_id="house1", sensing=False)  # sensing entities: test_mqtt_sensing.py
        async with MqttBridge(cfg) as bridge:
            bridge.set_zones([zone("kitchen", "Kitchen"), zone("hall")])
            await bridge.wait_connected(5)
            bridge.publish_frame(frame(1, [person(7, ["kitchen"]), person(9, ["kitchen", "hall"])]))
            assert await bridge.flush(5)
            configs = {t: json.loads(m.payload) for t, m in (await retained(broker.port, "homeassistant/#")).items()}
            assert set(configs) == {
                "homeassistant/sensor/house1/person_count/config",
                "homeassistant/binary_sensor/house1/presence/config",
                "homeassistant/event/house1/fall/config",
                "homeassistant/sensor/house1/zone_kitchen_occupancy/config",
                "homeassistant/sensor/house1/zone_hall_occupancy/config",
                "homeassistant/sensor/house1/engine_state/config",
            }
            assert len({c["unique_id"] for c in configs.values()}) == 6
            state = await retained(broker.port, "wdp/#")
            for c in configs.values():
                assert c["device"]["identifiers"] == ["wdp_house1"]
                (avail,) = c["availability"]
                assert avail["topic"] == "wdp/system/status"
                assert _render(avail["value_template"], state["wdp/system/status"].payload) == "online"
            # each template evaluated on the real retained state gives the right value
            count = configs["homeassistant/sensor/house1/person_count/config"]
            assert _render(count["value_template"], state[count["state_topic"]].payload) == "2"
            presence = configs["homeassistant/binary_sensor/house1/presence/config"]
            assert presence["device_class"] == "occupancy"
            assert _render(presence["value_template"], state[presence["state_topic"]].payload) == "ON"
            kitchen = configs["homeassistant/sensor/house1/zone_kitchen_occupancy/config"]
            assert kitchen["name"] == "Kitchen occupancy"
            assert _render(kitchen["value_template"], state[kitchen["state_topic"]].payload) == "2"
            hall = configs["homeassistant/sensor/house1/zone_hall_occupancy/config"]
            assert _render(hall["value_template"], state[hall["state_topic"]].payload) == "1"
            for c in configs.values():  # a payload that is not JSON (an empty clearing message) renders nothing
                if "value_template" in c:
                    assert jinja2.Template(c["value_template"]).render() == "", c["value_template"]
            engine_state = configs["homeassistant/sensor/house1/engine_state/config"]
            assert _render(engine_state["value_template"], state[engine_state["state_topic"]].payload) == "unknown"
            fall_cfg = configs["homeassistant/event/house1/fall/config"]
            assert fall_cfg["state_topic"] == "wdp/system/alerts/fall_detected"
            async with Collector(broker.port, fall_cfg["state_topic"], client_id="ha") as ha:
                bridge.publish_event(fall(9))
                await ha.wait_for(lambda ms: len(ms) == 1)
                assert json.loads(ha.messages[0].payload)["event_type"] in fall_cfg["event_types"]
            # empty room: presence OFF
            bridge.publish_frame(frame(2))
            assert await bridge.flush(5)
            state = await retained(broker.port, "wdp/#")
            assert _render(presence["value_template"], state["wdp/pose/current"].payload) == "OFF"
            assert _render(hall["value_template"], state["wdp/pose/zone/hall/occupancy"].payload) == "0"
            # zone removed: its discovery config and retained occupancy are deleted
            bridge.set_zones([zone("kitchen", "Kitchen")])
            assert await bridge.flush(5)
            assert "homeassistant/sensor/house1/zone_hall_occupancy/config" not in await retained(
                broker.port, "homeassistant/#"
            )
            assert "wdp/pose/zone/hall/occupancy" not in await retained(broker.port, "wdp/#")

    run_async(scenario())


# ---------------------------------------------------------------------------------------------- last will


def test_last_will_marks_offline_and_clean_stop_too(broker: MosquittoBroker) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parent / "python"), str(HERE)]))
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "_mqtt_bridge_child.py"), str(broker.port), "child"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "ready", proc.stderr.read() if proc.stderr else ""

        async def status() -> dict:
            got = await retained(broker.port, "wdp/system/status")
            return json.loads(got["wdp/system/status"].payload)

        online = run_async(status())
        assert online["availability"] == "online" and online["state"] == "running"
        assert online["details"] == {"fps": 10.0}
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)

        async def wait_offline() -> dict:
            for _ in range(100):
                s = await status()
                if s["availability"] == "offline":
                    return s
                await asyncio.sleep(0.05)
            raise AssertionError("will not published")

        assert run_async(wait_offline()) == {
            "availability": "offline",
            "state": "unknown",
            "timestamp": None,
            "details": {},
        }
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()

    async def clean_stop() -> dict:
        bridge = MqttBridge(bridge_config(broker.port, client_id="clean"))
        async with bridge:
            bridge.publish_status("running")
            await bridge.wait_connected(5)
            assert await bridge.flush(5)
        got = await retained(broker.port, "wdp/system/status")
        return json.loads(got["wdp/system/status"].payload)

    stopped = run_async(clean_stop())
    assert stopped["availability"] == "offline" and stopped["state"] == "running"


# ---------------------------------------------------------------------------------------------- TLS + auth


def test_tls_with_username_password(tmp_path: Path) -> None:
    if MOSQUITTO is None:
        pytest.skip("mosquitto binary not found")
    if shutil.which("openssl") is None or shutil.which("mosquitto_passwd") is None:
        pytest.skip("openssl / mosquitto_passwd not found (.ci/setup installs them)")
    certs = tmp_path / "certs"
    certs.mkdir()
    make_certs(certs)
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "wdp", "s3cret"], check=True, capture_output=True)
    extra = f"cafile {certs}/ca.crt\ncertfile {certs}/server.crt\nkeyfile {certs}/server.key\npassword_file {passwd}"

    async def scenario(port: int) -> None:
        tls = TlsConfig(ca_file=str(certs / "ca.crt"))
        good = MqttBridge(bridge_config(port, username="wdp", password="s3cret", tls=tls, discovery=False))
        async with good:
            await good.wait_connected(5)
            good.publish_frame(frame(1))
            assert await good.flush(5)
        bad = MqttBridge(bridge_config(port, username="wdp", password="wrong", tls=tls, discovery=False))
        # plain MQTT to the TLS listener: the broker resets the socket, which aiomqtt only reports when the
        # CONNACK wait times out
        no_tls = MqttBridge(
            bridge_config(port, username="wdp", password="s3cret", discovery=False, connect_timeout_s=0.3)
        )
        async with bad, no_tls:
            await asyncio.sleep(0.8)
            for b in (bad, no_tls):
                assert not b.connected and b.stats.connects == 0 and b.stats.connect_failures >= 1

    with MosquittoBroker(tmp_path / "tls", extra=extra, anonymous=False) as b:
        run_async(scenario(b.port))


def test_consume_async_iterator(broker: MosquittoBroker) -> None:
    async def source():  # type: ignore[no-untyped-def]
        yield frame(1, [person(1)])
        yield detected(1)
        yield frame(2)

    async def scenario() -> None:
        async with MqttBridge(bridge_config(broker.port, discovery=False)) as bridge:
            await bridge.wait_connected(5)
            async with Collector(broker.port, "wdp/#", client_id="c") as c:
                await bridge.consume(source())
                assert await bridge.flush(5)
                await c.wait_for(lambda ms: any("events/" in m.topic for m in ms))
                assert any(m.topic == "wdp/pose/person/1/update" for m in c.messages)
            assert isinstance(EVENT_JSON.decode(c.on("events/person.detected")[0].payload), PersonDetected)

    run_async(scenario())
