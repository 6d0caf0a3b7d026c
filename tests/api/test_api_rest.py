"""REST endpoints against a store with known history and a store-backed engine view."""

from __future__ import annotations

import io

import duckdb
import pytest
from api_support import FPS, N_FRAMES, T0, ZONES, Api, live_frame

from wdp.schemas import AlertHighOccupancy, PersonEnteredZone, WebhookSubscription
from wdp.serve.engine_view import ComponentHealth
from wdp.store import config as store_config
from wdp.store import events as store_events
from wdp.store import outbox

pytestmark = pytest.mark.anyio

ALL = ("admin:all",)


async def test_current_pose_and_filters(api: Api) -> None:
    h = api.auth("pose:read")
    api.view._loaded = True  # ignore the stored history: nothing published yet
    r = await api.client.get("/api/v1/pose/current", headers=h)
    assert r.status_code == 404 and r.json()["reason"] == "no pose data available"
    api.view.publish_frame(live_frame(42))
    body = (await api.client.get("/api/v1/pose/current", headers=h)).json()
    assert body["frame_id"] == 42 and [p["track_id"] for p in body["persons"]] == [7]  # default min_confidence 0.5
    body = (await api.client.get("/api/v1/pose/current?min_confidence=0", headers=h)).json()
    assert [p["track_id"] for p in body["persons"]] == [7, 8]
    body = (await api.client.get("/api/v1/pose/current?min_confidence=0&zone_id=right", headers=h)).json()
    assert [p["track_id"] for p in body["persons"]] == [8] and body["persons"][0]["zone_ids"] == ["right"]
    assert len(body["persons"][0]["keypoints"]) == 17
    for bad in ("min_confidence=1.5", "min_confidence=abc", "min_confidence=-0.1"):
        r = await api.client.get(f"/api/v1/pose/current?{bad}", headers=h)
        assert r.status_code == 422, bad
        assert r.json()["extra"][0]["key"] == "min_confidence"


async def test_current_falls_back_to_latest_stored_frame(api: Api) -> None:
    body = (await api.client.get("/api/v1/pose/current?min_confidence=0", headers=api.auth("pose:read"))).json()
    assert body["frame_id"] == N_FRAMES - 1 and body["timestamp"] == T0 + (N_FRAMES - 1) / FPS


async def test_history(api: Api) -> None:
    h = api.auth("pose:read")
    url = "/api/v1/pose/history"
    end = T0 + N_FRAMES / FPS
    page = (await api.client.get(url, params={"start_time": T0, "end_time": end}, headers=h)).json()
    assert page["total"] == N_FRAMES and len(page["frames"]) == 100 and page["frames"][0]["frame_id"] == 0
    page = (
        await api.client.get(url, params={"start_time": T0, "end_time": end, "limit": 1000, "skip": 150}, headers=h)
    ).json()
    assert [f["frame_id"] for f in page["frames"]] == list(range(150, N_FRAMES))
    page = (
        await api.client.get(url, params={"start_time": T0, "end_time": end, "person_id": 2, "limit": 5}, headers=h)
    ).json()
    assert page["total"] == N_FRAMES - 50 and page["frames"][0]["frame_id"] == 50
    assert all([p["track_id"] for p in f["persons"]] == [2] for f in page["frames"])
    page = (
        await api.client.get(
            url, params={"start_time": T0, "end_time": end, "zone_id": "left", "limit": 1000}, headers=h
        )
    ).json()
    assert page["total"] == 100  # track 1 is left of x=5 for the first half
    page = (
        await api.client.get(
            url, params={"start_time": T0, "end_time": end, "min_confidence": 0.5, "limit": 1}, headers=h
        )
    ).json()
    assert page["total"] == N_FRAMES and [p["track_id"] for p in page["frames"][0]["persons"]] == [1]
    for params in (
        {"start_time": T0, "end_time": end, "limit": 1001},
        {"start_time": T0, "end_time": end, "limit": 0},
        {"start_time": T0, "end_time": end, "skip": -1},
        {"start_time": end, "end_time": T0},
        {"start_time": T0},
        {"start_time": "yesterday", "end_time": end},
        {"start_time": T0, "end_time": end, "person_id": 2**40},
    ):
        r = await api.client.get(url, params=params, headers=h)
        assert r.status_code == 422, params
        assert set(r.json()) == {"status_code", "error", "reason", "extra"}


