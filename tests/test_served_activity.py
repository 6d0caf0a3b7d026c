"""Done-when of issue 14: a served engine replaying real fall recordings emits person.fall_detected from the
activity/fall model. A real `wdp serve` process (engine + API in uvicorn, DuckDB history) replays an Intel 5300
fall take (D1) and a nexmon fall take (D2) as two routers, at four times their recorded rate; the shipped model
of each router's hardware family is picked by frame shape (activity.model=auto), and only the model's events
are published (activity.detector=model). The fall is observed on the WebSocket (system_alerts) and in the
history store, with detector "model" and the router that saw it.

Both takes are in the shipped models' training data (they are trained on every person and room of D1 and on
D2 environment A): this checks the live path, not the models' accuracy (that is the benchmark's job)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from server_process import free_port, password_token, stop_process, wait_healthy
from websockets.asyncio.client import connect

from wdp.activity import find_shipped
from wdp.data.real import fixtures_dir
from wdp.schemas import PersonFallDetected
from wdp.store import Store, queries

pytestmark = pytest.mark.anyio
D1_FALL = "D1/Original Data/0512/fall down/qiang_falldown1.dat"  # 30x3x1, 15.6 s, zxq in the meeting room
D2_FALL = "D2/falling_user1_rm1/falling_user1_rm1_1.pcap"  # 256x1x1, 10 s, user1 in rm1
PASSWORD = "admin-password-for-tests"
SECRET = "activity-test-secret-0123456789abcdef"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_served_engine_emits_the_models_falls(tmp_path: Path) -> None:
    for rel, shape in ((D1_FALL, (30, 3, 1)), (D2_FALL, (256, 1, 1))):
        if find_shipped(shape) is None:
            pytest.fail(f"no shipped activity model takes {rel}'s {shape} frames (python/wdp/models/activity/)")
    intel, nexmon = tmp_path / "intel_fall.dat", tmp_path / "nexmon_fall.pcap"
    intel.symlink_to(fixtures_dir() / D1_FALL)  # no spaces in the override values
    nexmon.symlink_to(fixtures_dir() / D2_FALL)
    store_path = tmp_path / "history.duckdb"
    port = free_port()
    replay = "{_target_:wdp.csi.sources.ReplaySource,realtime:true,speed:4.0"
    cmd = [sys.executable, "-m", "wdp", "serve", "--port", str(port), "--no-autostart"]
    cmd += ["source=replay", f"source.path={intel}", "source.router_id=intel", "source.speed=4.0"]
    cmd += [f"extra_sources=[{replay},path:{nexmon},router_id:nexmon}}]"]
    cmd += ["detector=none", "activity.detector=model", "activity.model=auto", "sensing.enabled=false"]
    cmd += [f"store.path={store_path}", "status_interval_s=0"]
    env = {
        **os.environ,
        "WDP_JWT_SECRET": SECRET,
        "WDP_ADMIN_PASSWORD": PASSWORD,
        "WDP_API__AUTH__ARGON2_TIME_COST": "1",
        "WDP_API__AUTH__ARGON2_MEMORY_KIB": "8192",
        "WDP_API__AUTH__ARGON2_PARALLELISM": "1",
        "OMP_NUM_THREADS": "1",
    }
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc, log, timeout=60)
        token = password_token(base, PASSWORD)
        h = {"Authorization": f"Bearer {token}"}
        falls: list[dict] = []
        async with connect(f"ws://127.0.0.1:{port}/ws/v1/stream?token={token}", compression=None) as ws:
            json.loads(await asyncio.wait_for(ws.recv(), 10))  # the welcome
            await ws.send(json.dumps({"type": "subscribe", "topic": "system_alerts"}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["status"] == "subscribed"
            async with httpx.AsyncClient(base_url=base, headers=h, timeout=10) as client:
                assert (await client.post("/api/v1/system/start")).status_code == 200
                deadline = time.monotonic() + 60  # the takes last 15.6 s and 10 s, played at 4x
                while {f["router_id"] for f in falls} != {"intel", "nexmon"}:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        pytest.fail(f"falls seen: {falls}\n{log.read_text()[-3000:]}")
                    msg = json.loads(await asyncio.wait_for(ws.recv(), left))
                    if msg.get("type") == "event" and msg["event"]["type"] == "person.fall_detected":
                        falls.append(msg["event"])
                health = (await client.get("/api/v1/system/health")).json()
                assert (await client.post("/api/v1/system/stop")).status_code == 200  # flushes the history
        assert all(f["detector"] == "model" and f["track_id"] is None for f in falls)
        assert "intel: on" in health["components"]["engine.activity"]["detail"]
    finally:
        stop_process(proc, timeout=20)
    assert "Traceback" not in log.read_text(), log.read_text()
    with Store(store_path) as store:
        stored = [e for e in queries.events(store.cursor(), 0, 2e9, limit=1000) if isinstance(e, PersonFallDetected)]
    assert {f["event_id"] for f in falls} <= {e.event_id for e in stored}  # what the WebSocket saw was stored
    assert {(e.router_id, e.detector) for e in stored} == {("intel", "model"), ("nexmon", "model")}
