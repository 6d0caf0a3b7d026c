"""The issue-11 promise end to end: an ESP32 on a USB serial line (a real pseudo-terminal fed, at the recorded
rate, with a real ESP32-C3 recording written as ESP32-CSI-Tool lines) -> `wdp serve` (serial source, sensing
only) -> motion/presence on a real mosquitto with Home Assistant discovery, and on the WebSocket stream.

The recording is ESPectre's `test_c3_64sc_20260329_130804.npz` (quiet room, then a person moving from packet
3040); the installer's baseline is the same board's quiet recording made minutes earlier
(`baseline_c3_64sc_20260329_130411.npz`), given to the engine with `sensing.baselines`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import termios
import threading
import time
import tty
from pathlib import Path

import httpx
import numpy as np
import pytest
from mqtt_broker import MOSQUITTO, Collector, MosquittoBroker, retained
from server_process import free_port, password_token, stop_process
from websockets.asyncio.client import connect

from wdp.data.real import fixtures_dir

pytestmark = pytest.mark.timeout(180)

ROUTER = "esp32-c3"
START_S, QUIET_S, MOVE_S = 16.0, 14.0, 14.0  # replay from 16 s: 14 s of the quiet room, then 14 s of movement


def _csi_tool_lines(npz: Path) -> tuple[np.ndarray, list[bytes]]:
    """ESPectre csi_data rows (int8 pairs, imaginary first, as the ESP32 reports them) as ESP32-CSI-Tool
    serial lines, with their recorded times (evenly spaced over duration_ms, as ESPectre stores them)."""
    z = np.load(npz)
    rows = z["csi_data"].astype(int)
    t = np.arange(len(rows)) * float(z["duration_ms"]) / 1000.0 / len(rows)
    lines = []
    for i, r in enumerate(rows):
        head = f"CSI_DATA,AP,24:0a:c4:00:00:01,-52,11,1,7,0,0,0,0,0,0,0,-93,0,6,0,{int(t[i] * 1e6)},0,128,0,0,0.0,128,"
        lines.append((head + "[" + " ".join(map(str, r)) + "]\n").encode())
    return t, lines


def _replay(fd: int, t: np.ndarray, lines: list[bytes], stop: threading.Event) -> None:
    t0 = time.monotonic() - t[0]
    for ti, line in zip(t, lines, strict=True):
        if stop.is_set():
            return
        delay = t0 + ti - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        os.write(fd, line)


def _wait_listening(base: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.TransportError):
            r = httpx.get(f"{base}/api/v1/system/health", timeout=1.0)
            if r.status_code in (200, 503):
                return
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the server did not start:\n{log.read_text()}")
        time.sleep(0.1)


def test_serial_esp32_to_mqtt_home_assistant_and_websocket(tmp_path: Path) -> None:
    if MOSQUITTO is None:
        pytest.skip("mosquitto binary not found (.ci/setup installs it)")
    d3 = fixtures_dir() / "D3" / "micro-espectre" / "data"
    rec, base = (
        d3 / "test" / "test_c3_64sc_20260329_130804.npz",
        d3 / "baseline" / "baseline_c3_64sc_20260329_130411.npz",
    )
    t, lines = _csi_tool_lines(rec)
    change_s = float(t[3040])  # where the movement starts in the recording
    keep = (t >= START_S) & (t < change_s + MOVE_S)
    t, lines = t[keep], [ln for ln, k in zip(lines, keep, strict=True) if k]
    assert change_s - START_S >= QUIET_S - 0.5

    master, slave = os.openpty()
    tty.setraw(slave)
    attrs = termios.tcgetattr(slave)
    attrs[3] &= ~termios.ECHO
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    port_link = tmp_path / "ttyUSB-esp32"
    port_link.symlink_to(os.ttyname(slave))
    stop = threading.Event()
    log = tmp_path / "serve.log"
    with MosquittoBroker(tmp_path / "broker") as broker, log.open("wb") as out:
        port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
            "WDP_JWT_SECRET": "x" * 40,
            "WDP_ADMIN_PASSWORD": "pw-123456",
            "WDP_API__AUTH__ARGON2_TIME_COST": "1",
            "WDP_API__AUTH__ARGON2_MEMORY_KIB": "8192",
            "OMP_NUM_THREADS": "1",
        }
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "wdp", "serve", "--port", str(port),
                "detector=none", "source=serial", f"source.port={port_link}", f"source.router_id={ROUTER}",
                "source.baud=921600", f"store.path={tmp_path / 'h.duckdb'}",
                "mqtt.enabled=true", f"mqtt.port={broker.port}", "mqtt.prefix=wdp",
                f"+sensing.baselines.{ROUTER}={base}",
            ],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        base_url = f"http://127.0.0.1:{port}"
        writer = threading.Thread(target=_replay, args=(master, t, lines, stop), daemon=True)
        try:
            _wait_listening(base_url, proc, log, timeout=60)  # "unhealthy" until the board sends: that is right
            token = password_token(base_url, "pw-123456")

            async def run() -> tuple[list[dict], list[dict], Collector]:
                updates: list[dict] = []
                events: list[dict] = []
                async with (
                    Collector(broker.port, "wdp/#", qos=1) as mq,
                    Collector(broker.port, "homeassistant/#", qos=1, client_id="ha") as ha,
                ):
                    async with connect(f"ws://127.0.0.1:{port}/ws/v1/stream?token={token}") as ws:
                        assert json.loads(await ws.recv())["type"] == "connection"
                        for topic in ("sensing_updates", "sensing_events"):
                            await ws.send(
                                json.dumps({"type": "subscribe", "topic": topic, "filters": {"router_id": ROUTER}})
                            )
                        writer.start()
                        deadline = time.monotonic() + (t[-1] - t[0]) + 30
                        while time.monotonic() < deadline:
                            with contextlib.suppress(TimeoutError):
                                msg = json.loads(await asyncio.wait_for(ws.recv(), 1.0))
                                if msg.get("type") == "sensing_update":
                                    updates.append(msg["state"])
                                elif msg.get("type") == "event" and msg.get("topic") == "sensing_events":
                                    events.append(msg["event"])
                            if (
                                any(e["type"] == "motion.started" for e in events)
                                and sum(u["motion"] for u in updates) >= 5
                            ):
                                break
                        await mq.wait_for(lambda ms: any(m.topic == "wdp/events/motion.started" for m in ms), 10)
                    mq.ha = ha  # type: ignore[attr-defined]
                    return updates, events, mq

            updates, events, mq = asyncio.run(run())
            discovery = asyncio.run(retained(broker.port, "homeassistant/#"))
            states = asyncio.run(retained(broker.port, f"wdp/sensing/router/{ROUTER}/state"))
        finally:
            stop.set()
            stop_process(proc, 30)
            os.close(master)
            os.close(slave)
        server_log = log.read_text(errors="replace")[-3000:]

    # WebSocket: one state a second from the serial router, calibrated from the installer's baseline; quiet
    # first, then motion once the person moves; and the motion.started event
    assert updates, server_log
    assert all(u["router_id"] == ROUTER and u["source"] == "live" for u in updates)
    assert all(u["calibration"] == "baseline" for u in updates)
    first_motion = next(i for i, u in enumerate(updates) if u["motion"])
    assert first_motion >= 8, [u["motion_score"] for u in updates]  # ~14 s of quiet room came first
    assert not any(u["motion"] for u in updates[: first_motion - 1])
    assert all(u["presence"] for u in updates[first_motion:])
    started = [e for e in events if e["type"] == "motion.started"]
    assert started and started[0]["router_id"] == ROUTER
    assert any(e["type"] == "presence.changed" and e["presence"] for e in events)

    # MQTT: the router's retained state and the events, as published by the bridge
    state = json.loads(states[f"wdp/sensing/router/{ROUTER}/state"].payload)
    assert state["router_id"] == ROUTER and "motion_score" in state
    ev = json.loads(next(m for m in mq.messages if m.topic == "wdp/events/motion.started").payload)
    assert ev["router_id"] == ROUTER
    # Home Assistant discovery: a motion and an occupancy binary sensor and a breathing-rate sensor for the router
    configs = {topic: json.loads(m.payload) for topic, m in discovery.items() if m.payload}
    mine = [c for c in configs.values() if c.get("state_topic") == f"wdp/sensing/router/{ROUTER}/state"]
    classes = {c.get("device_class") for c in mine}
    assert {"motion", "occupancy"} <= classes, configs.keys()
    assert any(c.get("unit_of_measurement") and "breath" in c["name"].lower() for c in mine)
    assert all(c["unique_id"] and c["device"] for c in mine)
