"""Keep issue 12 from coming back: one real uvicorn running what `wdp serve` runs (simulator engine with
ground-truth poses, a DuckDB history store in a temp dir, webhooks, the API; access log on) gets every hostile
request of items 1-11 and the classes around them. Routes, body routes and numeric parameters come from the
served /schema/openapi.json, so a new route is probed without editing this file. Every answer must be below
500 with the documented status (and reason where one is documented); at the end the server's log must hold no
traceback, no forged line, no raw control/bidi character and no credential.

Tests run in file order on one server: revocation and the anonymous flood (item 6) come last."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from api_support import SECRET, UNDELIVERABLE_TARGETS
from server_process import free_port, password_token, stop_process, wait_healthy
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

pytestmark = pytest.mark.anyio

ADMIN_PASSWORD = "probe-admin-password"
USER_PASSWORD = "probe-user-password"
ANON_LIMIT = 300  # the anonymous tier (per address) is raised so the probes before the flood stay inside it
FORGED = "INFO - 2026-12-06 FORGED"
TIMEOUT = 15.0
WS_PATH = "/ws/v1/stream"
MAX_JSON_DEPTH = 64
RLO = "\u202e"
SQUARE = [[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]]

# Numeric extremes, as query text and as JSON number text.
BIG = (str(2**70), "9" * 30, "-" + "9" * 30)
QUERY_EXTREMES = ("nan", "NaN", "inf", "-inf", "Infinity", "1e308", "-1e308", "1e-300", *BIG)
NON_FINITE = {"nan", "NaN", "inf", "-inf", "Infinity"}
BODY_EXTREMES = ("1e308", "-1e308", str(2**70), "9" * 30, "-" + "9" * 30, "1e-300", "NaN", "Infinity")
OUT_OF_RANGE = {"1e308", "-1e308", str(2**70), "9" * 30, "-" + "9" * 30}  # every body number is bounded below that
STRING_TRICKS = ("a\x00b", "a\r\nX-Injected: 1", f"abc{RLO}fed", "esc\x1b[31m", "zw\u200bsp", "a\u2066b")
SECRET_FIELDS = {"password", "secret", "api_key"}  # opaque: may hold any character

# A valid body per request schema; the string and number leaves of each are mutated in turn.
ZONE = {"id": "probe-z", "name": "Probe", "polygon": SQUARE, "max_occupancy": 3, "alerts": {"cooldown_s": 60.0}}
RULE = {"id": "probe-r", "name": "Falls", "event_types": ["person.fall_detected"], "zone_ids": ["probe-z"]}
ROUTER = {"id": "probe-rt", "name": "Hall", "kind": "esp32", "host": "10.0.0.5", "port": 5500, "packet_rate": 100.0}
HOOK = {"url": "https://93.184.216.34/in", "events": ["analytics.report_generated"], "active": False}
SAMPLES: dict[str, dict[str, Any]] = {
    "Zone": ZONE,
    "AlertRule": {**RULE, "cooldown_s": 60.0},
    "Router": {**ROUTER, "loss": 0.1, "last_seen": 1.7e9},
    "ConfigTemplate": {"id": "probe-t", "name": "Office", "description": "d", "zones": [ZONE], "routers": [ROUTER]},
    "ApiKeyCreate": {"owner": "probe", "scopes": ["pose:read"]},
    "UserCreate": {"username": "probe-user", "password": USER_PASSWORD, "scopes": ["pose:read"]},
    "TokenRequest": {"grant_type": "password", "username": "nobody", "password": "wrong-password"},
    "WebhookCreate": {
        **HOOK,
        "headers": {"X-Tenant": "kitchen"},
        "retry": {"max_attempts": 3, "backoff_base_s": 1.0, "backoff_max_s": 60.0, "retry_on_status": [503]},
    },
}


@dataclass
class Server:
    base: str
    ws: str
    log: Path
    admin: str
    port: int
    schema: dict[str, Any]
    secrets: list[str] = field(default_factory=list)  # credentials that must never reach the log
    hook_id: str = ""  # an existing webhook, so PUT /webhooks/{id} gets as far as validating its body

    @property
    def h(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("probe")
    log = tmp / "server.log"
    port = free_port()
    big = {"limit": 10**6, "window_s": 60.0}
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("WDP_")},
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        "WDP_JWT_SECRET": SECRET,
        "WDP_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "WDP_API__AUTH__ARGON2_TIME_COST": "1",
        "WDP_API__AUTH__ARGON2_MEMORY_KIB": "8192",
        "WDP_API__AUTH__ARGON2_PARALLELISM": "1",
        "WDP_API__RATE_LIMIT__TIERS": json.dumps(
            {
                "default": {"limit": ANON_LIMIT, "window_s": 60.0},
                "authenticated": big,
                "premium": big,
                "streaming": big,
            }
        ),
        "WDP_PROBE_OVERRIDES": json.dumps(
            ["detector=ground_truth", f"store.path={tmp / 'h.duckdb'}", "status_interval_s=0", "mqtt.enabled=false"]
        ),
        "OMP_NUM_THREADS": "1",
    }
    cmd = [sys.executable, "-m", "uvicorn", "probe_engine_app:create_probe_engine_app", "--factory"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "info"]  # access log on
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc, log, timeout=60)
        admin = password_token(base, ADMIN_PASSWORD)
        schema = httpx.get(f"{base}/schema/openapi.json", timeout=TIMEOUT).json()
        yield Server(base, f"ws://127.0.0.1:{port}", log, admin, port, schema, [admin, ADMIN_PASSWORD])
    finally:
        stop_process(proc, timeout=20)
    text = log.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in text, text[-5000:]


@pytest.fixture
async def client(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base, timeout=TIMEOUT) as c:
        yield c


# ---------------------------------------------------------------------------------------------------- helpers


async def body_url(server: Server, client: httpx.AsyncClient, path: str, sample: dict[str, Any]) -> str:
    """``path`` filled in to name the sample's own resource (PUT validates the body of an existing one)."""
    if "{webhook_id}" in path and not server.hook_id:
        r = await client.post("/api/v1/webhooks", json=HOOK, headers=server.h)
        assert r.status_code == 201, r.text
        server.hook_id = r.json()["id"]
    return concrete(path, str(sample.get("id", "probe")), webhook_id=server.hook_id)