async def test_person_details(api: Api) -> None:
    h = api.auth("pose:read")
    body = (await api.client.get("/api/v1/pose/persons/2", headers=h)).json()
    assert body["trajectory"] is None
    person = body["person"]
    assert person["track_id"] == 2 and person["frames"] == N_FRAMES - 50
    assert person["first_seen"] == T0 + 50 / FPS and person["activities"] == {"sitting": N_FRAMES - 50}
    body = (await api.client.get("/api/v1/pose/persons/1?include_trajectory=true", headers=h)).json()
    traj = body["trajectory"]
    assert len(traj["timestamp"]) == len(traj["x"]) == N_FRAMES and traj["x"][0] == 0.5
    body = (await api.client.get("/api/v1/pose/persons/1?include_trajectory=true&bucket_s=10", headers=h)).json()
    assert len(body["trajectory"]["x"]) == 2
    assert (await api.client.get("/api/v1/pose/persons/99", headers=h)).status_code == 404
    assert (await api.client.get("/api/v1/pose/persons/1?bucket_s=0", headers=h)).status_code == 422


async def test_zones_occupancy(api: Api) -> None:
    h = api.auth("pose:read")
    api.view.publish_frame(live_frame(5))
    body = (await api.client.get("/api/v1/pose/zones", headers=h)).json()
    by_id = {z["zone_id"]: z for z in body["zones"]}
    assert body["frame_id"] == 5
    assert by_id["left"]["track_ids"] == [7] and by_id["right"]["track_ids"] == [8]
    assert by_id["left"]["max_occupancy"] == 1 and not by_id["left"]["over_capacity"]
    series = (
        await api.client.get(
            "/api/v1/pose/zones/right/occupancy",
            params={"start_time": T0, "end_time": T0 + 20, "bucket_s": 10},
            headers=h,
        )
    ).json()
    # bucket 0: frames 0-99 (track 2 from frame 50: 50 frames with 1 person); bucket 1: 100-199 (2 persons)
    assert [(b["frames"], b["mean"], b["max"]) for b in series["buckets"]] == [(100, 0.5, 1), (100, 2.0, 2)]
    r = await api.client.get(
        "/api/v1/pose/zones/nowhere/occupancy", params={"start_time": T0, "end_time": T0 + 1}, headers=h
    )
    assert r.status_code == 404


async def test_system_endpoints(api: Api) -> None:
    h = api.auth("system:read")
    status = (await api.client.get("/api/v1/system/status", headers=h)).json()
    assert status["status"] == "running" and status["engine"]["running"] and status["api_versions"] == ["v1"]
    health = await api.client.get("/api/v1/system/health")  # public
    assert health.status_code == 200 and health.json()["status"] == "healthy"
    assert health.json()["components"]["store"]["status"] == "ok"
    store_config.ROUTERS.put(
        api.store.cursor(),
        __import__("wdp.schemas").schemas.Router(id="r1", name="Lab", kind="nexmon", status="connected"),
    )
    store_config.ROUTERS.put(
        api.store.cursor(),
        __import__("wdp.schemas").schemas.Router(id="r2", name="Hall", kind="esp32", status="disconnected"),
    )
    routers = (await api.client.get("/api/v1/system/routers", headers=h)).json()
    assert [r["id"] for r in routers] == ["r1", "r2"]
    health = (await api.client.get("/api/v1/system/health")).json()
    assert health["status"] == "degraded" and health["components"]["routers"]["detail"] == "1/2 connected"
    api.view.components["inference"] = ComponentHealth(status="failed", detail="model not loaded")
    r = await api.client.get("/api/v1/system/health")
    assert r.status_code == 503 and r.json()["components"]["engine.inference"]["detail"] == "model not loaded"
    for f in range(3):
        api.view.publish_frame(live_frame(f))
    perf = (await api.client.get("/api/v1/system/performance", headers=h)).json()
    assert perf["pipeline"]["frames_total"] == 3 and perf["pipeline"]["latency_ms_p50"] == 12.5
    stopped = (await api.client.post("/api/v1/system/stop", headers=api.auth(*ALL))).json()
    assert stopped["running"] is False
    status = (await api.client.get("/api/v1/system/status", headers=h)).json()
    assert status["status"] == "stopped"
    assert (await api.client.post("/api/v1/system/start", headers=api.auth(*ALL))).json()["running"] is True


