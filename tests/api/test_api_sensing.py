"""Sensing over the API: /api/v1/sensing/{current,history,routers/{id}}, sensing details in system/routers and
system/status, the sensing_updates / sensing_events WebSocket topics with router and zone filters, webhook
subscriptions to the sensing events -- over the store-backed view, and over the real engine (a synthetic
ESP32 stream with a person walking by, through EngineAdapter)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_support import T0, Api, make_settings
from litestar.testing import AsyncTestClient
from sensing_fixtures import synthetic_stream

from wdp.csi.sources import ArraySource
from wdp.engine import Bus, Engine, EngineConfig
from wdp.engine.sensing_stage import SensingSettings
from wdp.schemas import MotionStarted, SensingLinkStatus, SensingState
from wdp.serve import create_app
from wdp.serve.engine_adapter import EngineAdapter, EngineLifespanPlugin
from wdp.store import Store
from wdp.store import sensing as store_sensing

pytestmark = pytest.mark.anyio
WS = "/ws/v1/stream"
TIMEOUT = 5.0
READ = "pose:read"


def state(t: float, router_id: str | None = None, zone_id: str | None = None, motion: bool = False) -> SensingState:
    return SensingState(
        timestamp=t,
        router_id=router_id,
        zone_id=zone_id,
        source="replay",
        motion=motion,
        motion_score=9.5 if motion else 1.25,
        threshold=4.0,
        presence=motion,
        calibration="auto",
        packet_rate=10.0,
    )


def history_states() -> list[SensingState]:
    return [
        s
        for i in range(30)
        for s in (
            state(T0 + i, "r1", motion=i >= 20),
            state(T0 + i, "r2"),
            state(T0 + i, zone_id="room", motion=i >= 20),
        )
    ]


@pytest.fixture
def sensing_api(api: Api) -> Iterator[Api]:
    store_sensing.append_states(api.store.cursor(), history_states())
    api.view.links = [
        SensingLinkStatus(
            router_id="r1", calibration="auto", packets=300, shape_changes=1, time_jumps=2, shape=[64, 1, 1]
        )
    ]
    yield api


async def test_history_filters_and_validation(sensing_api: Api) -> None:
    api, h = sensing_api, sensing_api.auth(READ)
    url = "/api/v1/sensing/history"
    everything = (
        await api.client.get(url, params={"start_time": T0, "end_time": T0 + 100, "limit": 1000}, headers=h)
    ).json()
    assert everything["total"] == 90 and len(everything["states"]) == 90
    assert everything["states"][0]["router_id"] == "r1" and everything["states"][2]["zone_id"] == "room"
    r1 = (
        await api.client.get(url, params={"start_time": T0, "end_time": T0 + 100, "router_id": "r1"}, headers=h)
    ).json()
    assert r1["total"] == 30 and [s["router_id"] for s in r1["states"]] == ["r1"] * 30
    assert [s["motion"] for s in r1["states"]] == [False] * 20 + [True] * 10
    room = (
        await api.client.get(
            url, params={"start_time": T0 + 25, "end_time": T0 + 100, "zone_id": "room", "limit": 2}, headers=h
        )
    ).json()
    assert room["total"] == 5 and [s["timestamp"] for s in room["states"]] == [T0 + 25, T0 + 26]
    assert all(s["zone_id"] == "room" and s["router_id"] is None for s in room["states"])
    for params, needle in (
        ({"start_time": T0 + 10, "end_time": T0}, "end_time"),
        ({"start_time": T0, "end_time": T0 + 1, "router_id": "r1", "zone_id": "room"}, "not both"),
        ({"start_time": T0, "end_time": T0 + 1, "limit": 0}, "limit"),
        ({"start_time": T0, "end_time": T0 + 1, "limit": 1001}, "limit"),
        ({"start_time": "yesterday", "end_time": T0}, "start_time"),
        ({"end_time": T0}, "start_time"),
        ({"start_time": T0, "end_time": T0 + 1, "router_id": "x" * 65}, "router_id"),
    ):
        r = await api.client.get(url, params=params, headers=h)
        assert r.status_code == 422, (params, r.text)
        assert needle in r.text, (params, r.text)
    assert (await api.client.get(url, params={"start_time": T0, "end_time": T0 + 1})).status_code == 401
    denied = await api.client.get(url, params={"start_time": T0, "end_time": T0 + 1}, headers=api.auth("system:read"))
    assert denied.status_code == 403 and "pose:read" in denied.json()["reason"]


async def test_current_and_router_details(sensing_api: Api) -> None:
    api, h = sensing_api, sensing_api.auth(READ)
    # nothing published yet: the latest stored state of each router and zone
    cur = (await api.client.get("/api/v1/sensing/current", headers=h)).json()
    assert [(s["router_id"], s["timestamp"]) for s in cur["routers"]] == [("r1", T0 + 29), ("r2", T0 + 29)]
    assert [(s["zone_id"], s["motion"]) for s in cur["zones"]] == [("room", True)]
    # published states replace them
    api.client.blocking_portal.call(api.view.publish_sensing, state(T0 + 100, "r1"))
    cur = (await api.client.get("/api/v1/sensing/current", headers=h)).json()
    assert {s["router_id"]: s["timestamp"] for s in cur["routers"]}["r1"] == T0 + 100
    r1 = (await api.client.get("/api/v1/sensing/routers/r1", headers=h)).json()
    assert r1["state"]["timestamp"] == T0 + 100 and r1["link"]["shape_changes"] == 1 and r1["link"]["time_jumps"] == 2
    r2 = (await api.client.get("/api/v1/sensing/routers/r2", headers=h)).json()
    assert r2["state"]["router_id"] == "r2" and r2["link"] is None
    missing = await api.client.get("/api/v1/sensing/routers/nope", headers=h)
    assert missing.status_code == 404 and "nope" in missing.json()["reason"]
    assert (await api.client.get("/api/v1/sensing/current")).status_code == 401
    assert (await api.client.get("/api/v1/sensing/routers/r1", headers=api.auth("stream:subscribe"))).status_code == 403


async def test_system_status_and_openapi_show_sensing(sensing_api: Api) -> None:
    api = sensing_api
    status = (await api.client.get("/api/v1/system/status", headers=api.auth("system:read"))).json()
    assert status["sensing"][0]["router_id"] == "r1" and status["sensing"][0]["shape_changes"] == 1
    spec = (await api.client.get("/schema/openapi.json")).json()
    ops = {p: {m: op.get("operationId") for m, op in v.items()} for p, v in spec["paths"].items()}
    assert ops["/api/v1/sensing/current"]["get"] == "getCurrentSensing"
    assert ops["/api/v1/sensing/history"]["get"] == "getSensingHistory"
    assert ops["/api/v1/sensing/routers/{router_id}"]["get"] == "getSensingRouter"


async def test_webhook_subscriptions_accept_sensing_events(api: Api) -> None:
    body = {
        "url": "https://example.test/hook",
        "events": ["motion.started", "motion.stopped", "presence.changed", "breathing.updated"],
    }
    created = await api.client.post("/api/v1/webhooks", headers=api.auth("config:write"), json=body)
    assert created.status_code == 201, created.text
    assert created.json()["events"] == body["events"]


async def test_stream_topics_and_filters(sensing_api: Api) -> None:
    api = sensing_api
    with await api.client.websocket_connect(f"{WS}?token={api.token('stream:subscribe')}") as ws:
        assert {"sensing_updates", "sensing_events"} <= set(ws.receive_json(timeout=TIMEOUT)["topics"])
        subs = (
            ("sensing_updates", {"router_id": "r1"}),
            ("sensing_events", {"zone_id": "room"}),
            ("zone_events", {}),
        )
        for topic, filters in subs:
            ws.send_json({"type": "subscribe", "topic": topic, "filters": filters})
            assert ws.receive_json(timeout=TIMEOUT)["status"] == "subscribed"
        for s in (state(T0 + 200, "r2"), state(T0 + 200, zone_id="room"), state(T0 + 200, "r1", motion=True)):
            api.client.blocking_portal.call(api.view.publish_sensing, s)
        got = ws.receive_json(timeout=TIMEOUT)
        assert (
            got["type"] == "sensing_update" and got["topic"] == "sensing_updates" and got["state"]["router_id"] == "r1"
        )
        router_event = MotionStarted(timestamp=T0 + 200, motion_score=9.5, router_id="r1", event_id="e-r1")
        zone_event = MotionStarted(timestamp=T0 + 200, motion_score=9.5, zone_id="room", event_id="e-room")
        api.publish(router_event)  # a router's event: sensing_events only, and the zone filter refuses it
        api.publish(zone_event)  # a zone's event: sensing_events and zone_events
        received = [ws.receive_json(timeout=TIMEOUT) for _ in range(2)]
        assert sorted((m["topic"], m["event"]["event_id"], m["event"]["type"]) for m in received) == [
            ("sensing_events", "e-room", "motion.started"),
            ("zone_events", "e-room", "motion.started"),
        ]


# ------------------------------------------------------------------------------------------ the real engine


def walk_by_engine(store: Store) -> Any:
    def factory(bus: Bus) -> Engine:
        ta, ca = synthetic_stream(moves=True, seed=1)
        tb, cb = synthetic_stream(moves=False, seed=2)
        src = ArraySource({"a": (ta, ca), "b": (tb, cb)}, realtime=True, speed=20.0)
        cfg = EngineConfig(detector="none", sensing=SensingSettings(zones={"room": ["a", "b"]}))
        return Engine([src], config=cfg, bus=bus, store=store)

    return factory


async def test_engine_states_reach_rest_and_the_stream(tmp_path: Path) -> None:
    with Store(tmp_path / "h.duckdb") as store:
        adapter = EngineAdapter(walk_by_engine(store), buffer=4096)
        settings = make_settings()
        app = create_app(
            settings, engine_view=adapter, store=store, plugins=[EngineLifespanPlugin(adapter, autostart=False)]
        )
        async with AsyncTestClient(app) as client:
            tokens = app.state["services"].tokens
            token = tokens.issue("alice", ["stream:subscribe", "pose:read", "system:read", "admin:all"])[0]
            h = {"Authorization": f"Bearer {token}"}
            with await client.websocket_connect(f"{WS}?token={token}") as ws:
                ws.receive_json(timeout=TIMEOUT)
                for topic, filters in (("sensing_updates", {"router_id": "a"}), ("zone_events", {"zone_id": "room"})):
                    ws.send_json({"type": "subscribe", "topic": topic, "filters": filters})
                    assert ws.receive_json(timeout=TIMEOUT)["status"] == "subscribed"
                assert (await client.post("/api/v1/system/start", headers=h)).status_code == 200
                states, events = [], []
                while not any(e["type"] == "motion.stopped" for e in events):
                    msg = ws.receive_json(timeout=30.0)
                    if msg["type"] == "sensing_update":
                        states.append(msg["state"])
                    elif msg["type"] == "event":
                        events.append(msg["event"])
            assert states and {s["router_id"] for s in states} == {"a"}  # the router filter
            assert [e["type"] for e in events if e["type"].startswith("motion.")] == [
                "motion.started",
                "motion.stopped",
            ]
            assert {e["zone_id"] for e in events} == {"room"}
            cur = (await client.get("/api/v1/sensing/current", headers=h)).json()
            assert {s["router_id"] for s in cur["routers"]} == {"a", "b"} and [z["zone_id"] for z in cur["zones"]] == [
                "room"
            ]
            a = (await client.get("/api/v1/sensing/routers/a", headers=h)).json()
            assert (
                a["link"]["calibration"] == "auto"
                and a["link"]["shape"] == [64, 1, 1]
                and a["link"]["zone_ids"] == ["room"]
            )
            routers = (await client.get("/api/v1/system/routers", headers=h)).json()
            assert {r["id"]: r["sensing"]["router_id"] for r in routers} == {"a": "a", "b": "b"}
            health = (await client.get("/api/v1/system/health")).json()
            assert "a: auto" in health["components"]["engine.sensing"]["detail"]
            assert (await client.post("/api/v1/system/stop", headers=h)).status_code == 200  # flushes the history
            t0 = states[0]["timestamp"]
            page = (
                await client.get(
                    "/api/v1/sensing/history",
                    params={"start_time": t0 - 100, "end_time": t0 + 1000, "zone_id": "room", "limit": 1000},
                    headers=h,
                )
            ).json()
            assert page["total"] > 10 and any(s["motion"] for s in page["states"])