def concrete(path: str, value: str = "probe", op: dict[str, Any] | None = None, **known: str) -> str:
    """``path`` with its parameters filled in: ``known`` ones by name, integers (per ``op``) with 1, the rest
    with ``value``."""
    ints = {p["name"] for p in (op or {}).get("parameters", []) if p["in"] == "path" and param_kind(p) == "integer"}

    def fill(m: re.Match[str]) -> str:
        name = m.group(1)
        return known.get(name) or ("1" if name in ints else value)

    return re.sub(r"\{([^}:]+)(?::[^}]+)?\}", fill, path)


def operations(server: Server) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, ops in server.schema["paths"].items():
        for method, op in ops.items():
            if isinstance(op, dict) and "operationId" in op:
                yield method.upper(), path, op


def body_schema(op: dict[str, Any]) -> str | None:
    body = op.get("requestBody")
    if body is None:
        return None
    return str(body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1])


def body_routes(server: Server) -> list[tuple[str, str, str]]:
    """(method, path, schema name) of every operation with a JSON body."""
    return sorted((m, p, s) for m, p, op in operations(server) if (s := body_schema(op)) is not None)


def param_kind(param: dict[str, Any]) -> str | None:
    schema = param.get("schema", {})
    kinds = [schema.get("type")] + [o.get("type") for o in schema.get("oneOf", [])]
    kinds += [t for t in schema.get("type", []) if isinstance(schema.get("type"), list)]
    for kind in ("number", "integer", "string"):
        if kind in kinds:
            return kind
    return None


def leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from leaves(v, (*path, i))
    else:
        yield path, value


MARK = "\u0000PROBE\u0000"


def replaced(body: Any, at: tuple[Any, ...], new: Any) -> Any:
    if not at:
        return new
    copy = dict(body) if isinstance(body, dict) else list(body)
    copy[at[0]] = replaced(body[at[0]], at[1:], new)
    return copy


def with_raw_number(body: dict[str, Any], at: tuple[Any, ...], number_text: str) -> bytes:
    """The body as JSON text with the number at ``at`` written verbatim (2**70, 1e308, NaN ...)."""
    text = json.dumps(replaced(body, at, MARK))
    return text.replace(json.dumps(MARK), number_text).encode()


