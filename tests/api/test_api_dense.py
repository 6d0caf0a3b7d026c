"""DensePose output on request: REST ``?dense=true`` (current frame and stored history), the ``dense_poses``
WebSocket topic; default responses keep their shape (no ``dense`` key)."""

from __future__ import annotations

import time

import msgspec
import numpy as np
import pytest
from api_support import T0, Api, live_frame
from test_api_stream import TIMEOUT, WS, _sentinel, _until_sentinel

from wdp.densepose_codec import decode_dense, encode_dense
from wdp.schemas import DensePose, PoseFrame
from wdp.store import dense as store_dense

pytestmark = pytest.mark.anyio
POSE = ("pose:read",)


def _dense(seed: int) -> DensePose:
    rng = np.random.default_rng(seed)
    parts = rng.integers(0, 25, size=(12, 5)).astype(np.uint8)
    uv = rng.random((2, 12, 5))
    return encode_dense(parts, uv, (30, 20, 5, 12), (64, 64))


def _with_dense(frame: PoseFrame) -> PoseFrame:
    persons = [msgspec.structs.replace(p, dense=_dense(p.track_id)) for p in frame.persons]
    return msgspec.structs.replace(frame, persons=persons)


def _decoded(person: dict) -> DensePose:
    return msgspec.convert(person["dense"], DensePose)


async def test_current_dense_on_request_only(api: Api) -> None:
    h = api.auth(*POSE)
    r = await api.client.get("/api/v1/pose/current?dense=true&min_confidence=0", headers=h)
    assert r.status_code == 404 and "engine.dense" in r.text

    api.publish(_with_dense(live_frame(41)))
    plain = (await api.client.get("/api/v1/pose/current?min_confidence=0", headers=h)).json()
    assert plain["frame_id"] == 41 and len(plain["persons"]) == 2
    assert all("dense" not in p for p in plain["persons"])  # the default response has no dense key

    dense = (await api.client.get("/api/v1/pose/current?dense=true&min_confidence=0", headers=h)).json()
    assert dense["frame_id"] == 41 and [p["track_id"] for p in dense["persons"]] == [7, 8]
    for p in dense["persons"]:
        got = _decoded(p)
        assert got == _dense(p["track_id"])
        labels, _ = decode_dense(got)
        assert labels.shape == (12, 5)
    # filters apply to the dense frame too
    filtered = (await api.client.get("/api/v1/pose/current?dense=true&min_confidence=0.5", headers=h)).json()
    assert [p["track_id"] for p in filtered["persons"]] == [7] and "dense" in filtered["persons"][0]


async def test_history_dense_from_the_store(api: Api) -> None:
    h = api.auth(*POSE)
    frames = (
        await api.client.get(f"/api/v1/pose/history?start_time={T0}&end_time={T0 + 1}&limit=10", headers=h)
    ).json()["frames"]
    assert frames and all("dense" not in p for f in frames for p in f["persons"])
    # the store's dense option kept the dense output of the first five frames
    stored = [
        PoseFrame(
            frame_id=f["frame_id"],
            timestamp=f["timestamp"],
            source=f["source"],
            persons=[msgspec.convert(p, type=type(_with_dense(live_frame(0)).persons[0])) for p in f["persons"]],
        )
        for f in frames[:5]
    ]
    assert store_dense.append_frames(api.store.cursor(), [_with_dense(f) for f in stored]) == 5
    url = f"/api/v1/pose/history?start_time={T0}&end_time={T0 + 1}&limit=10"
    again = (await api.client.get(url, headers=h)).json()["frames"]
    assert all("dense" not in p for f in again for p in f["persons"])  # still nothing unless asked
    dense = (await api.client.get(url + "&dense=true", headers=h)).json()["frames"]
    assert [f["frame_id"] for f in dense] == [f["frame_id"] for f in frames]
    for i, f in enumerate(dense):
        for p in f["persons"]:
            if i < 5:
                assert _decoded(p) == _dense(p["track_id"])
            else:
                assert "dense" not in p  # stored while the option was off


async def test_dense_poses_topic(api: Api) -> None:
    with await api.client.websocket_connect(f"{WS}?token={api.token('stream:subscribe')}") as ws:
        welcome = ws.receive_json(timeout=TIMEOUT)
        assert "dense_poses" in welcome["topics"]
        ws.send_json({"type": "subscribe", "topic": "dense_poses", "filters": {"min_confidence": 0.5}})
        ws.send_json({"type": "subscribe", "topic": "pose_updates"})
        ws.send_json({"type": "subscribe", "topic": "system_alerts"})  # the sentinel's topic
        assert [ws.receive_json(timeout=TIMEOUT)["status"] for _ in range(3)] == ["subscribed"] * 3
        api.publish(_with_dense(live_frame(51, time.time())))
        api.publish(_sentinel())
        msgs = _until_sentinel(ws)
        by_type = {m["type"]: m for m in msgs}
        assert set(by_type) == {"dense_pose_update", "pose_update"}
        d = by_type["dense_pose_update"]
        assert d["topic"] == "dense_poses" and d["frame"]["frame_id"] == 51
        assert [p["track_id"] for p in d["frame"]["persons"]] == [7]
        assert _decoded(d["frame"]["persons"][0]) == _dense(7)
        assert all("dense" not in p for p in by_type["pose_update"]["frame"]["persons"])


async def test_openapi_documents_dense(api: Api) -> None:
    doc = (await api.client.get("/schema/openapi.json")).json()
    params = {p["name"] for p in doc["paths"]["/api/v1/pose/current"]["get"]["parameters"]}
    assert "dense" in params
    assert "DensePose" in doc["components"]["schemas"]
