"""Credentials (issue 12, items 4, 7, 8 and the JWT secret): token claim edge cases are 401s with a reason,
never 500s; deleting a user or revoking an API key ends its tokens on the next request and closes its open
WebSockets; the stream takes its token from a header, the subprotocol or the first message; a generated JWT
secret is kept in the state directory, so a restart signs nobody out. Last: the same against a real uvicorn."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import SECRET, Api, make_settings, open_api
from litestar.exceptions import WebSocketDisconnect
from server_process import free_port, password_token, stop_process, wait_healthy
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from wdp.serve import InsecureSettingsError, create_app, load_settings
from wdp.serve.settings import JWT_SECRET_FILE
from wdp.store import Store
from wdp.store import config as store_config

pytestmark = pytest.mark.anyio

WS = "/ws/v1/stream"
VERIFY = "/api/v1/auth/verify"
TIMEOUT = 5.0
PASSWORD = "correct horse battery"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _signed(payload: bytes | dict[str, Any], header: dict[str, Any] | None = None, secret: str = SECRET) -> str:
    """An HS256 token over exactly these payload bytes (pyjwt cannot encode 10**400 or NaN as a claim)."""
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    head = _b64(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(raw)
    sig = _b64(hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


def _claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "sub": "mallory",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "iss": "wdp",
        "aud": "wdp-api",
        "scopes": ["admin:all"],
    }
    for name, value in over.items():
        if value is ...:
            claims.pop(name)
        else:
            claims[name] = value
    return claims


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


NOW = int(time.time())
BAD_TOKENS: dict[str, str] = {
    "exp_huge": _signed(_claims(exp=10**400)),  # the probe's 500 (OverflowError)
    "exp_negative_huge": _signed(_claims(exp=-(10**400))),
    "exp_float_huge": _signed(_claims(exp=1e308)),
    "exp_string": _signed(_claims(exp=str(NOW + 600))),
    "exp_bool": _signed(_claims(exp=True)),
    "exp_nan": _signed(json.dumps(_claims()).replace(str(NOW + 600), "NaN").encode()),
    "exp_infinity": _signed(json.dumps(_claims()).replace(str(NOW + 600), "Infinity").encode()),
    "exp_missing": _signed(_claims(exp=...)),
    "iat_huge": _signed(_claims(iat=10**400)),
    "iat_negative": _signed(_claims(iat=-(10**400))),
    "iat_string": _signed(_claims(iat=str(NOW))),
    "iat_missing": _signed(_claims(iat=...)),
    "nbf_huge": _signed(_claims(nbf=10**400)),
    "nbf_negative": _signed(_claims(nbf=-5)),
    "nbf_string": _signed(_claims(nbf=str(NOW))),
    "nbf_list": _signed(_claims(nbf=[NOW])),
    "sub_missing": _signed(_claims(sub=...)),
    "sub_int": _signed(_claims(sub=7)),
    "scopes_missing": _signed(_claims(scopes=...)),
    "scopes_string": _signed(_claims(scopes="admin:all")),
    "scopes_nested": _signed(_claims(scopes=[["admin:all"]])),
    "scopes_object": _signed(_claims(scopes={"admin:all": True})),
    "key_id_int": _signed(_claims(key_id=5)),
    "user_created_huge": _signed(_claims(user_created=10**400)),
    "alg_none": _b64(b'{"alg": "none"}') + "." + _b64(json.dumps(_claims()).encode()) + ".",
    "alg_hs512": _signed(_claims(), header={"alg": "HS512", "typ": "JWT"}),
    "alg_list": _signed(_claims(), header={"alg": ["HS256"], "typ": "JWT"}),
    "deep_payload": _signed(b'{"sub":' + b"[" * 50_000 + b"]" * 50_000 + b"}"),
    "enormous": _signed(_claims(pad="x" * 200_000)),
    "payload_array": _signed(b"[1, 2]"),
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
async def test_token_edge_cases_are_401_with_a_reason(api: Api, case: str) -> None:
    r = await api.client.get(VERIFY, headers=_bearer(BAD_TOKENS[case]))
    assert r.status_code == 401, (case, r.status_code, r.text[:300])
    assert r.json()["reason"] and r.headers["www-authenticate"].startswith("Bearer")
    # the same token on the stream: a 4001 close, not an internal error
    with await api.client.websocket_connect(WS, headers=_bearer(BAD_TOKENS[case])) as ws:
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive_json(timeout=TIMEOUT)
    assert info.value.code == 4001


async def test_time_claims_in_range_still_work(api: Api) -> None:
    ok = _signed(_claims(exp=NOW + 600.5, nbf=0, scopes=["pose:read"]))  # floats and 0 are valid NumericDates
    who = await api.client.get(VERIFY, headers=_bearer(ok))
    assert who.status_code == 200 and who.json()["scopes"] == ["pose:read"]


# ------------------------------------------------------------------------------------------------ revocation


async def _create_user(api: Api, username: str, scopes: list[str]) -> None:
    r = await api.client.post(
        "/api/v1/auth/users",
        headers=api.auth("admin:all", subject="root"),
        json={"username": username, "password": PASSWORD, "scopes": scopes},
    )
    assert r.status_code == 201, r.text


async def _password_token(api: Api, username: str) -> str:
    r = await api.client.post(
        "/api/v1/auth/token", json={"grant_type": "password", "username": username, "password": PASSWORD}
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


async def _create_key(api: Api, scopes: list[str]) -> dict[str, Any]:
    r = await api.client.post(
        "/api/v1/auth/keys", headers=api.auth("admin:all", subject="root"), json={"owner": "hub", "scopes": scopes}
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def _closed_with(ws: Any) -> tuple[int, str]:
    """Read until the server closes the socket; its close code and reason."""
    with pytest.raises(WebSocketDisconnect) as info:
        while True:
            ws.receive_json(timeout=TIMEOUT)
    return info.value.code, str(info.value.detail)


async def test_deleting_a_user_ends_its_tokens_and_streams(api: Api) -> None:
    admin = api.auth("admin:all", subject="root")
    await _create_user(api, "bob", ["pose:read", "stream:subscribe"])
    token = await _password_token(api, "bob")
    assert (await api.client.get(VERIFY, headers=_bearer(token))).status_code == 200
    with await api.client.websocket_connect(WS, headers=_bearer(token)) as ws:
        assert ws.receive_json(timeout=TIMEOUT)["type"] == "connection"
        assert (await api.client.delete("/api/v1/auth/users/bob", headers=admin)).status_code == 204
        code, reason = _closed_with(ws)
    assert code == 4001 and "user no longer exists" in reason
    r = await api.client.get(VERIFY, headers=_bearer(token))
    assert r.status_code == 401 and r.json()["reason"] == "user no longer exists"
    # a new user of the same name does not bring the old tokens back
    await _create_user(api, "bob", ["admin:all"])
    assert (await api.client.get(VERIFY, headers=_bearer(token))).status_code == 401
    assert (await api.client.get(VERIFY, headers=_bearer(await _password_token(api, "bob")))).status_code == 200
    assert api.services.metrics.ws_disconnects.labels("revoked")._value.get() == 1


async def test_disabling_a_user_or_taking_scopes_away_ends_its_tokens(api: Api) -> None:
    await _create_user(api, "carol", ["pose:read", "stream:subscribe"])
    token = await _password_token(api, "carol")
    user = store_config.get_user(api.store.cursor(), "carol")
    assert user is not None

    def change(scopes: list[str], disabled: bool) -> None:
        store_config.put_user(api.store.cursor(), "carol", user.password_hash, scopes, disabled=disabled)
        api.client.blocking_portal.call(api.services.credentials_changed)

    with await api.client.websocket_connect(WS, headers=_bearer(token)) as ws:
        assert ws.receive_json(timeout=TIMEOUT)["type"] == "connection"
        change(["pose:read"], disabled=False)  # stream:subscribe taken away
        code, reason = _closed_with(ws)
    assert code == 4001 and "no longer granted" in reason
    assert (await api.client.get(VERIFY, headers=_bearer(token))).status_code == 401
    change(["pose:read", "stream:subscribe"], disabled=True)
    r = await api.client.get(VERIFY, headers=_bearer(token))
    assert r.status_code == 401 and r.json()["reason"] == "user is disabled"
    change(["pose:read", "stream:subscribe"], disabled=False)
    assert (await api.client.get(VERIFY, headers=_bearer(token))).status_code == 200


async def test_revoking_a_key_ends_it_and_its_tokens_and_streams(api: Api) -> None:
    created = await _create_key(api, ["pose:read", "stream:subscribe"])
    key = created["api_key"]
    r = await api.client.post("/api/v1/auth/token", json={"grant_type": "api_key", "api_key": key})
    token = r.json()["access_token"]
    assert (await api.client.get(VERIFY, headers=_bearer(token))).json()["key_id"] == created["key_id"]
    with (
        await api.client.websocket_connect(WS, headers={"X-API-Key": key}) as by_key,
        await api.client.websocket_connect(WS, headers=_bearer(token)) as by_token,
    ):
        assert by_key.receive_json(timeout=TIMEOUT)["type"] == "connection"
        assert by_token.receive_json(timeout=TIMEOUT)["type"] == "connection"
        r = await api.client.delete(f"/api/v1/auth/keys/{created['key_id']}", headers=api.auth("admin:all"))
        assert r.status_code == 204
        assert _closed_with(by_key)[0] == 4001
        code, reason = _closed_with(by_token)
    assert code == 4001 and "revoked" in reason
    r = await api.client.get(VERIFY, headers=_bearer(token))
    assert r.status_code == 401 and r.json()["reason"] == "API key has been revoked"
    assert (await api.client.get(VERIFY, headers={"X-API-Key": key})).status_code == 401
    r = await api.client.post("/api/v1/auth/token", json={"grant_type": "api_key", "api_key": key})
    assert r.status_code == 401


# ------------------------------------------------------------------------------------------------ stream auth


async def test_stream_auth_by_first_message(api: Api) -> None:
    key = (await _create_key(api, ["stream:subscribe"]))["api_key"]
    for credential in (api.token("stream:subscribe"), key):
        with await api.client.websocket_connect(WS) as ws:
            ws.send_json({"type": "auth", "token": credential})
            welcome = ws.receive_json(timeout=TIMEOUT)
            assert welcome["type"] == "connection"
            ws.send_json({"type": "ping", "timestamp": 1.0})
            assert ws.receive_json(timeout=TIMEOUT)["type"] == "pong"
    for first, needle in (
        ({"type": "auth", "token": "forged"}, "invalid token"),
        ({"type": "auth", "token": api.token("pose:read")}, "stream:subscribe"),
        ({"type": "subscribe", "topic": "pose_updates"}, '{"type": "auth"'),
        ({"type": "auth", "token": "x", "extra": 1}, '{"type": "auth"'),
    ):
        with await api.client.websocket_connect(WS) as ws:
            ws.send_json(first)
            code, reason = _closed_with(ws)
        assert code in (4001, 4003) and needle in reason, (first, code, reason)


async def test_stream_auth_message_deadline(store: Store) -> None:
    async for api in open_api(store, make_settings(stream={"auth_timeout_s": 0.05})):
        with await api.client.websocket_connect(WS) as ws:
            code, reason = _closed_with(ws)  # sends nothing
        assert code == 4001 and "no auth message within 0.05 s" in reason


async def test_stream_auth_by_bearer_subprotocol(api: Api) -> None:
    token = api.token("stream:subscribe")
    with await api.client.websocket_connect(WS, subprotocols=["bearer", token]) as ws:
        assert ws.receive_json(timeout=TIMEOUT)["type"] == "connection"
        assert ws.accepted_subprotocol == "bearer"
    with await api.client.websocket_connect(WS, subprotocols=["bearer", "forged"]) as ws:
        assert _closed_with(ws)[0] == 4001


# ------------------------------------------------------------------------------------------------ JWT secret


def test_generated_secret_is_kept_in_the_state_directory(tmp_path: Path) -> None:
    db = tmp_path / "history" / "wdp_history.duckdb"
    db.parent.mkdir()
    with Store(db) as store:
        first = create_app(load_settings({}, env={}), store=store).state["services"]
        token = first.tokens.issue("alice", ["pose:read"])[0]
    secret_file = db.parent / JWT_SECRET_FILE
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert len(bytes.fromhex(secret_file.read_text().strip())) == 32
    with Store(db) as store:  # a restart: the same secret, so the token still verifies
        again = create_app(load_settings({}, env={}), store=store).state["services"]
        assert again.tokens.verify(token).subject == "alice"
    assert secret_file.read_text() == (db.parent / JWT_SECRET_FILE).read_text()
    # a configured state_dir wins; a given secret is used as is and nothing is written
    state = tmp_path / "state"
    create_app(load_settings({"state_dir": str(state)}, env={}), store=Store(":memory:"))
    assert (state / JWT_SECRET_FILE).is_file()
    other = tmp_path / "other"
    create_app(load_settings({"state_dir": str(other)}, env={"WDP_JWT_SECRET": SECRET}), store=Store(":memory:"))
    assert not other.exists()
    # nowhere to keep one (an in-memory store, no state_dir): refused as before
    with pytest.raises(InsecureSettingsError, match="default JWT secret"):
        create_app(load_settings({}, env={}), store=Store(":memory:"))


# ------------------------------------------------------------------------------------------------ real uvicorn


@contextlib.contextmanager
def _uvicorn(state: Path, log: Path) -> Iterator[str]:
    """`uvicorn --factory create_app_from_env` with NO JWT secret given and its store in ``state``."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "WDP_JWT_SECRET" and not k.startswith("WDP_API__")} | {
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        "WDP_ADMIN_PASSWORD": PASSWORD,
        "WDP_API__STORE_PATH": str(state / "wdp_history.duckdb"),
        "WDP_API__AUTH__ARGON2_TIME_COST": "1",
        "WDP_API__AUTH__ARGON2_MEMORY_KIB": "8192",
        "WDP_API__AUTH__ARGON2_PARALLELISM": "1",
    }
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "wdp.serve.app:create_app_from_env", "--factory"]
            + ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc, log, timeout=30)
        yield base
    finally:
        stop_process(proc, timeout=10)


