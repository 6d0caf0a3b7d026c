"""Hostile input on every route class (issue 12, items 1-3): deeply nested and mislabelled JSON bodies, path
tricks on the static assets, and numeric query extremes. Each answer is a 4xx with a reason, never a 5xx."""

from __future__ import annotations

import math
import re
import typing
from collections.abc import Iterator

import pytest
from api_support import T0, Api, make_settings, open_api
from litestar.exceptions import ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.params import BodyKwarg, DependencyKwarg
from litestar.routes import HTTPRoute

from wdp.schemas import Person, PoseFrame
from wdp.serve.controllers.pose import time_range
from wdp.serve.json_request import MAX_JSON_DEPTH, json_depth_exceeds
from wdp.store import Store

pytestmark = pytest.mark.anyio

ADMIN = ("admin:all",)
JSON = {"Content-Type": "application/json"}
EXTREMES = ("nan", "NaN", "inf", "-inf", "Infinity", "1e308", "-1e308", "1e-300", "-1e-300", "9" * 30, "-" + "9" * 30)


def nested(depth: int) -> bytes:
    """``{"grant_type": [[...]]}`` with ``depth`` levels in all (the object counts as one)."""
    return b'{"grant_type": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


def concrete(path: str, text: str = "x") -> str:
    """``path`` with its parameters filled in: ints with 1, strings with ``text``."""
    return re.sub(r"\{[^}:]+:([^}]+)\}", lambda m: "1" if m.group(1) == "int" else text, path)


def body_routes(api: Api) -> Iterator[tuple[str, str]]:
    """(method, path) of every handler that takes a request body."""
    for route in api.app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            data = handler.parsed_fn_signature.parameters.get("data")
            if data is not None and isinstance(data.kwarg_definition, BodyKwarg):
                for method in sorted(handler.http_methods):
                    yield method, concrete(route.path)


def numeric_type(annotation: typing.Any) -> type | None:
    args = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    if len(args) == 1 and args[0] in (int, float):
        return args[0]
    return None


def numeric_params(api: Api) -> Iterator[tuple[str, HTTPRouteHandler, str, typing.Any]]:
    """(path, handler, name, kwarg definition) of every int/float query or path parameter of every route."""
    for route in api.app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            for name, field in handler.parsed_fn_signature.parameters.items():
                kwarg = field.kwarg_definition
                if isinstance(kwarg, BodyKwarg | DependencyKwarg) or numeric_type(field.annotation) is None:
                    continue
                yield route.path, handler, name, kwarg


# -- item 1: JSON bodies ---------------------------------------------------------------------------------------


def test_depth_walk() -> None:
    assert not json_depth_exceeds({"a": [1, {"b": []}]}, 4)  # object, list, object, list
    assert json_depth_exceeds({"a": [1, {"b": []}]}, 3)
    assert not json_depth_exceeds("x", 1) and not json_depth_exceeds([], 1)
    deep: list[typing.Any] = []
    for _ in range(100_000):  # deeper than any recursion limit: the walk is iterative
        deep = [deep]
    assert json_depth_exceeds(deep, MAX_JSON_DEPTH)


async def test_deeply_nested_json_is_400_on_every_body_endpoint(api: Api) -> None:
    routes = sorted(set(body_routes(api)))
    assert ("POST", "/api/v1/auth/token") in routes and ("POST", "/api/v1/config/zones") in routes
    h = {**api.auth(*ADMIN), **JSON}
    for method, path in routes:
        for depth in (100_000, MAX_JSON_DEPTH + 1):
            r = await api.client.request(method, path, content=nested(depth), headers=h)
            assert r.status_code == 400, (method, path, depth, r.status_code, r.text)
            assert "nested too deeply" in r.json()["reason"]
    # anonymous sign-in, as in the report
    r = await api.client.post("/api/v1/auth/token", content=nested(100_000), headers=JSON)
    assert r.status_code == 400 and "nested too deeply" in r.json()["reason"]
    # at the limit the body is decoded and fails on its content instead
    r = await api.client.post("/api/v1/auth/token", content=nested(MAX_JSON_DEPTH), headers=JSON)
    assert r.status_code == 422, r.text


