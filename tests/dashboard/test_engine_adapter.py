"""EngineAdapter: the real engine (ground-truth detector on the scripted two-person scene) behind the API's
EngineView protocol -- frames and events through subscriptions that survive a restart, status from the
engine's metrics, zones handed to the engine, and the REST start/stop/zones routes driving it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from dashboard_support import SECRET
from engine_fixtures import BED, two_person_scene
from litestar.testing import AsyncTestClient

from wdp import schemas
from wdp.csi.sources import SimulatorSource
from wdp.engine import Bus, Engine, EngineConfig, counting_ids
from wdp.serve import EngineView, create_app, load_settings
from wdp.serve.engine_adapter import EngineAdapter, EngineLifespanPlugin
from wdp.store import Store

pytestmark = pytest.mark.anyio
GT = EngineConfig(detector="ground_truth")


def scripted_engine(bus: Bus) -> Engine:
    src = SimulatorSource(routers=2, scene=two_person_scene(), loop=False, realtime=False)
    # counting ids: this test reads exact ids (without a store the engine counts from the wall clock)
    return Engine([src], config=GT, bus=bus, frame_ids=counting_ids(), track_ids=counting_ids())


async def _collect(sub: Any, until: str, timeout: float = 30.0) -> list[Any]:
    got: list[Any] = []

    async def run() -> None:
        async for item in sub:
            got.append(item)
            if isinstance(item, schemas.EventBase) and schemas.event_type(item) == until:
                return

    await asyncio.wait_for(run(), timeout)
    return got


async def test_adapter_runs_the_engine_through_the_protocol() -> None:
    adapter = EngineAdapter(scripted_engine)
    assert isinstance(adapter, EngineView)
    before = adapter.status()
    assert not before.running and before.components["engine"].status == "degraded"
    assert adapter.current_frame() is None and adapter.routers() == []

    adapter.set_zones([BED])  # before start: applied to the engine it builds
    poses = adapter.subscribe("poses")
    events = adapter.subscribe("events")
    status = await adapter.start()
    assert status.running and status.source == "simulator" and status.started_at is not None
    got = await _collect(events, "person.fall_detected")
    kinds = [schemas.event_type(e) for e in got]
    # Both routers connect; on a starved machine a realtime router may also time out and reconnect.
    assert kinds[0] == "system.started" and kinds.count("router.connected") >= 2
    assert kinds.count("router.connected") - kinds.count("router.disconnected") == 2
    entered = [e for e in got if isinstance(e, schemas.PersonEnteredZone)]
    assert [(e.track_id, e.zone_id) for e in entered] == [(1, "bed")]  # the zone reached the engine
    fall = got[-1]
    assert isinstance(fall, schemas.PersonFallDetected) and fall.track_id == 2

    frame = await asyncio.wait_for(poses.__anext__(), 5)
    assert isinstance(frame, schemas.PoseFrame) and frame.source == "simulator" and frame.frame_id == 1
    assert adapter.engine is not None and adapter.engine.wait(30)  # the scene is finite
    await asyncio.sleep(0.3)  # past the status cache
    s = adapter.status()
    assert s.frames_total >= 170 and s.persons == 2 and s.frames_dropped == 0
    assert s.latency_ms_p50 > 0 and s.latency_ms_p99 >= s.latency_ms_p50
    assert s.components["capture"].detail == "sources exhausted"
    assert (s.components["inference"].status, s.components["inference"].detail) == ("ok", "ground_truth")
    assert {r.id for r in adapter.routers()} == {"sim-0", "sim-1"}
    current = adapter.current_frame()
    assert current is not None and len(current.persons) == 2

    with pytest.raises(ValueError, match="unique"):
        adapter.set_zones([BED, BED])
    with pytest.raises(ValueError, match="3 finite vertices"):
        adapter.set_zones([schemas.Zone(id="line", name="line", polygon=[(0, 0), (1, 1)])])  # no area

    # stop, then start again: a fresh engine on the same bus, so the old subscriptions keep receiving
    stopped = await adapter.stop()
    assert not stopped.running
    await adapter.start()
    assert adapter.starts == 2
    again = await _collect(events, "person.fall_detected")
    kinds = [schemas.event_type(e) for e in again]
    assert "system.stopped" in kinds and "system.started" in kinds and kinds[-1] == "person.fall_detected"
    await adapter.stop()
    await poses.aclose()
    await events.aclose()
    assert adapter.bus.subscriptions == ()


async def _wait_for_zone(adapter: EngineAdapter, zone_id: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        frame = adapter.current_frame()
        if frame is not None and any(zone_id in p.zone_ids for p in frame.persons):
            return
        assert time.monotonic() < deadline, f"the engine never reported zone {zone_id!r}"
        await asyncio.sleep(0.1)


async def test_rest_drives_the_engine(tmp_path: Any) -> None:
    """start/stop and zone CRUD through the API reach the engine; status and routers come from it."""

    def realtime_engine(bus: Bus) -> Engine:
        src = SimulatorSource(routers=1, room_id=101, seed=1, people=1, realtime=True, speed=2.0)
        return Engine([src], config=GT, bus=bus)

    adapter = EngineAdapter(realtime_engine)
    settings = load_settings(
        {
            "auth": {
                "jwt": {"secret": SECRET},
                "argon2_time_cost": 1,
                "argon2_memory_kib": 8192,
                "argon2_parallelism": 1,
            }
        },
        env={},
    )
    with Store(str(tmp_path / "h.duckdb")) as store:
        app = create_app(settings, engine_view=adapter, store=store, plugins=[EngineLifespanPlugin(adapter)])
        async with AsyncTestClient(app) as client:
            token = app.state["services"].tokens.issue("root", ["admin:all"])[0]
            auth = {"Authorization": f"Bearer {token}"}
            deadline = time.monotonic() + 10
            while True:  # the lifespan started the engine; frames arrive
                body = (await client.get("/api/v1/system/status", headers=auth)).json()
                if body["engine"]["frames_total"] > 5:
                    break
                assert time.monotonic() < deadline, body
                await asyncio.sleep(0.2)
            assert body["status"] == "running" and body["engine"]["source"] == "simulator"
            assert body["active_routers"] == body["total_routers"] == 1
            routers = (await client.get("/api/v1/system/routers", headers=auth)).json()
            assert routers[0]["id"] == "sim-0" and routers[0]["kind"] == "simulator"
            current = (await client.get("/api/v1/pose/current", headers=auth, params={"min_confidence": 0})).json()
            assert current["source"] == "simulator"

            zone = {
                "id": "room",
                "name": "whole room",
                "polygon": [[-50, -50], [50, -50], [50, 50], [-50, 50]],
            }
            assert (await client.post("/api/v1/config/zones", json=zone, headers=auth)).status_code == 201
            assert [z.id for z in adapter._zones or []] == ["room"]
            await _wait_for_zone(adapter, "room")

            stopped = (await client.post("/api/v1/system/stop", headers=auth)).json()
            assert stopped["running"] is False
            assert (await client.get("/api/v1/system/status", headers=auth)).json()["status"] == "stopped"
            started = (await client.post("/api/v1/system/start", headers=auth)).json()
            assert started["running"] is True and adapter.starts == 2
            await _wait_for_zone(adapter, "room")  # the new engine got the zone set too
        assert adapter.engine is not None and not adapter.engine.running  # stopped with the app


def test_inference_health_is_degraded_in_a_room_the_model_never_saw(tmp_path, tmp_path_factory) -> None:
    """/health and the dashboard's status say so when the simulator plays a room outside the model card's
    training rooms; in a trained room inference is ok."""
    import json
    import shutil

    from engine_fixtures import cached_tiny_model

    from wdp.engine import ModelRunner
    from wdp.serve.engine_adapter import components_of

    model = tmp_path / "m"
    shutil.copytree(cached_tiny_model(tmp_path_factory), model)
    card = json.loads((model / "model_card.json").read_text())
    card["training"] = {"data": {"splits": {"train": {"rooms": [101]}}}}
    (model / "model_card.json").write_text(json.dumps(card))
    for room, status in ((80, "degraded"), (101, "ok")):
        src = SimulatorSource(routers=1, room_id=room, people=1, loop=False, realtime=False, scene_duration_s=1.0)
        engine = Engine([src], model=ModelRunner.load(model), bus=Bus())
        health = components_of(engine.metrics(), engine)["inference"]
        assert health.status == status, health
        assert ("room 80, which it never saw" in health.detail) is (room == 80)