async def test_real_server_token_edge_cases_revocation_and_restart(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with _uvicorn(tmp_path, log) as base:
        admin = password_token(base, PASSWORD)
        secret = (tmp_path / JWT_SECRET_FILE).read_text().strip()
        ws_base = base.replace("http", "ws", 1) + WS
        async with httpx.AsyncClient(base_url=base, timeout=10.0) as client:
            huge = _signed(_claims(exp=10**400), secret=secret)
            r = await client.get(VERIFY, headers=_bearer(huge))
            assert r.status_code == 401 and "exp" in r.json()["reason"]
            # an enormous header: refused by the server or by the length check, never a 5xx
            r = await client.get(VERIFY, headers=_bearer("a" * 60_000))
            assert 400 <= r.status_code < 500
            # the preferred stream authentication: the first message; and the subprotocol form
            async with connect(ws_base) as ws:
                await ws.send(json.dumps({"type": "auth", "token": admin}))
                assert json.loads(await ws.recv())["type"] == "connection"
            async with connect(ws_base, subprotocols=["bearer", admin]) as ws:  # type: ignore[list-item]
                assert ws.subprotocol == "bearer"
                assert json.loads(await ws.recv())["type"] == "connection"
            with pytest.raises(ConnectionClosed) as info:
                async with connect(ws_base, additional_headers=_bearer(huge)) as ws:
                    await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 4001
            # revocation over TCP: the open stream of a deleted user is closed with 4001
            r = await client.post(
                "/api/v1/auth/users",
                headers=_bearer(admin),
                json={"username": "dora", "password": PASSWORD, "scopes": ["stream:subscribe"]},
            )
            assert r.status_code == 201
            dora = password_token(base, PASSWORD, username="dora")
            async with connect(ws_base, additional_headers=_bearer(dora)) as ws:
                assert json.loads(await ws.recv())["type"] == "connection"
                assert (await client.delete("/api/v1/auth/users/dora", headers=_bearer(admin))).status_code == 204
                with pytest.raises(ConnectionClosed) as info:
                    while True:
                        await ws.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 4001
    # a restart keeps the generated secret: the admin's token still works
    with _uvicorn(tmp_path, log) as base:
        r = httpx.get(f"{base}{VERIFY}", headers=_bearer(admin))
        assert r.status_code == 200 and r.json()["subject"] == "admin"
    text = log.read_text()
    assert "Traceback" not in text and " 500" not in text, text
