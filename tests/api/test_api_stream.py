"""/ws/v1/stream through the test client, and the hub's slow-client handling on its own."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from api_support import Api, live_frame
from litestar.exceptions import WebSocketDisconnect

from wdp.schemas import AlertSystemError, PersonEnteredZone, PersonLost
from wdp.serve.engine_view import StoreBackedEngineView
from wdp.serve.metrics import ApiMetrics
from wdp.serve.security import Principal
from wdp.serve.settings import StreamSettings
from wdp.serve.stream.hub import StreamHub
from wdp.store import Store

pytestmark = pytest.mark.anyio

WS = "/ws/v1/stream"
TIMEOUT = 5.0


def _sentinel(message: str = "sentinel") -> AlertSystemError:
    return AlertSystemError(timestamp=time.time(), component="test", message=message)


async def _eventually(condition: Any) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def _until_sentinel(ws: Any) -> list[dict]:
    """Messages up to (not including) the sentinel alert (data messages are FIFO: all before it)."""
    out = []
    while True:
        msg = ws.receive_json(timeout=TIMEOUT)
        if msg["type"] == "event" and msg["event"].get("component") == "test":
            return out
        out.append(msg)


@pytest.mark.parametrize(
    ("query", "code"), [("", 4001), ("?token=nonsense", 4001), ("?token=wdp_000000000000_x", 4001)]
)
async def test_refused_with_4001(api: Api, query: str, code: int) -> None:
    with await api.client.websocket_connect(WS + query) as ws:
        if not query:  # no credentials: the first message must be an auth message; anything else is refused
            ws.send_json({"type": "subscribe", "topic": "pose_updates"})
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_json(timeout=TIMEOUT)
    assert info.value.code == code


async def test_refused_without_scope(api: Api) -> None:
    with await api.client.websocket_connect(f"{WS}?token={api.token('pose:read')}") as ws:
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_json(timeout=TIMEOUT)
    assert info.value.code == 4003


async def test_subscribe_filters_and_protocol_errors(api: Api) -> None:
    with await api.client.websocket_connect(f"{WS}?token={api.token('stream:subscribe')}") as ws:
        welcome = ws.receive_json(timeout=TIMEOUT)
        assert welcome["type"] == "connection" and welcome["status"] == "connected" and len(welcome["client_id"]) == 32
        assert welcome["topics"] == [
            "pose_updates",
            "system_alerts",
            "zone_events",
            "person_tracking",
            "sensing_updates",
            "sensing_events",
            "dense_poses",
        ]
        assert api.services.hub.clients.keys() == {welcome["client_id"]}

        # bad messages get an error and the connection stays usable
        for raw, needle in (
            ('{"type": "dance"}', "Invalid value 'dance'"),
            ("not json", "malformed"),
            ('{"type": "subscribe", "topic": "pose_updates", "colour": 1}', "unknown field"),
            ('{"type": "subscribe", "topic": "gossip"}', "topic"),
            ('{"type": "configure", "config": {"max_fps": -1}}', "max_fps"),
            ("x" * 20000, "larger than"),
        ):
            ws.send_text(raw)
            err = ws.receive_json(timeout=TIMEOUT)
            assert err["type"] == "error" and needle.lower() in err["reason"].lower(), (raw[:40], err)
        ws.send_json({"type": "ping", "timestamp": 123.5})
        pong = ws.receive_json(timeout=TIMEOUT)
        assert pong["type"] == "pong" and pong["echo"] == 123.5

        ws.send_json({"type": "subscribe", "topic": "pose_updates", "filters": {"zone_id": "right"}})
        ack = ws.receive_json(timeout=TIMEOUT)
        assert ack == {
            "type": "subscription",
            "topic": "pose_updates",
            "status": "subscribed",
            "filters": {
                "zone_id": "right",
                "min_confidence": None,
                "person_id": None,
                "min_severity": None,
                "router_id": None,
            },
        }
        api.publish(live_frame(11))
        update = ws.receive_json(timeout=TIMEOUT)
        assert update["type"] == "pose_update" and update["frame"]["frame_id"] == 11
        assert [p["track_id"] for p in update["frame"]["persons"]] == [8]

        ws.send_json({"type": "subscribe", "topic": "pose_updates", "filters": {"min_confidence": 0.5}})
        assert ws.receive_json(timeout=TIMEOUT)["status"] == "subscribed"
        api.publish(live_frame(12))
        assert [p["track_id"] for p in ws.receive_json(timeout=TIMEOUT)["frame"]["persons"]] == [7]

        ws.send_json({"type": "subscribe", "topic": "system_alerts"})
        ws.send_json({"type": "unsubscribe", "topic": "pose_updates"})
        acks = [ws.receive_json(timeout=TIMEOUT) for _ in range(2)]
        assert [a["status"] for a in acks] == ["subscribed", "unsubscribed"]
        api.publish(live_frame(13))
        api.publish(_sentinel())
        assert _until_sentinel(ws) == []  # no pose update after unsubscribing
    await _eventually(lambda: not api.services.hub.clients)


async def test_configure_max_fps(api: Api) -> None:
    with await api.client.websocket_connect(f"{WS}?token={api.token('stream:subscribe')}") as ws:
        ws.receive_json(timeout=TIMEOUT)
        ws.send_json({"type": "configure", "config": {"max_fps": 2}})
        assert ws.receive_json(timeout=TIMEOUT) == {"type": "configured", "config": {"max_fps": 2.0}}
        ws.send_json({"type": "subscribe", "topic": "pose_updates"})
        ws.send_json({"type": "subscribe", "topic": "system_alerts"})
        ws.receive_json(timeout=TIMEOUT)
        ws.receive_json(timeout=TIMEOUT)
        for f in range(5):  # published back to back: well above 2 per second
            api.publish(live_frame(f))
        api.publish(_sentinel())
        updates = _until_sentinel(ws)
        assert [u["frame"]["frame_id"] for u in updates] == [0]
        time.sleep(0.5)
        api.publish(live_frame(9))
        assert ws.receive_json(timeout=TIMEOUT)["frame"]["frame_id"] == 9
        ws.send_json({"type": "configure", "config": {"max_fps": 500}})
        assert ws.receive_json(timeout=TIMEOUT)["config"]["max_fps"] == 30.0  # capped at the server ceiling


async def test_person_tracking_and_event_topics(api: Api) -> None:
    token = api.token("stream:subscribe")
    with (
        await api.client.websocket_connect(f"{WS}?token={token}") as tracker,
        await api.client.websocket_connect(f"{WS}?token={token}") as zones,
    ):
        tracker.receive_json(timeout=TIMEOUT)
        zones.receive_json(timeout=TIMEOUT)
        tracker.send_json({"type": "subscribe", "topic": "person_tracking", "filters": {"person_id": 7}})
        tracker.send_json({"type": "subscribe", "topic": "system_alerts"})
        zones.send_json({"type": "subscribe", "topic": "zone_events", "filters": {"zone_id": "right"}})
        zones.send_json({"type": "subscribe", "topic": "system_alerts", "filters": {"min_severity": "critical"}})
        for ws in (tracker, tracker, zones, zones):
            assert ws.receive_json(timeout=TIMEOUT)["status"] == "subscribed"
        api.publish(live_frame(21))
        api.publish(PersonEnteredZone(timestamp=1.0, track_id=8, zone_id="right"))
        api.publish(PersonEnteredZone(timestamp=2.0, track_id=7, zone_id="left"))
        api.publish(PersonLost(timestamp=3.0, track_id=7, duration_s=9.0))
        api.publish(AlertSystemError(timestamp=4.0, component="capture", message="router lost", severity="critical"))
        api.publish(_sentinel())
        got = _until_sentinel(tracker)
        assert [(m["type"], m.get("person", {}).get("track_id") or m.get("event", {}).get("type")) for m in got] == [
            ("person_update", 7),
            ("event", "person.entered_zone"),
            ("event", "person.lost"),
            ("event", "alert.system_error"),
        ]
        assert got[0]["frame_id"] == 21 and got[1]["topic"] == "person_tracking"
        got = []
        while len(got) < 2:
            got.append(zones.receive_json(timeout=TIMEOUT))
        assert [(m["topic"], m["event"]["type"]) for m in got] == [
            ("zone_events", "person.entered_zone"),
            ("system_alerts", "alert.system_error"),
        ]
        assert got[0]["event"]["track_id"] == 8


async def test_stream_metrics(api: Api) -> None:
    with await api.client.websocket_connect(f"{WS}?token={api.token('stream:subscribe')}") as ws:
        ws.receive_json(timeout=TIMEOUT)
        ws.send_json({"type": "subscribe", "topic": "pose_updates"})
        ws.receive_json(timeout=TIMEOUT)
        api.publish(live_frame(1))
        ws.receive_json(timeout=TIMEOUT)
        text = (await api.client.get("/metrics")).text
        assert "wdp_ws_connections 1.0" in text
        assert 'wdp_ws_messages_total{direction="out",type="pose_update"} 1.0' in text
        assert 'wdp_ws_messages_total{direction="in",type="subscribe"} 1.0' in text
        status = (await api.client.get("/api/v1/system/status", headers=api.auth("system:read"))).json()
        assert status["stream"]["clients"] == 1
    await _eventually(lambda: not api.services.hub.clients)
    text = (await api.client.get("/metrics")).text
    assert "wdp_ws_connections 0.0" in text and 'wdp_ws_disconnects_total{reason="closed"} 1.0' in text


# ------------------------------------------------------------------------------------------------ hub alone


async def test_slow_client_never_slows_others() -> None:
    """One client whose socket never drains: its queue stays bounded, its oldest messages are dropped, it is
    disconnected after sustained overflow, and a fast client receives every frame without delay."""
    with Store(":memory:") as store:
        view = StoreBackedEngineView(store)
        settings = StreamSettings(queue_size=8, overflow_disconnect_s=0.3)
        hub = StreamHub(view, settings, ApiMetrics(view.status))
        await hub.start()
        fast_got: list[tuple[float, str]] = []
        blocked = asyncio.Event()

        async def fast_send(text: str) -> None:
            fast_got.append((time.perf_counter(), text))

        async def stalled_send(text: str) -> None:
            await blocked.wait()  # a peer that stopped reading: the send never completes

        principal = Principal(subject="t", scopes=frozenset({"stream:subscribe"}), kind="jwt", tier="authenticated")
        fast, slow = hub.connect(principal, fast_send), hub.connect(principal, stalled_send)
        from wdp.serve.stream.protocol import Subscribe

        for client in (fast, slow):
            hub.handle(client, Subscribe(topic="pose_updates"))
        tasks = [asyncio.create_task(c.run_sender()) for c in (fast, slow)]
        lags = []
        n = 60
        for f in range(n):
            sent_at = time.perf_counter()
            view.publish_frame(live_frame(f))
            await asyncio.sleep(0.01)  # ~100 fps for 0.6 s
            lags.append(fast_got[-1][0] - sent_at if fast_got and f'"frame_id":{f},' in fast_got[-1][1] else None)
        await asyncio.sleep(0.05)
        frames_seen = sum('"type":"pose_update"' in t for _, t in fast_got)
        assert frames_seen == n  # every frame, in order
        assert all(lag is not None and lag < 0.05 for lag in lags), lags
        assert slow.queued <= settings.queue_size
        # it lost the oldest frames while overflowing (offers stop once it is kicked)
        assert slow.dropped >= 1 and hub.messages_dropped == slow.dropped
        assert slow.dropped + settings.queue_size + 1 <= n
        assert slow.kicked.is_set() and slow.close_code == 1008 and "too slow" in slow.close_reason
        assert not fast.kicked.is_set() and fast.dropped == 0
        for t in tasks:
            t.cancel()
        await hub.stop()