async def test_json_body_needs_a_json_media_type(api: Api) -> None:
    h = api.auth(*ADMIN)
    login = b'{"grant_type": "password", "username": "nobody", "password": "wrong"}'
    for method, path in sorted(set(body_routes(api))):
        for media_type in ("text/plain", "application/x-www-form-urlencoded", "application/jsonx"):
            r = await api.client.request(method, path, content=b"{}", headers={**h, "Content-Type": media_type})
            assert r.status_code == 415, (method, path, media_type, r.status_code, r.text)
            assert "application/json" in r.json()["reason"]
    r = await api.client.post("/api/v1/auth/token", content=login)  # no Content-Type at all
    assert r.status_code == 415
    for media_type in ("application/json", "application/json; charset=utf-8", "Application/JSON", "application/x+json"):
        r = await api.client.post("/api/v1/auth/token", content=login, headers={"Content-Type": media_type})
        assert r.status_code == 401, (media_type, r.text)  # parsed: the credentials are what is wrong


# -- item 2: static asset paths --------------------------------------------------------------------------------


async def test_static_path_tricks_are_404(api: Api) -> None:
    assert (await api.client.get("/dashboard/app.js")).status_code == 200
    for path in (
        "/dashboard/app.js%00.png",
        "/dashboard/%00",
        "/dashboard/app.js%0aINFO",
        "/dashboard/app.js%7f",
        "/dashboard/" + "a" * 300,
        "/dashboard/" + "a/" * 200 + "app.js",
        "/dashboard/" + "%C3%A9" * 200,
        "/dashboard/..%2f..%2fapp.py",
        "/dashboard/%2e%2e/%2e%2e/settings.py",
        "/dashboard/%2e/app.js",
        "/dashboard/..%5c..%5capp.py",
        "/dashboard/app.js%5c",
        "/dashboard/static%2f..%2fapp.js",
        "/dashboard//etc/passwd",
    ):
        for method in ("GET", "HEAD"):
            r = await api.client.request(method, path)
            assert r.status_code == 404, (method, path, r.status_code, r.text)
    # the same tricks in API path parameters are 4xx too
    h = api.auth(*ADMIN)
    for path in (
        "/api/v1/config/zones/a%00b",
        "/api/v1/config/zones/" + "a" * 300,
        "/api/v1/pose/zones/%00/occupancy?start_time=0&end_time=1",
        "/api/v1/sensing/routers/%2e%2e",
        "/api/v1/visualization/hls/seg%00.ts",
        "/api/v1/visualization/hls/..%5cseg_0.ts",
    ):
        r = await api.client.get(path, headers=h)
        assert 400 <= r.status_code < 500, (path, r.status_code, r.text)


# -- item 3: numeric query parameters --------------------------------------------------------------------------


async def test_every_numeric_parameter_has_both_bounds(api: Api) -> None:
    seen = []
    for path, _, name, kwarg in numeric_params(api):
        lower = getattr(kwarg, "ge", None) if getattr(kwarg, "gt", None) is None else kwarg.gt
        upper = getattr(kwarg, "le", None) if getattr(kwarg, "lt", None) is None else kwarg.lt
        assert lower is not None and upper is not None, f"{path} {name}: give it ge/gt and le/lt"
        assert math.isfinite(lower) and math.isfinite(upper)
        seen.append(name)
    assert {"start_time", "end_time", "cell_m", "bucket_s", "limit", "skip", "person_id"} <= set(seen)