def nested(depth: int) -> bytes:
    return b'{"grant_type": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def signed(payload: bytes | dict[str, Any], header: dict[str, Any] | None = None) -> str:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    head = b64(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(raw)
    sig = b64(hmac.new(SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    c: dict[str, Any] = {"sub": "admin", "iat": now, "nbf": now, "exp": now + 600, "iss": "wdp", "aud": "wdp-api"}
    c["scopes"] = ["admin:all", "stream:subscribe"]
    for k, v in over.items():
        if v is ...:
            c.pop(k)
        else:
            c[k] = v
    return c


def bad_tokens() -> dict[str, str]:
    exp = claims()["exp"]
    return {
        "exp_huge": signed(claims(exp=10**400)),  # the report's 500 (OverflowError)
        "exp_negative_huge": signed(claims(exp=-(10**400))),
        "exp_1e308": signed(claims(exp=1e308)),
        "exp_string": signed(claims(exp=str(exp))),
        "exp_bool": signed(claims(exp=True)),
        "exp_nan": signed(json.dumps(claims()).replace(str(exp), "NaN").encode()),
        "exp_missing": signed(claims(exp=...)),
        "iat_huge": signed(claims(iat=10**400)),
        "nbf_list": signed(claims(nbf=[exp])),
        "sub_int": signed(claims(sub=7)),
        "scopes_string": signed(claims(scopes="admin:all")),
        "scopes_nested": signed(claims(scopes=[["admin:all"]])),
        "alg_none": b64(b'{"alg": "none"}') + "." + b64(json.dumps(claims()).encode()) + ".",
        "alg_hs512": signed(claims(), header={"alg": "HS512", "typ": "JWT"}),
        "alg_list": signed(claims(), header={"alg": ["HS256"], "typ": "JWT"}),
        "deep_payload": signed(b'{"sub":' + b"[" * 3000 + b"]" * 3000 + b"}"),
        "payload_array": signed(b"[1, 2]"),
        "wrong_secret": signed(claims())[:-4] + "AAAA",
        "not_a_jwt": "a.b.c",
        "non_ascii": f"{RLO}\u00e9.x.y",
    }


async def closed_code(ws: ClientConnection) -> tuple[int, str]:
    """Read until the server closes; its close code and reason."""
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await ws.recv(decode=True)
    assert info.value.rcvd is not None, "closed without a close frame"
    return info.value.rcvd.code, info.value.rcvd.reason


async def ws_rejected(url: str, **kw: Any) -> tuple[int, str]:
    """Connect and read: the close code and reason the server ends the session with (or the HTTP status of a
    refused handshake, as a negative number)."""
    try:
        async with connect(url, open_timeout=TIMEOUT, close_timeout=TIMEOUT, **kw) as ws:
            return await closed_code(ws)
    except InvalidStatus as exc:
        return -exc.response.status_code, ""


async def ping_pong(ws: ClientConnection) -> None:
    await ws.send(json.dumps({"type": "ping", "timestamp": 1.0}))
    while True:
        msg = json.loads(await ws.recv())
        if msg["type"] == "pong":
            return


async def next_error(ws: ClientConnection) -> dict[str, Any]:
    """The next error message (skipping updates and late replies to earlier messages)."""
    while True:
        msg = json.loads(await ws.recv())
        if msg["type"] == "error":
            return dict(msg)


def assert_4xx(r: httpx.Response, *ctx: Any, status: int | tuple[int, ...] | None = None) -> None:
    assert r.status_code < 500, (*ctx, r.status_code, r.text[:500])
    if status is not None:
        allowed = status if isinstance(status, tuple) else (status,)
        assert r.status_code in allowed, (*ctx, r.status_code, r.text[:500])
    else:
        assert 400 <= r.status_code < 500, (*ctx, r.status_code, r.text[:500])


# ------------------------------------------------------------------------------------------- discovery


def test_schema_lists_what_the_probe_covers(server: Server) -> None:
    routes = body_routes(server)
    assert ("POST", "/api/v1/auth/token", "TokenRequest") in routes
    assert ("POST", "/api/v1/config/zones", "Zone") in routes
    missing = {s for _, _, s in routes} - set(SAMPLES)
    assert not missing, f"give the probe a valid sample body for {missing}"
    assert len(list(operations(server))) > 40


# ----------------------------------------------------------------------- item 1, content type: JSON bodies


async def test_deeply_nested_bodies_are_400(server: Server, client: httpx.AsyncClient) -> None:
    h = {**server.h, "Content-Type": "application/json"}
    for method, path, _ in body_routes(server):
        for depth in (100_000, MAX_JSON_DEPTH + 1):
            r = await client.request(method, concrete(path), content=nested(depth), headers=h)
            assert_4xx(r, method, path, depth, status=400)
            assert "nested too deeply" in r.json()["reason"]
    # anonymous, as in the report
    r = await client.post("/api/v1/auth/token", content=nested(100_000), headers={"Content-Type": "application/json"})
    assert_4xx(r, status=400)
    assert "nested too deeply" in r.json()["reason"]


async def test_non_json_media_types_are_415(server: Server, client: httpx.AsyncClient) -> None:
    for method, path, schema in body_routes(server):
        for media_type in ("text/plain", "application/x-www-form-urlencoded", None):
            h = dict(server.h) | ({"Content-Type": media_type} if media_type else {})
            r = await client.request(method, concrete(path), content=json.dumps(SAMPLES[schema]), headers=h)
            assert_4xx(r, method, path, media_type, status=415)
            assert "application/json" in r.json()["reason"]


async def test_deeply_nested_and_hostile_stream_messages(server: Server) -> None:
    async with connect(f"{server.ws}{WS_PATH}", open_timeout=TIMEOUT) as ws:
        await ws.send(json.dumps({"type": "auth", "token": server.admin}))  # the documented first message
        assert json.loads(await ws.recv())["type"] == "connection"
        deep = '{"x": ' + "[" * 8000 + "]" * 8000 + ', "type": "ping"}'
        await ws.send(deep)
        reply = await next_error(ws)
        assert reply["type"] == "error" and "nested too deeply" in reply["reason"], reply
        hostile: list[Any] = [
            {"type": "subscribe", "topic": f"pose{RLO}_updates"},
            {"type": "subscribe", "topic": "pose_updates\x00"},
            {"type": "subscribe", "topic": "pose_updates", "filters": {"zone_id": "a" * 65}},
            {"type": "subscribe", "topic": "pose_updates", "extra": 1},
            {"type": "configure", "config": {"max_fps": 0}},
            {"type": "nope"},
            [],
            "x",
        ]
        for number in BODY_EXTREMES:
            for key in ("min_confidence", "person_id"):
                text = json.dumps({"type": "subscribe", "topic": "pose_updates", "filters": {key: MARK}})
                hostile.append(text.replace(json.dumps(MARK), number))
            text = json.dumps({"type": "configure", "config": {"max_fps": MARK}})
            hostile.append(text.replace(json.dumps(MARK), number))
            hostile.append(json.dumps({"type": "ping", "timestamp": MARK}).replace(json.dumps(MARK), number))
        for text in ("a\x00b", f"a{RLO}b", "a\r\nb", "\x1b[31m"):
            hostile.append({"type": "subscribe", "topic": "zone_events", "filters": {"zone_id": text}})
            hostile.append({"type": "subscribe", "topic": "sensing_updates", "filters": {"router_id": text}})
        for message in hostile:
            await ws.send(message if isinstance(message, str) and message.startswith("{") else json.dumps(message))
            await ping_pong(ws)  # whatever the reply, the connection stays usable
        await ws.send("x" * 20_000)  # over max_message_bytes
        reply = await next_error(ws)
        assert "larger than" in reply["reason"], reply
        await ping_pong(ws)


# -------------------------------------------------------------------------- items 2, 5: path tricks, log injection


async def test_static_path_tricks_are_404(client: httpx.AsyncClient) -> None:
    forged = f"%00%0a{FORGED.replace(' ', '%20')}%0d%1b%5b31m%e2%80%ae"
    assert (await client.get("/dashboard/app.js")).status_code == 200
    for path in (
        "/dashboard/app.js%00.png",  # the report's 500
        f"/dashboard/x{forged}...",  # the report's forged log line
        "/dashboard/%00",
        "/dashboard/app.js%0aINFO",
        "/dashboard/app.js%7f",
        "/dashboard/app.js%e2%80%ae",
        "/dashboard/" + "a" * 300,
        "/dashboard/" + "a/" * 200 + "app.js",
        "/dashboard/" + "%C3%A9" * 200,
        "/dashboard/..%2f..%2fapp.py",
        "/dashboard/%2e%2e/%2e%2e/settings.py",
        "/dashboard/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/dashboard/%2e/app.js",
        "/dashboard/..%5c..%5capp.py",
        "/dashboard/app.js%5c",
        "/dashboard/static%2f..%2fapp.js",
        "/dashboard//etc/passwd",
        "/dashboard/%ff%fe",
    ):
        for method in ("GET", "HEAD"):
            r = await client.request(method, path)
            assert_4xx(r, method, path, status=404)


async def test_path_parameter_tricks_are_4xx(server: Server, client: httpx.AsyncClient) -> None:
    tricks = ("a%00b", "a%0d%0aX", "%e2%80%aeab", "%2e%2e", "..%5c..%5cx", "%2e", "a" * 300, "%ff", "%1b%5b31m")
    checked = 0
    for method, path, op in operations(server):
        if "{" not in path or method not in ("GET", "DELETE", "PUT", "POST"):
            continue
        schema = body_schema(op)
        body = json.dumps(SAMPLES[schema]) if schema else None
        for trick in tricks:
            url = concrete(path, trick)
            h = {**server.h, "Content-Type": "application/json"}
            r = await client.request(method, url, content=body, headers=h, params={"start_time": 0, "end_time": 1})
            assert_4xx(r, method, url)
            checked += 1
    assert checked > 100


async def test_string_query_parameters_with_control_characters(server: Server, client: httpx.AsyncClient) -> None:
    for method, path, op in operations(server):
        if method != "GET":
            continue
        for param in op.get("parameters", []):
            if param["in"] != "query" or param_kind(param) != "string":
                continue
            for text in (*STRING_TRICKS, "x" * 5000):
                query = {"start_time": "0", "end_time": "1", param["name"]: text}
                r = await client.get(concrete(path), params=query, headers=server.h)
                assert r.status_code < 500, (path, param["name"], repr(text), r.status_code, r.text[:300])


# ---------------------------------------------------------------------------- item 3: numeric query extremes


async def test_numeric_query_extremes_are_4xx(server: Server, client: httpx.AsyncClient) -> None:
    base = {"start_time": "1700000000", "end_time": "1700000100"}
    checked = set()
    for method, path, op in operations(server):
        if method != "GET":
            continue
        for param in op.get("parameters", []):
            if param_kind(param) not in ("number", "integer"):
                continue
            for value in QUERY_EXTREMES:
                if param["in"] == "query":
                    url, query = concrete(path, op=op), {**base, param["name"]: value}
                else:
                    url, query = concrete(path, quote(value)), base
                r = await client.get(url, params=query, headers=server.h)
                assert r.status_code < 500, (path, param["name"], value, r.status_code, r.text[:300])
                if value in NON_FINITE or (value != "1e-300" and param_kind(param) == "integer"):
                    assert_4xx(r, path, param["name"], value)
                if value in NON_FINITE and param["in"] == "query":
                    assert r.status_code == 422, (path, param["name"], value, r.text)
                    messages = [e["message"] for e in r.json()["extra"] if e.get("key") == param["name"]]
                    assert messages and "finite" in messages[0], (path, param["name"], r.text)
            checked.add(param["name"])
    assert {"start_time", "end_time", "cell_m", "bucket_s", "limit", "skip", "person_id"} <= checked
    # the report's request
    r = await client.get("/api/v1/analytics/heatmaps?start_time=0&end_time=2e9&cell_m=1e-300", headers=server.h)
    assert r.status_code == 422 and r.json()["extra"][0]["key"] == "cell_m", r.text
    r = await client.get("/api/v1/analytics/heatmaps?start_time=0&end_time=2e9&cell_m=0.01", headers=server.h)
    assert r.status_code == 200, r.text


# -------------------------------------------------------------- items 9-11: every body string and number


async def test_every_body_string_with_control_or_bidi_text_is_422(server: Server, client: httpx.AsyncClient) -> None:
    h = {**server.h, "Content-Type": "application/json"}
    checked = 0
    for method, path, schema in body_routes(server):
        sample = SAMPLES[schema]
        for at, value in leaves(sample):
            if not isinstance(value, str):
                continue
            for text in STRING_TRICKS:
                body = replaced(sample, at, text)
                url = await body_url(server, client, path, sample)
                r = await client.request(method, url, json=body, headers=h)
                assert r.status_code < 500, (method, path, at, repr(text), r.status_code, r.text[:300])
                if at[0] not in SECRET_FIELDS:
                    assert r.status_code == 422, (method, path, at, repr(text), r.status_code, r.text[:300])
                    assert r.json()["reason"]
                checked += 1
    assert checked > 150


async def test_every_body_number_at_its_extremes(server: Server, client: httpx.AsyncClient) -> None:
    h = {**server.h, "Content-Type": "application/json"}
    checked = 0
    for method, path, schema in body_routes(server):
        sample = SAMPLES[schema]
        for at, value in leaves(sample):
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            for number in BODY_EXTREMES:
                url = await body_url(server, client, path, sample)
                r = await client.request(method, url, content=with_raw_number(sample, at, number), headers=h)
                assert r.status_code < 500, (method, path, at, number, r.status_code, r.text[:300])
                if number in OUT_OF_RANGE:
                    assert r.status_code == 422, (method, path, at, number, r.status_code, r.text[:300])
                elif number in ("NaN", "Infinity"):  # not JSON
                    assert_4xx(r, method, path, at, number)
                checked += 1
    assert checked > 150


async def test_zones_from_the_report(server: Server, client: httpx.AsyncClient) -> None:
    w = server.h
    bad = [
        {**ZONE, "max_occupancy": 2**70},
        {**ZONE, "max_occupancy": 10_001},
        {**ZONE, "max_occupancy": -1},
        {**ZONE, "name": f"abc{RLO}fed"},
        {**ZONE, "name": "bom\ufeff"},
        {**ZONE, "name": "ls\u2028"},
        {**ZONE, "name": "x" * 129},
        {**ZONE, "name": "   "},
        {**ZONE, "id": "z" * 65},
        {**ZONE, "polygon": [[0, 0], [1e300, 0], [0, 1]]},
        {**ZONE, "polygon": [[i, i % 2] for i in range(300)]},
        {**ZONE, "polygon": [[0, 0], [1, 1], [2, 2]]},
        {**ZONE, "alerts": {"cooldown_s": 1e300}},
    ]
    for body in bad:
        for method, path in (("POST", "/api/v1/config/zones"), ("PUT", "/api/v1/config/zones/probe-z")):
            r = await client.request(method, path, json=body, headers=w)
            assert_4xx(r, method, str(body)[:80], status=422)
            assert r.json()["reason"]
    r = await client.post("/api/v1/config/zones", json={**ZONE, "name": f"abc{RLO}fed"}, headers=w)
    assert "U+202E" in r.json()["reason"]
    zones = (await client.get("/api/v1/config/zones", headers=w)).json()
    assert all(RLO not in json.dumps(z, ensure_ascii=False) for z in zones)
    assert all((z.get("max_occupancy") or 0) <= 10_000 for z in zones)
    ok = {**ZONE, "id": "probe-ok", "name": "Küche 👩\u200d🍳 مطبخ", "max_occupancy": 10_000}
    r = await client.post("/api/v1/config/zones", json=ok, headers=w)
    assert r.status_code == 201, r.text
    assert (await client.delete("/api/v1/config/zones/probe-ok", headers=w)).status_code == 204


UNDELIVERABLE = [
    *UNDELIVERABLE_TARGETS,
    "http://192.168.1.1/",
    f"http://127.0.0.1:{0}/",  # the server itself (port filled in below)
]

BAD_HEADERS = [
    {"X-A": "b\r\nX-Injected: 1"},
    {"X-A": "b\nX-Injected: 1"},
    {"X-A": "nul\x00"},
    {"X-A": "del\x7f"},
    {"X-A": f"a{RLO}b"},
    {"X-A\r\nX-Injected": "1"},
    {"X A": "1"},
    {"": "1"},
    {"X-Signature": "sha256=forged"},
    {"x-timestamp": "1"},
    {"X-Event-Type": "person.detected"},
    {"X-DELIVERY-ID": "forged"},
    {"Content-Length": "0"},
    {"Host": "evil.example"},
    {"Transfer-Encoding": "chunked"},
    {f"X-H{i}": "v" for i in range(33)},
    {"X-" + "n" * 80: "1"},
]


async def test_webhook_targets_and_headers(server: Server, client: httpx.AsyncClient) -> None:
    w = server.h
    before = {hook["id"] for hook in (await client.get("/api/v1/webhooks", headers=w)).json()}
    for url in UNDELIVERABLE:
        url = url.replace(":0/", f":{server.port}/")
        r = await client.post("/api/v1/webhooks", json={**HOOK, "url": url}, headers=w)
        assert_4xx(r, url, status=422)
        assert r.json()["reason"]
    for headers in BAD_HEADERS:
        r = await client.post("/api/v1/webhooks", json={**HOOK, "headers": headers}, headers=w)
        assert_4xx(r, headers, status=422)
        assert r.json()["reason"]
    created = await client.post("/api/v1/webhooks", json={**HOOK, "headers": {"X-Tenant": "a\tb"}}, headers=w)
    assert created.status_code == 201, created.text
    hook_id = created.json()["id"]
    for url in ("http://127.0.0.1/hook", "http://0x7f.1/", "http://169.254.169.254/"):
        r = await client.put(f"/api/v1/webhooks/{hook_id}", json={**HOOK, "url": url}, headers=w)
        assert_4xx(r, url, status=422)
        assert "refused" in r.json()["reason"]
    r = await client.put(f"/api/v1/webhooks/{hook_id}", json={**HOOK, "headers": {"X-A": "b\r\nX: 1"}}, headers=w)
    assert_4xx(r, status=422)
    assert "control characters" in r.json()["reason"]
    after = {hook["id"]: hook for hook in (await client.get("/api/v1/webhooks", headers=w)).json()}
    assert hook_id in after and after[hook_id]["url"] == HOOK["url"]
    assert set(after) - before == {hook_id}  # nothing refused was stored (so nothing can pile up in the outbox)
    r = await client.get(f"/api/v1/webhooks/{hook_id}/outbox", headers=w)
    assert r.status_code == 200 and r.json() == [], r.text
    assert (await client.delete(f"/api/v1/webhooks/{hook_id}", headers=w)).status_code == 204


# ------------------------------------------------------------------------------------ items 4, 8: tokens


async def test_token_edge_cases_on_rest_and_stream(server: Server, client: httpx.AsyncClient) -> None:
    ws_url = f"{server.ws}{WS_PATH}"
    for case, token in bad_tokens().items():
        header = {"Authorization": f"Bearer {token}".encode()}  # UTF-8 on the wire where not ASCII
        r = await client.get("/api/v1/auth/verify", headers=header)
        assert_4xx(r, case, status=401)
        assert r.json()["reason"] and r.headers["www-authenticate"].startswith("Bearer"), case
        r = await client.get("/api/v1/pose/current", headers=header)
        assert_4xx(r, case, status=401)
        if token.isascii():  # the websockets client sends ASCII headers only
            code, _ = await ws_rejected(ws_url, additional_headers={"Authorization": f"Bearer {token}"})
            assert code == 4001, (case, code)
        code, _ = await ws_rejected(f"{ws_url}?token={quote(token)}")
        assert code == 4001, (case, code)
        async with connect(ws_url, open_timeout=TIMEOUT) as ws:
            await ws.send(json.dumps({"type": "auth", "token": token}))
            code, reason = await closed_code(ws)
        assert code == 4001 and reason, (case, code, reason)
    # correctly signed (only the secret's holder can), with a subject that would forge a log line
    token = signed(claims(sub=f"admin\n{FORGED}\x1b[31m{RLO}"))
    assert (await client.get("/api/v1/pose/current", headers={"Authorization": f"Bearer {token}"})).status_code < 500
    # wrong types in the Authorization header, and a huge token
    for value in ("Bearer", "Token abc", "Basic YWRtaW46eA==", "Bearer a b", "bearer " + "x" * 9000):
        r = await client.get("/api/v1/auth/verify", headers={"Authorization": value})
        assert_4xx(r, value[:20], status=401)
    r = await client.get("/api/v1/auth/verify", headers={"Authorization": "Bearer " + "a" * 60_000})
    assert_4xx(r, "huge header")
    code, _ = await ws_rejected(ws_url, additional_headers={"Authorization": "Bearer " + "a" * 60_000})
    assert code == 4001 or 400 <= -code < 500, code
    async with connect(ws_url, open_timeout=TIMEOUT, max_size=None) as ws:
        await ws.send(json.dumps({"type": "auth", "token": "a" * 9000}))
        assert (await closed_code(ws))[0] == 4001
    for first in ([], "x", {"type": "auth"}, {"type": "auth", "token": 5}, {"type": "auth", "token": ["t"]}):
        async with connect(ws_url, open_timeout=TIMEOUT) as ws:
            await ws.send(json.dumps(first))
            assert (await closed_code(ws))[0] == 4001, first
    async with connect(ws_url, open_timeout=TIMEOUT) as ws:  # a deeply nested auth message
        await ws.send('{"type": "auth", "token": ' + "[" * 5000 + "]" * 5000 + "}")
        assert (await closed_code(ws))[0] == 4001
    # the token from the query string works, and is the one thing the access log must not show
    async with connect(f"{ws_url}?token={server.admin}", open_timeout=TIMEOUT) as ws:
        assert json.loads(await ws.recv())["type"] == "connection"
    r = await client.get("/api/v1/auth/verify", params={"access_token": server.admin, "api_key": "wdp_x_y"})
    assert r.status_code < 500


# --------------------------------------------------------------------------------------- item 7: revocation


async def test_deleting_a_user_ends_its_tokens_and_streams(server: Server, client: httpx.AsyncClient) -> None:
    w = server.h
    user = {"username": "probe-dora", "password": USER_PASSWORD, "scopes": ["pose:read", "stream:subscribe"]}
    assert (await client.post("/api/v1/auth/users", json=user, headers=w)).status_code == 201
    token = password_token(server.base, USER_PASSWORD, username="probe-dora")
    server.secrets.append(token)
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/v1/pose/current", headers=bearer)).status_code == 200
    async with connect(f"{server.ws}{WS_PATH}", open_timeout=TIMEOUT) as ws:
        await ws.send(json.dumps({"type": "auth", "token": token}))
        assert json.loads(await ws.recv())["type"] == "connection"
        assert (await client.delete("/api/v1/auth/users/probe-dora", headers=w)).status_code == 204
        code, reason = await closed_code(ws)
    assert code == 4001 and "user no longer exists" in reason, (code, reason)
    r = await client.get("/api/v1/pose/current", headers=bearer)
    assert r.status_code == 401 and r.json()["reason"] == "user no longer exists", r.text
    assert (await ws_rejected(f"{server.ws}{WS_PATH}", additional_headers=bearer))[0] == 4001


async def test_revoking_an_api_key_ends_it_its_tokens_and_streams(server: Server, client: httpx.AsyncClient) -> None:
    owner = {"owner": "probe-hub", "scopes": ["pose:read", "stream:subscribe"]}
    r = await client.post("/api/v1/auth/keys", json=owner, headers=server.h)
    assert r.status_code == 201, r.text
    key, key_id = r.json()["api_key"], r.json()["key_id"]
    r = await client.post("/api/v1/auth/token", json={"grant_type": "api_key", "api_key": key})
    token = r.json()["access_token"]
    server.secrets += [key, token]
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/v1/pose/current", headers={"X-API-Key": key})).status_code == 200
    async with (
        connect(f"{server.ws}{WS_PATH}", additional_headers={"X-API-Key": key}, open_timeout=TIMEOUT) as by_key,
        connect(f"{server.ws}{WS_PATH}", subprotocols=["bearer", token], open_timeout=TIMEOUT) as by_token,  # type: ignore[list-item]
    ):
        assert json.loads(await by_key.recv())["type"] == "connection"
        assert json.loads(await by_token.recv())["type"] == "connection"
        assert (await client.delete(f"/api/v1/auth/keys/{key_id}", headers=server.h)).status_code == 204
        assert (await closed_code(by_key))[0] == 4001
        code, reason = await closed_code(by_token)
    assert code == 4001 and "revoked" in reason, (code, reason)
    r = await client.get("/api/v1/pose/current", headers=bearer)
    assert r.status_code == 401 and r.json()["reason"] == "API key has been revoked", r.text
    assert (await client.get("/api/v1/pose/current", headers={"X-API-Key": key})).status_code == 401
    r = await client.post("/api/v1/auth/token", json={"grant_type": "api_key", "api_key": key})
    assert r.status_code == 401, r.text


# ------------------------------------------------------------------------------------ item 6: the lock-out


async def test_anonymous_flood_does_not_lock_out_admin_sign_in(server: Server, client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/auth/keys", json={"owner": "probe-flood", "scopes": ["pose:read"]}, headers=server.h)
    key = r.json()["api_key"]
    server.secrets.append(key)
    statuses = []
    for _ in range(ANON_LIMIT + 20):
        r = await client.get("/api/v1/pose/current")
        statuses.append(r.status_code)
        if r.status_code == 429:
            break
    assert set(statuses[:-1]) == {401} and statuses[-1] == 429, statuses[-5:]
    assert 1 <= int(r.headers["retry-after"]) <= 60 and r.json()["reason"]
    # the same address: admin sign-in, its token, and an API key all still work
    token = password_token(server.base, ADMIN_PASSWORD)
    server.secrets.append(token)
    r = await client.get("/api/v1/pose/current", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    r = await client.get("/api/v1/pose/current", headers={"X-API-Key": key})
    assert r.status_code == 200, r.text
    assert (await client.get("/api/v1/pose/current")).status_code == 429  # the anonymous budget is still spent


# ------------------------------------------------------------------------------------ items 5, 8: the log


def test_server_log_is_clean(server: Server) -> None:
    """Everything above went through the access log and the app's loggers: nothing forged, nothing raw,
    nothing secret, no traceback, no 5xx."""
    deadline = time.monotonic() + 5
    text = ""
    while time.monotonic() < deadline:  # the last access lines reach the file within moments
        text = server.log.read_text(encoding="utf-8", errors="replace")
        if '/api/v1/pose/current HTTP/1.1" 429' in text:
            break
        time.sleep(0.1)
    lines = text.splitlines()
    assert len(lines) > 500, len(lines)  # the access log is on
    assert any("FORGED" in line for line in lines), "the forged request is not in the log"
    assert not [line for line in lines if line.lstrip().startswith(FORGED)], "a forged log line"
    for raw in ("\x00", "\x1b", "\r", RLO, "\u2066", "\u200b"):
        assert raw not in text, repr(raw)
    assert "token=[REDACTED]" in text
    for secret in server.secrets:
        assert secret not in text, secret[:12]
    assert "Traceback" not in text
    assert not [line for line in lines if re.search(r'HTTP/1\.1" 5\d\d', line)], "a 5xx in the access log"
