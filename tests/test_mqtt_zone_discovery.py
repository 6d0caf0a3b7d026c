"""`wdp serve` with MQTT on, against a real mosquitto: the three Home Assistant defects of issue 13.

1. A zone created over REST (or an MQTT command) is announced at once, named by its name, before anyone enters it;
   its sensing entities only if the sensing stage reports on it (else they would stay unavailable for ever).
2. A zone deleted over REST (or an MQTT command) has its discovery configs and retained state cleared at once, and
   retained configs of zones deleted while wdp was down are cleared at the next start (reconciliation).
3. system/status carries the engine's state (running / stopped) and its details, and follows a stop at once.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiomqtt
import httpx
import pytest
from mqtt_broker import MOSQUITTO, MosquittoBroker, Received, retained
from server_process import free_port, password_token, stop_process, wait_healthy

pytestmark = [
    pytest.mark.timeout(600),
    pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto binary not found (.ci/setup installs it)"),
]

HA = "homeassistant"
SENSING_ENTITIES = ("binary_sensor/wdp/sensing_zone_{z}_motion", "binary_sensor/wdp/sensing_zone_{z}_presence")


def occupancy_config(zone: str) -> str:
    return f"{HA}/sensor/wdp/zone_{zone}_occupancy/config"


def sensing_configs(zone: str) -> set[str]:
    return {f"{HA}/{e.format(z=zone)}/config" for e in SENSING_ENTITIES}


def zone_configs(zone: str) -> set[str]:
    return {occupancy_config(zone)} | sensing_configs(zone)


class Server:
    def __init__(self, tmp: Path, broker_port: int) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tmp / f"serve-{self.port}.log"
        env = {**os.environ, "WDP_JWT_SECRET": "x" * 40, "WDP_ADMIN_PASSWORD": "pw-123456", "OMP_NUM_THREADS": "1"}
        cmd = [
            sys.executable,
            "-m",
            "wdp",
            "serve",
            "--port",
            str(self.port),
            "detector=ground_truth",
            f"store.path={tmp / 'h.duckdb'}",
            "mqtt.enabled=true",
            f"mqtt.port={broker_port}",
            "+sensing.zones.office=[sim-0]",  # office is sensed (lab, kept and ghost are not)
        ]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT)
        wait_healthy(self.base, self.proc, self.log, timeout=240)  # bounds a failure only
        token = password_token(self.base, "pw-123456")
        self.http = httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {token}"}, timeout=10)

    def stop(self) -> None:
        self.http.close()
        stop_process(self.proc, 30)


def wait_retained(
    port: int, topic_filter: str, ok: Callable[[dict[str, Received]], bool], timeout: float = 60.0
) -> dict[str, Received]:
    """Poll the broker's retained messages until ``ok`` holds (guaranteed eventually; the deadline only bounds a
    failure)."""
    deadline = time.monotonic() + timeout
    while True:
        got = asyncio.run(retained(port, topic_filter))
        if ok(got) or time.monotonic() > deadline:
            return got


def publish(port: int, topic: str, payload: bytes, *, retain: bool = False) -> None:
    async def send() -> None:
        async with aiomqtt.Client("127.0.0.1", port, identifier=f"pub-{time.monotonic_ns()}") as client:
            await client.publish(topic, payload, qos=1, retain=retain)

    asyncio.run(send())


def status(port: int) -> dict:
    return json.loads(asyncio.run(retained(port, "wdp/system/status"))["wdp/system/status"].payload)


def test_zones_over_rest_and_mqtt_announce_and_clear_discovery_at_once(tmp_path: Path) -> None:
    square = [[1, 1], [3, 1], [3, 3], [1, 3]]
    with MosquittoBroker(tmp_path / "broker") as broker:
        server = Server(tmp_path, broker.port)
        try:
            # 1. created over REST: announced, named, nobody inside
            r = server.http.post("/api/v1/config/zones", json={"id": "office", "name": "Office", "polygon": square})
            assert r.status_code == 201, r.text
            got = wait_retained(broker.port, f"{HA}/#", lambda g: zone_configs("office") <= g.keys())
            assert zone_configs("office") <= got.keys(), sorted(got)
            assert json.loads(got[occupancy_config("office")].payload)["name"] == "Office occupancy"
            # renamed over REST: re-announced with the new name
            r = server.http.put(
                "/api/v1/config/zones/office", json={"id": "office", "name": "Study", "polygon": square}
            )
            assert r.status_code == 200, r.text
            got = wait_retained(
                broker.port,
                f"{HA}/#",
                lambda g: (
                    occupancy_config("office") in g
                    and json.loads(g[occupancy_config("office")].payload)["name"] == "Study occupancy"
                ),
            )
            assert json.loads(got[occupancy_config("office")].payload)["name"] == "Study occupancy"
            # 2. deleted over REST: configs and retained occupancy gone
            assert server.http.delete("/api/v1/config/zones/office").status_code == 204
            got = wait_retained(broker.port, "#", lambda g: occupancy_config("office") not in g)
            assert occupancy_config("office") not in got and "wdp/pose/zone/office/occupancy" not in got, sorted(got)
            # ... but it is still a sensing zone (sensing.zones): those entities stay, named by its id
            motion = f"{HA}/binary_sensor/wdp/sensing_zone_office_motion/config"
            assert json.loads(got[motion].payload)["name"] == "office motion"
            # the same over MQTT commands
            command = {"correlation_id": "c1", "configuration": {"name": "Lab", "polygon": square}}
            publish(broker.port, "wdp/command/zone/lab/configure", json.dumps(command).encode())
            got = wait_retained(broker.port, f"{HA}/#", lambda g: occupancy_config("lab") in g)
            assert json.loads(got[occupancy_config("lab")].payload)["name"] == "Lab occupancy"
            assert not sensing_configs("lab") & got.keys()  # not sensed: no entities that never get a state
            assert [z["id"] for z in server.http.get("/api/v1/config/zones").json()] == ["lab"]
            publish(broker.port, "wdp/command/zone/lab/delete", b'{"correlation_id": "c2"}')
            got = wait_retained(broker.port, f"{HA}/#", lambda g: not (zone_configs("lab") & g.keys()))
            assert not zone_configs("lab") & got.keys(), sorted(got)
            assert server.http.get("/api/v1/config/zones").json() == []
            # 3. system/status carries the engine's state and details
            first = status(broker.port)
            assert first["availability"] == "online" and first["state"] == "running", first
            assert first["details"]["source"] == "simulator" and "fps" in first["details"]
            publish(broker.port, "wdp/command/system/stop", b"{}")
            got = wait_retained(
                broker.port,
                "wdp/system/status",
                lambda g: json.loads(g["wdp/system/status"].payload)["state"] == "stopped",
            )
            assert json.loads(got["wdp/system/status"].payload)["state"] == "stopped"
        finally:
            server.stop()
        assert status(broker.port)["availability"] == "offline"


def test_start_clears_discovery_of_zones_deleted_while_down(tmp_path: Path) -> None:
    square = [[1, 1], [3, 1], [3, 3], [1, 3]]
    with MosquittoBroker(tmp_path / "broker") as broker:
        server = Server(tmp_path, broker.port)
        try:
            r = server.http.post("/api/v1/config/zones", json={"id": "kept", "name": "Kept", "polygon": square})
            assert r.status_code == 201, r.text
            wait_retained(broker.port, f"{HA}/#", lambda g: occupancy_config("kept") in g)
        finally:
            server.stop()
        # while wdp is down, a zone it no longer has is still announced on the broker (e.g. deleted by a
        # version that did not clear it, or from another store)
        ghost = {"name": "Ghost occupancy", "state_topic": "wdp/pose/zone/ghost/occupancy"}
        for topic in zone_configs("ghost"):
            publish(broker.port, topic, json.dumps(ghost).encode(), retain=True)
        publish(broker.port, "wdp/pose/zone/ghost/occupancy", b'{"occupancy_count": 1}', retain=True)
        publish(broker.port, "wdp/sensing/zone/ghost/state", b"{}", retain=True)
        # someone else's device under the same prefix is none of our business
        publish(broker.port, f"{HA}/sensor/other/zone_ghost_occupancy/config", b"{}", retain=True)
        server = Server(tmp_path, broker.port)
        try:
            got = wait_retained(broker.port, "#", lambda g: not (zone_configs("ghost") & g.keys()))
            assert not zone_configs("ghost") & got.keys(), sorted(got)
            assert "wdp/pose/zone/ghost/occupancy" not in got and "wdp/sensing/zone/ghost/state" not in got
            assert occupancy_config("kept") in got and sensing_configs("office") <= got.keys()
            assert f"{HA}/sensor/other/zone_ghost_occupancy/config" in got
        finally:
            server.stop()