async def test_numeric_query_extremes_are_4xx(api: Api) -> None:
    h = api.auth(*ADMIN)
    base = {"start_time": str(T0), "end_time": str(T0 + 100)}
    checked = 0
    for path, handler, name, kwarg in numeric_params(api):
        if "GET" not in handler.http_methods or kwarg is None or type(kwarg).__name__ != "QueryParameter":
            continue
        for value in EXTREMES:
            query = {**base, name: value}
            r = await api.client.get(concrete(path, text="left"), params=query, headers=h)
            assert r.status_code < 500, (path, name, value, r.status_code, r.text)
            checked += 1
            if not math.isfinite(float(value)):
                assert r.status_code == 422, (path, name, value, r.text)
                messages = [e["message"] for e in r.json()["extra"] if e.get("key") == name]
                assert messages and "finite" in messages[0], (path, name, r.text)
    assert checked > 100


async def test_heatmap_from_the_report_is_422(api: Api) -> None:
    h = api.auth(*ADMIN)
    r = await api.client.get("/api/v1/analytics/heatmaps?start_time=0&end_time=2e9&cell_m=1e-300", headers=h)
    assert r.status_code == 422, r.text
    assert r.json()["extra"][0]["key"] == "cell_m"
    r = await api.client.get("/api/v1/analytics/heatmaps?start_time=0&end_time=2e9&cell_m=0.01", headers=h)
    assert r.status_code == 200


async def test_heatmap_skips_positions_far_off_the_grid() -> None:
    """A stored position far outside the grid (a bad calibration, an edge node's bug) over the smallest cell
    would overflow the BIGINT cell index; it is off the grid and simply not counted."""
    with Store(":memory:") as store:
        far = Person(
            track_id=1, keypoints=[[0.0, 0.0, 0.0]] * 17, box=(0, 0, 1, 1), confidence=0.9, position=(1e30, 1.0)
        )
        near = Person(
            track_id=2, keypoints=[[0.0, 0.0, 0.0]] * 17, box=(0, 0, 1, 1), confidence=0.9, position=(0.005, 0.005)
        )
        with store.writer() as writer:
            writer.append(PoseFrame(frame_id=1, timestamp=T0, source="replay", persons=[far, near]))
        async for api in open_api(store, make_settings()):
            r = await api.client.get(
                "/api/v1/analytics/heatmaps",
                params={"start_time": T0 - 1, "end_time": T0 + 1, "cell_m": 0.01, "nx": 10, "ny": 10},
                headers=api.auth(*ADMIN),
            )
            assert r.status_code == 200, r.text
            counts = r.json()["counts"]
            assert counts[0][0] == 1 and sum(map(sum, counts)) == 1


async def test_non_finite_times_say_so(api: Api) -> None:
    h = api.auth(*ADMIN)
    r = await api.client.get("/api/v1/pose/history?start_time=nan&end_time=nan", headers=h)
    assert r.status_code == 422
    assert {e["key"]: e["message"] for e in r.json()["extra"]} == {
        "start_time": "must be a finite number, not 'nan'",
        "end_time": "must be a finite number, not 'nan'",
    }
    with pytest.raises(ValidationException, match="finite"):
        time_range(math.nan, T0)
    with pytest.raises(ValidationException, match="before"):
        time_range(T0, T0 - 1)


async def test_deeply_nested_stream_message_is_an_error_message(api: Api) -> None:
    """The WebSocket's inbound messages are JSON too: a deeply nested one is answered with an error message and
    the connection stays usable."""
    deep = '{"x": ' + "[" * 8000 + "]" * 8000 + ', "type": "ping"}'  # 16 kB: within max_message_bytes
    with await api.client.websocket_connect("/ws/v1/stream", headers=api.auth("stream:subscribe")) as ws:
        assert ws.receive_json(timeout=5)["type"] == "connection"
        ws.send_text(deep)
        reply = ws.receive_json(timeout=5)
        assert reply["type"] == "error" and "nested too deeply" in reply["reason"], reply
        ws.send_json({"type": "ping"})
        assert ws.receive_json(timeout=5)["type"] == "pong"