async def test_analytics(api: Api) -> None:
    h = api.auth("analytics:read")
    end = T0 + N_FRAMES / FPS
    act = (
        await api.client.get("/api/v1/analytics/activity", params={"start_time": T0, "end_time": end}, headers=h)
    ).json()
    assert act["person_frames"] == N_FRAMES + (N_FRAMES - 50)
    assert {a["activity"]: (a["person_frames"], a["persons"]) for a in act["activities"]} == {
        "walking": (N_FRAMES, 1),
        "sitting": (N_FRAMES - 50, 1),
    }
    act = (
        await api.client.get(
            "/api/v1/analytics/activity",
            params={"start_time": T0, "end_time": end, "zone_id": "right", "bucket_s": 10},
            headers=h,
        )
    ).json()
    assert act["person_frames"] == 100 + 150 and len(act["occupancy"]) == 2
    heat = (
        await api.client.get(
            "/api/v1/analytics/heatmaps",
            params={"start_time": T0, "end_time": end, "cell_m": 1.0, "nx": 10, "ny": 8},
            headers=h,
        )
    ).json()
    counts = heat["counts"]
    assert len(counts) == 8 and len(counts[0]) == 10
    assert sum(map(sum, counts)) == N_FRAMES + (N_FRAMES - 50)
    assert counts[2][8] == N_FRAMES - 50  # track 2 sits at (8, 2)
    r = await api.client.get(
        "/api/v1/analytics/heatmaps",
        params={"start_time": T0, "end_time": end, "nx": 1000, "ny": 1000},
        headers=h,
    )
    assert r.status_code == 422
    report = (
        await api.client.get("/api/v1/analytics/reports", params={"start_time": T0, "end_time": end}, headers=h)
    ).json()
    assert report["frames"] == N_FRAMES and report["distinct_tracks"] == 2
    assert report["mean_persons"] == pytest.approx((2 * N_FRAMES - 50) / N_FRAMES)
    zones = {z["zone_id"]: z for z in report["zones"]}
    assert zones["right"]["peak_occupancy"] == 2 and zones["left"]["person_frames"] == 100


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
async def test_export(api: Api, fmt: str, tmp_path) -> None:  # noqa: ANN001
    h = api.auth("analytics:read")
    r = await api.client.get(
        "/api/v1/analytics/export",
        params={"table": "persons", "format": fmt, "start_time": T0, "end_time": T0 + 10, "person_id": 1},
        headers=h,
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-export-rows"] == "100"
    assert r.headers["content-type"].startswith({"parquet": "application/vnd.apache.parquet", "csv": "text/csv"}[fmt])
    assert f"wdp-persons.{fmt}" in r.headers["content-disposition"]
    path = tmp_path / f"out.{fmt}"
    path.write_bytes(r.content)
    reader = "read_parquet" if fmt == "parquet" else "read_csv_auto"
    rows = duckdb.sql(f"SELECT count(*), min(track_id), max(track_id) FROM {reader}('{path}')").fetchall()[0]
    assert rows == (100, 1, 1)
    if fmt == "csv":
        assert io.StringIO(r.text).readline().startswith("time,ts,frame_id,track_id")
    bad = await api.client.get("/api/v1/analytics/export", params={"table": "frames", "zone_id": "left"}, headers=h)
    assert bad.status_code == 422
    bad = await api.client.get("/api/v1/analytics/export", params={"format": "xlsx"}, headers=h)
    assert bad.status_code == 422


async def test_zone_crud_goes_live(api: Api) -> None:
    w = api.auth("zone:write")
    base = "/api/v1/config/zones"
    updates = api.view.zone_updates
    assert [z.id for z in api.view.zones] == ["left", "right"]  # stored zones handed over at startup
    zone = {"id": "sofa", "name": "Sofa", "polygon": [[1, 1], [3, 1], [3, 2], [1, 2]], "max_occupancy": 2}
    assert (await api.client.post(base, json=zone, headers=w)).status_code == 201
    assert [z.id for z in api.view.zones] == [
        "left",
        "right",
        "sofa",
    ] and api.view.zone_updates == updates + 1
    assert (await api.client.post(base, json=zone, headers=w)).status_code == 409
    zone["name"] = "Big sofa"
    assert (await api.client.put(f"{base}/sofa", json=zone, headers=w)).json()["name"] == "Big sofa"
    assert next(z for z in api.view.zones if z.id == "sofa").name == "Big sofa"
    assert (await api.client.put(f"{base}/other", json=zone, headers=w)).status_code == 422  # id mismatch
    for bad in (
        {**zone, "polygon": [[0, 0], [1, 1]]},  # two vertices
        {**zone, "polygon": [[0, 0], [1, 1], [2, 2]]},  # collinear: no area
        {**zone, "polygon": [[0, 0], [1e9, 0], [0, 1]]},  # absurd coordinates
        {**zone, "id": "bad id!"},
        {**zone, "max_occupancy": -1},
        {**zone, "colour": "red"},  # unknown field
        {**zone, "polygon": "square"},
    ):
        r = await api.client.post(base, json=bad, headers=w)
        assert r.status_code == 422, (bad, r.text)
    listed = (await api.client.get(base, headers=api.auth("system:read"))).json()
    assert [z["id"] for z in listed] == ["left", "right", "sofa"]
    assert (await api.client.delete(f"{base}/sofa", headers=w)).status_code == 204
    assert [z.id for z in api.view.zones] == ["left", "right"]
    assert (await api.client.delete(f"{base}/sofa", headers=w)).status_code == 404
    assert (await api.client.get(f"{base}/sofa", headers=w)).status_code == 404


async def test_router_and_alert_crud(api: Api) -> None:
    w = api.auth("config:write")
    r = await api.client.post(
        "/api/v1/config/routers",
        headers=w,
        json={"id": "r1", "name": "Lab", "kind": "nexmon", "host": "10.0.0.2", "port": 5500},
    )
    assert r.status_code == 201
    for bad in (
        {"id": "r2", "name": "X", "kind": "toaster"},
        {"id": "r2", "name": "X", "kind": "esp32", "port": 70000},
        {"id": "r2", "name": "X", "kind": "esp32", "loss": 2.0},
    ):
        assert (await api.client.post("/api/v1/config/routers", headers=w, json=bad)).status_code == 422, bad
    assert (await api.client.get("/api/v1/config/routers/r1", headers=w)).json()["port"] == 5500
    rule = {"id": "falls", "name": "Falls", "event_types": ["person.fall_detected"], "zone_ids": ["left"]}
    assert (await api.client.post("/api/v1/config/alerts", headers=w, json=rule)).status_code == 201
    for bad in (
        {**rule, "id": "x", "event_types": ["person.exploded"]},
        {**rule, "id": "x", "zone_ids": ["attic"]},
        {**rule, "id": "x", "min_severity": "apocalyptic"},
        {**rule, "id": "x", "cooldown_s": -5},
    ):
        assert (await api.client.post("/api/v1/config/alerts", headers=w, json=bad)).status_code == 422, bad
    assert [a["id"] for a in (await api.client.get("/api/v1/config/alerts", headers=w)).json()] == ["falls"]


async def test_templates_apply(api: Api) -> None:
    w = api.auth("config:write")
    template = {
        "id": "office",
        "name": "Office layout",
        "replace": True,
        "zones": [{"id": "desk", "name": "Desk", "polygon": [[0, 0], [2, 0], [2, 2], [0, 2]]}],
        "alert_rules": [
            {
                "id": "desk-falls",
                "name": "Falls at desk",
                "event_types": ["person.fall_detected"],
                "zone_ids": ["desk"],
            }
        ],
        "routers": [{"id": "r5", "name": "Office AP", "kind": "esp32"}],
    }
    assert (await api.client.post("/api/v1/config/templates", headers=w, json=template)).status_code == 201
    bad = {
        **template,
        "id": "broken",
        "alert_rules": [{**template["alert_rules"][0], "zone_ids": ["nowhere"]}],
    }
    assert (
        await api.client.post("/api/v1/config/templates", headers=w, json=bad)
    ).status_code == 201  # checked at apply
    applied = await api.client.post("/api/v1/config/templates/office/apply", headers=w)
    assert applied.status_code == 200, applied.text
    assert applied.json() == {
        "template_id": "office",
        "zones": 1,
        "alert_rules": 1,
        "routers": 1,
        "removed": 2,
    }
    assert [z.id for z in api.view.zones] == ["desk"]
    assert [z.id for z in store_config.ZONES.list(api.store.cursor())] == ["desk"]
    r = await api.client.post("/api/v1/config/templates/broken/apply", headers=w)
    assert r.status_code == 422 and "nowhere" in r.json()["reason"]
    assert [z.id for z in store_config.ZONES.list(api.store.cursor())] == ["desk"]  # nothing half-applied
    assert (await api.client.post("/api/v1/config/templates/missing/apply", headers=w)).status_code == 404


async def test_webhooks(api: Api) -> None:
    w = api.auth("config:write")
    body = {
        "url": "https://example.test/hook",
        "events": ["person.entered_zone", "alert.high_occupancy"],
        "secret": "0123456789abcdef-secret",
    }
    created = await api.client.post("/api/v1/webhooks", headers=w, json=body)
    assert created.status_code == 201, created.text
    hook = created.json()
    assert hook["has_secret"] is True and "secret" not in hook
    hook_id = hook["id"]
    for bad in (
        {**body, "url": "ftp://example.test"},
        {**body, "events": ["nope.event"]},
        {**body, "events": []},
        {**body, "headers": {"X-Signature": "forged"}},
        {**body, "secret": "short"},
        {**body, "retry": {"max_attempts": 0}},
    ):
        assert (await api.client.post("/api/v1/webhooks", headers=w, json=bad)).status_code == 422, bad
    # PUT without a secret keeps the stored one
    replaced = await api.client.put(
        f"/api/v1/webhooks/{hook_id}", headers=w, json={**body, "secret": None, "active": False}
    )
    assert replaced.json()["has_secret"] is True and replaced.json()["active"] is False
    assert store_config.WEBHOOKS.get(api.store.cursor(), hook_id).secret == body["secret"]
    # deliveries through the store's outbox
    con = api.store.cursor()
    sub = WebhookSubscription(id=hook_id, url=body["url"], events=body["events"], secret=body["secret"])
    events = [
        PersonEnteredZone(timestamp=T0, track_id=1, zone_id="left"),
        AlertHighOccupancy(
            timestamp=T0 + 1, zone_id="left", current_occupancy=3, max_occupancy=1, duration_seconds=5.0
        ),
    ]
    store_events.record_events(con, events, [sub], now=T0)
    claimed = outbox.claim_due(con, now=T0 + 2, limit=10)
    outbox.mark_result(con, claimed[0].delivery_id, 1, ok=True, now=T0 + 3, status_code=200, latency_ms=12.0)
    outbox.mark_result(con, claimed[1].delivery_id, 1, ok=False, now=T0 + 3, status_code=410, retryable=False)
    log = (await api.client.get(f"/api/v1/webhooks/{hook_id}/deliveries", headers=w)).json()
    assert sorted(a["ok"] for a in log) == [False, True]
    failed = (await api.client.get(f"/api/v1/webhooks/{hook_id}/outbox?status=failed", headers=w)).json()
    assert [f["delivery_id"] for f in failed] == [claimed[1].delivery_id]
    r = await api.client.post(f"/api/v1/webhooks/deliveries/{claimed[1].delivery_id}/redeliver", headers=w)
    assert r.status_code == 200 and outbox.get_item(con, claimed[1].delivery_id).status == "pending"
    assert (
        await api.client.post(f"/api/v1/webhooks/deliveries/{claimed[1].delivery_id}/redeliver", headers=w)
    ).status_code == 404
    assert (await api.client.get("/api/v1/webhooks/nope/deliveries", headers=w)).status_code == 404
    assert (await api.client.delete(f"/api/v1/webhooks/{hook_id}", headers=w)).status_code == 204
    assert (await api.client.get(f"/api/v1/webhooks/{hook_id}", headers=w)).status_code == 404
    assert (await api.client.get("/api/v1/webhooks", headers=api.auth("system:read"))).status_code == 403


async def test_junk_never_500(api: Api) -> None:
    h = api.auth(*ALL)
    junk_bodies = [
        b"",
        b"{",
        b"null",
        b"[]",
        b'{"id": 1}',
        b"\xff\xfe",
        b'{"id": "x", "name": "y", "polygon": [[1e999, 0], [0, 1], [1, 1]]}',
        b"0" * 10000,
    ]
    for path in (
        "/api/v1/config/zones",
        "/api/v1/config/routers",
        "/api/v1/config/alerts",
        "/api/v1/config/templates",
        "/api/v1/webhooks",
        "/api/v1/auth/token",
        "/api/v1/auth/users",
    ):
        for raw in junk_bodies:
            r = await api.client.post(path, content=raw, headers={**h, "Content-Type": "application/json"})
            assert 400 <= r.status_code < 500, (path, raw[:20], r.status_code, r.text)
            assert "reason" in r.json()
    r = await api.client.post(
        "/api/v1/config/zones", content=b"x" * 2_000_000, headers={**h, "Content-Type": "application/json"}
    )
    assert r.status_code == 413
    for url in (
        "/api/v1/pose/history?start_time=nan&end_time=nan",
        "/api/v1/pose/history?start_time=-inf&end_time=inf",
        "/api/v1/pose/persons/99999999999999",
        "/api/v1/analytics/heatmaps?start_time=0&end_time=1&cell_m=1e-300",
        "/api/v1/pose/zones/%00/occupancy?start_time=0&end_time=1",
    ):
        r = await api.client.get(url, headers=h)
        assert r.status_code < 500, (url, r.status_code, r.text)


def test_zone_fixture_matches() -> None:
    assert [z.id for z in ZONES] == ["left", "right"]
