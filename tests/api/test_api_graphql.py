"""/graphql against a real server (uvicorn on 127.0.0.1, a port chosen at run time) with real clients: httpx
for queries and mutations, websockets for a graphql-transport-ws subscription. Same credentials, scopes and
rate limits as REST; abusive documents refused before execution; the persisted-query allow-list."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import T0, ZONES, history_frames, live_frame, make_settings
from live_server import LiveServer, live_server
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from wdp.serve import StoreBackedEngineView, create_app
from wdp.serve.graphql.plugin import query_hash
from wdp.store import Store
from wdp.store import config as store_config

ALL_READ = ("pose:read", "system:read", "analytics:read")


@pytest.fixture
def populated() -> Iterator[Store]:
    with Store(":memory:") as s:
        with s.writer() as w:
            for f in history_frames():
                w.append(f)
        for z in ZONES:
            store_config.ZONES.put(s.cursor(), z)
        yield s


def start(store: Store, **settings: Any) -> Any:
    view = StoreBackedEngineView(store)
    return view, create_app(make_settings(**settings), engine_view=view, store=store)


@pytest.fixture
def server(populated: Store) -> Iterator[tuple[LiveServer, StoreBackedEngineView]]:
    view, app = start(populated, rate_limit={"enabled": False})
    with live_server(app) as srv:
        yield srv, view


def token(srv: LiveServer, *scopes: str) -> str:
    return str(srv.app.state["services"].tokens.issue("alice", scopes)[0])


def gql(srv: LiveServer, query: str, tok: str | None = None, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    return httpx.post(f"{srv.base}/graphql", json={"query": query, **kw}, headers=headers, timeout=10)


def codes(body: dict[str, Any]) -> list[str]:
    return [e.get("extensions", {}).get("code") for e in body.get("errors") or []]


def test_queries_mirror_rest(server: tuple[LiveServer, StoreBackedEngineView]) -> None:
    srv, _ = server
    tok = token(srv, *ALL_READ)
    q = """query($s: Float!, $e: Float!) {
      currentPose(filters: {minConfidence: 0.5}) { frameId persons { trackId confidence keypoints } }
      poseHistory(startTime: $s, endTime: $e, personId: 1, limit: 5, skip: 2) { total limit skip frames { frameId } }
      person(personId: 2, includeTrajectory: true) { trackId frames trajectory { x y } }
      zones { id name maxOccupancy }
      zoneOccupancy { zoneId count trackIds }
      activity(startTime: $s, endTime: $e) { personFrames activities { activity personFrames } }
      systemStatus { status running }
      routers { id }
      sensing { routerId }
      events(startTime: $s, endTime: $e, types: ["person.fall_detected"]) { type eventId data }
    }"""
    r = gql(srv, q, tok, variables={"s": T0, "e": T0 + 100})
    assert r.status_code == 200, r.text
    body = r.json()
    assert "errors" not in body, body
    d = body["data"]
    rest = httpx.get(
        f"{srv.base}/api/v1/pose/history",
        params={"start_time": T0, "end_time": T0 + 100, "person_id": 1, "limit": 5, "skip": 2},
        headers={"Authorization": f"Bearer {tok}"},
    ).json()
    assert d["poseHistory"]["total"] == rest["total"] == 200
    assert (
        [f["frameId"] for f in d["poseHistory"]["frames"]] == [f["frame_id"] for f in rest["frames"]] == [2, 3, 4, 5, 6]
    )
    assert d["currentPose"]["frameId"] == 199
    assert [p["trackId"] for p in d["currentPose"]["persons"]] == [1]  # track 2 (0.25) is filtered out
    assert len(d["currentPose"]["persons"][0]["keypoints"]) == 17
    assert d["person"]["trackId"] == 2 and d["person"]["frames"] == 150 and len(d["person"]["trajectory"]) == 150
    assert [z["id"] for z in d["zones"]] == ["left", "right"]
    assert {o["zoneId"]: o["count"] for o in d["zoneOccupancy"]} == {"left": 0, "right": 2}
    assert d["activity"]["personFrames"] == 350
    assert d["systemStatus"]["running"] is True
    assert d["events"] == [] and d["routers"] == [] and d["sensing"] == []


def test_mutations_and_scopes(server: tuple[LiveServer, StoreBackedEngineView]) -> None:
    srv, view = server
    updates = view.zone_updates  # the lifespan handed the engine the stored zones once
    create = """mutation { createZone(zone: {id: "desk", name: "Desk", polygon: [[0,0],[1,0],[1,1]], maxOccupancy: 2})
      { id maxOccupancy } }"""
    # no credentials: UNAUTHENTICATED; bad credentials: a 401 like REST; wrong scope: FORBIDDEN
    assert codes(gql(srv, create).json()) == ["UNAUTHENTICATED"]
    r = gql(srv, create, "not-a-jwt")
    assert r.status_code == 401 and "invalid token" in r.json()["reason"]
    assert codes(gql(srv, create, token(srv, "pose:read")).json()) == ["FORBIDDEN"]
    assert view.zone_updates == updates

    writer = token(srv, "zone:write")
    r = gql(srv, create, writer).json()
    assert r["data"]["createZone"] == {"id": "desk", "maxOccupancy": 2}
    assert view.zone_updates == updates + 1 and "desk" in [z.id for z in view.zones]  # live in the engine
    assert codes(gql(srv, create, writer).json()) == ["CONFLICT"]  # the REST helper's 409
    bad = 'mutation { createZone(zone: {id: "x", name: "X", polygon: [[0,0],[1,0]]}) { id } }'
    assert codes(gql(srv, bad, writer).json()) == ["BAD_USER_INPUT"]
    assert gql(srv, 'mutation { deleteZone(zoneId: "desk") }', writer).json()["data"] == {"deleteZone": True}

    hook = 'mutation { createWebhook(webhook: {url: "http://127.0.0.1:9/h", events: ["*"]}) { id } }'
    assert codes(gql(srv, hook, token(srv, "config:write")).json()) == ["BAD_USER_INPUT"]  # SSRF rule of REST
    assert codes(gql(srv, 'mutation { swapModel(model: "x") { name } }', writer).json()) == ["FORBIDDEN"]
    admin = token(srv, "admin:all")
    # the store-backed view runs no engine: the admin gets a clear UNAVAILABLE, not a crash
    assert codes(gql(srv, 'mutation { swapModel(model: "x") { name } }', admin).json()) == ["UNAVAILABLE"]


def test_rate_limit(populated: Store) -> None:
    tiers = {name: {"limit": 1000, "window_s": 60.0} for name in ("default", "premium", "streaming")}
    tiers["authenticated"] = {"limit": 3, "window_s": 60.0}
    _, app = start(populated, rate_limit={"tiers": tiers})
    with live_server(app) as srv:
        tok = token(srv, "pose:read")
        statuses = [gql(srv, "{ currentPose { frameId } }", tok).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]  # the REST tier counts GraphQL requests too
        r = gql(srv, "{ currentPose { frameId } }", tok)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1


ABUSE = [
    (
        '{ __type(name: "PoseFrame") { fields { type ' + "{ ofType " * 30 + "{ name }" + " }" * 30 + " } } }",
        "QUERY_TOO_DEEP",
    ),
    ("{ " + " ".join(f"a{i}: currentPose {{ frameId }}" for i in range(100)) + " }", None),
    ("{ currentPose { " + "frameId " * 3000 + "} }", None),
]


@pytest.mark.parametrize("query,code", ABUSE, ids=["deep-nesting", "huge-aliases", "huge-document"])
def test_abusive_documents_refused(
    server: tuple[LiveServer, StoreBackedEngineView], query: str, code: str | None
) -> None:
    srv, _ = server
    r = gql(srv, query, token(srv, *ALL_READ))
    body = r.json()
    assert body.get("data") is None, body
    messages = " ".join(e["message"] for e in body["errors"])
    assert any(w in messages for w in ("deeper than the limit", "aliases", "token")), messages
    if code:
        assert code in codes(body)
    # the server is fine afterwards
    assert (
        gql(srv, "{ currentPose { frameId } }", token(srv, "pose:read")).json()["data"]["currentPose"]["frameId"] == 199
    )


def test_allow_list(populated: Store, tmp_path: Path) -> None:
    allowed = "{ currentPose { frameId } }"
    path = tmp_path / "persisted.json"
    path.write_text(json.dumps({query_hash(allowed): allowed}))
    _, app = start(populated, graphql={"allow_list_file": str(path)})
    with live_server(app) as srv:
        tok = token(srv, "pose:read")
        assert gql(srv, allowed, tok).json()["data"]["currentPose"]["frameId"] == 199
        by_hash = httpx.post(
            f"{srv.base}/graphql",
            json={"extensions": {"persistedQuery": {"version": 1, "sha256Hash": query_hash(allowed)}}},
            headers={"Authorization": f"Bearer {tok}"},
        )
        assert by_hash.json()["data"]["currentPose"]["frameId"] == 199
        other = gql(srv, "{ currentPose { frameId timestamp } }", tok).json()
        assert codes(other) == ["FORBIDDEN"] and "allow-list" in other["errors"][0]["message"]
        unknown = httpx.post(
            f"{srv.base}/graphql",
            json={"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}},
            headers={"Authorization": f"Bearer {tok}"},
        )
        assert unknown.status_code == 400 and "PersistedQueryNotFound" in unknown.text


async def _subscribe(srv: LiveServer, payload: dict[str, Any], query: str, n: int) -> list[dict[str, Any]]:
    async with connect(f"{srv.ws}/graphql", subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
        ack = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert ack["type"] == "connection_ack", ack
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        out = []
        while len(out) < n:
            msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert msg["type"] == "next", msg
            out.append(msg["payload"])
        return out


def test_subscription_over_websocket(server: tuple[LiveServer, StoreBackedEngineView]) -> None:
    srv, view = server
    tok = token(srv, "stream:subscribe")
    query = 'subscription { poses(filters: {zoneId: "left"}) { frameId persons { trackId zoneIds } } }'

    async def run() -> list[dict[str, Any]]:
        task = asyncio.create_task(_subscribe(srv, {"authorization": f"Bearer {tok}"}, query, 3))
        for i in range(200):  # publish until the subscriber has what it needs (it subscribes asynchronously)
            if task.done():
                break
            await asyncio.to_thread(srv.call, view.publish_frame, live_frame(5000 + i))
            await asyncio.sleep(0.02)
        return await task

    frames = asyncio.run(run())
    assert len(frames) == 3
    for f in frames:
        persons = f["data"]["poses"]["persons"]
        assert [p["trackId"] for p in persons] == [7] and persons[0]["zoneIds"] == ["left"]  # zone filter applied
    ids = [f["data"]["poses"]["frameId"] for f in frames]
    assert ids == sorted(ids) and ids[0] >= 5000


@pytest.mark.parametrize("payload", [{}, {"authorization": "Bearer nope"}], ids=["none", "bad-token"])
def test_subscription_needs_credentials(
    server: tuple[LiveServer, StoreBackedEngineView], payload: dict[str, Any]
) -> None:
    srv, _ = server

    async def run() -> int | None:
        async with connect(f"{srv.ws}/graphql", subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
            await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            return closed.value.rcvd.code if closed.value.rcvd else None

    assert asyncio.run(run()) == 4403


def test_subscription_needs_stream_scope(server: tuple[LiveServer, StoreBackedEngineView]) -> None:
    srv, _ = server
    tok = token(srv, "pose:read")

    async def run() -> dict[str, Any]:
        async with connect(f"{srv.ws}/graphql", subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
            await ws.send(json.dumps({"type": "connection_init", "payload": {"token": tok}}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "connection_ack"
            q = "subscription { poses { frameId } }"
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": q}}))
            return json.loads(await asyncio.wait_for(ws.recv(), 5))

    msg = asyncio.run(run())
    assert msg["type"] in ("error", "next")
    errors = msg["payload"] if msg["type"] == "error" else msg["payload"]["errors"]
    assert errors[0]["extensions"]["code"] == "FORBIDDEN"


def test_subscription_ends_when_its_key_is_revoked(server: tuple[LiveServer, StoreBackedEngineView]) -> None:
    """Like the WebSocket: revoking the API key a subscription authenticated with ends it (checked at most a
    second later), with an UNAUTHENTICATED error."""
    srv, view = server
    admin = {"Authorization": f"Bearer {token(srv, 'admin:all')}"}
    made = httpx.post(
        f"{srv.base}/api/v1/auth/keys", json={"owner": "box", "scopes": ["stream:subscribe"]}, headers=admin
    )
    assert made.status_code in (200, 201), made.text
    key, key_id = made.json()["api_key"], made.json()["key_id"]

    async def run() -> list[dict[str, Any]]:
        async with connect(f"{srv.ws}/graphql", subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
            await ws.send(json.dumps({"type": "connection_init", "payload": {"token": key}}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "connection_ack"
            q = "subscription { poses { frameId } }"
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": q}}))
            seen: list[dict[str, Any]] = []
            revoked = False
            for i in range(400):
                await asyncio.to_thread(srv.call, view.publish_frame, live_frame(7000 + i))
                try:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 0.05))
                    await asyncio.sleep(0.01)
                except TimeoutError:
                    continue
                seen.append(msg)
                if msg["type"] == "next" and not revoked and "errors" not in msg["payload"]:
                    revoked = True
                    r = await asyncio.to_thread(httpx.delete, f"{srv.base}/api/v1/auth/keys/{key_id}", headers=admin)
                    assert r.status_code == 204
                if msg["type"] in ("complete", "error") or "errors" in msg.get("payload", {}):
                    return seen
            return seen

    seen = asyncio.run(run())
    assert seen[0]["type"] == "next" and "errors" not in seen[0]["payload"]
    last = seen[-1]
    errors = last["payload"] if last["type"] == "error" else last.get("payload", {}).get("errors")
    assert errors and errors[0]["extensions"]["code"] == "UNAUTHENTICATED", seen[-3:]
    assert "revoked" in errors[0]["message"]


def test_event_and_sensing_subscriptions(server: tuple[LiveServer, StoreBackedEngineView]) -> None:
    from wdp.schemas import PersonEnteredZone, SensingState

    srv, view = server
    tok = token(srv, "stream:subscribe")
    init = {"authorization": f"Bearer {tok}"}
    events_q = 'subscription { events(topic: "zone_events", filters: {zoneId: "left"}) { type zoneId trackId data } }'
    sensing_q = 'subscription { sensing(routerId: "r2") { routerId motion motionScore } }'

    def publish(i: int) -> None:
        view.publish_event(PersonEnteredZone(timestamp=T0 + i, track_id=1, zone_id="right"))  # filtered out
        view.publish_event(PersonEnteredZone(timestamp=T0 + i, track_id=7, zone_id="left"))
        for r in ("r1", "r2"):
            view.publish_sensing(
                SensingState(timestamp=T0 + i, router_id=r, motion=r == "r2", motion_score=2.5, presence=True)
            )

    async def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        ev = asyncio.create_task(_subscribe(srv, init, events_q, 2))
        se = asyncio.create_task(_subscribe(srv, init, sensing_q, 2))
        for i in range(200):
            if ev.done() and se.done():
                break
            await asyncio.to_thread(srv.call, publish, i)
            await asyncio.sleep(0.02)
        return await ev, await se

    events, states = asyncio.run(run())
    for e in events:
        got = e["data"]["events"]
        assert got["type"] == "person.entered_zone" and got["zoneId"] == "left" and got["trackId"] == 7
        assert got["data"]["zone_id"] == "left"
    for s in states:
        assert s["data"]["sensing"] == {"routerId": "r2", "motion": True, "motionScore": 2.5}
