"""`wdp serve` with the MQTT bridge on, against a real mosquitto: frames reach pose/current, status is
retained, and a command/system/status is answered on response/... through the running engine."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import aiomqtt
import pytest
from mqtt_broker import MOSQUITTO, MosquittoBroker, free_port

pytestmark = pytest.mark.timeout(90)


@pytest.mark.timeout(300)
def test_serve_publishes_to_mqtt_and_answers_commands(tmp_path: Path) -> None:
    if MOSQUITTO is None:
        pytest.skip("mosquitto binary not found (.ci/setup installs it)")
    with MosquittoBroker(tmp_path / "broker") as broker:
        port = free_port()
        env = {**os.environ, "WDP_JWT_SECRET": "x" * 40, "WDP_ADMIN_PASSWORD": "pw-123456", "OMP_NUM_THREADS": "1"}
        cmd = [
            sys.executable,
            "-m",
            "wdp",
            "serve",
            "--port",
            str(port),
            "detector=ground_truth",
            f"store.path={tmp_path / 'h.duckdb'}",
            "mqtt.enabled=true",
            f"mqtt.port={broker.port}",
            "mqtt.prefix=home",
        ]
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

        async def check() -> tuple[dict, dict, dict]:
            async with aiomqtt.Client("127.0.0.1", broker.port, identifier="test-client") as client:
                await client.subscribe("home/#", qos=1)
                current = status = response = None
                sent = False
                async for msg in client.messages:
                    topic = str(msg.topic)
                    if topic == "home/pose/current":
                        current = json.loads(msg.payload)
                    elif topic == "home/system/status":
                        status = json.loads(msg.payload)
                    elif topic.startswith("home/response/"):
                        response = json.loads(msg.payload)
                    if current and not sent:
                        await client.publish("home/command/system/status", json.dumps({"correlation_id": "c-1"}), qos=1)
                        sent = True
                    if current and status and response:
                        return current, status, response
            raise AssertionError("stream ended")

        try:
            current, status, response = asyncio.run(asyncio.wait_for(check(), 240))  # bounds a failure only
        finally:
            proc.terminate()
            out = proc.communicate(timeout=30)[0].decode(errors="replace")
        assert current["source"] == "simulator" and current["frame_id"] > 0, out[-2000:]
        assert status["availability"] == "online"
        assert response.get("correlation_id") == "c-1" and response.get("ok", True), response


@pytest.mark.timeout(300)
def test_serve_publishes_its_start_and_first_router_connection_to_mqtt(tmp_path: Path) -> None:
    """The bridge is up before the engine starts: system.started and router.connected reach MQTT."""
    from mqtt_broker import Collector

    if MOSQUITTO is None:
        pytest.skip("mosquitto binary not found (.ci/setup installs it)")
    with MosquittoBroker(tmp_path / "broker") as broker:
        port = free_port()
        env = {**os.environ, "WDP_JWT_SECRET": "x" * 40, "WDP_ADMIN_PASSWORD": "pw-123456", "OMP_NUM_THREADS": "1"}
        cmd = [
            sys.executable, "-m", "wdp", "serve", "--port", str(port), "detector=ground_truth",
            f"store.path={tmp_path / 'h.duckdb'}", "mqtt.enabled=true", f"mqtt.port={broker.port}", "mqtt.prefix=home",
        ]  # fmt: skip

        async def check() -> list[str]:
            async with Collector(broker.port, "home/events/#", qos=1) as col:  # subscribed before the server starts
                proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                try:
                    await col.wait_for(
                        lambda ms: (
                            {"home/events/system.started", "home/events/router.connected"} <= {m.topic for m in ms}
                        ),
                        timeout=240,  # bounds a failure only: a loaded machine may take a minute to start
                    )
                finally:
                    proc.terminate()
                    await asyncio.to_thread(proc.communicate, timeout=30)
                return [m.topic for m in col.messages]

        topics = asyncio.run(check())
        assert topics.index("home/events/system.started") < topics.index("home/events/router.connected")
