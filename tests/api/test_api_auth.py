"""Authentication and authorization: JWT checks, scopes, API keys, hashing, insecure settings refused."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from api_support import SECRET, Api, make_settings, open_api

from wdp.serve import InsecureSettingsError, create_app, load_settings
from wdp.store import Store
from wdp.store import config as store_config

pytestmark = pytest.mark.anyio

CURRENT = "/api/v1/pose/current"


def _b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _claims(**over: object) -> dict:
    now = int(time.time())
    return {
        "sub": "mallory",
        "iat": now,
        "exp": now + 600,
        "iss": "wdp",
        "aud": "wdp-api",
        "scopes": ["admin:all"],
        **over,
    }


async def _create_user(api: Api, username: str, password: str, scopes: list[str], disabled: bool = False) -> None:
    r = await api.client.post(
        "/api/v1/auth/users",
        headers=api.auth("admin:all"),
        json={"username": username, "password": password, "scopes": scopes, "disabled": disabled},
    )
    assert r.status_code == 201, r.text


async def test_password_grant_and_verify(api: Api) -> None:
    await _create_user(api, "bob", "correct horse battery", ["pose:read", "analytics:read"])
    r = await api.client.post(
        "/api/v1/auth/token",
        json={"grant_type": "password", "username": "bob", "password": "correct horse battery"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer" and set(body["scope"].split()) == {"pose:read", "analytics:read"}
    assert 3590 <= body["expires_in"] <= 3600
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    who = (await api.client.get("/api/v1/auth/verify", headers=headers)).json()
    assert who["subject"] == "bob" and who["kind"] == "jwt" and who["tier"] == "authenticated"
    assert (await api.client.get("/api/v1/pose/zones", headers=headers)).status_code == 200
    # narrowing to a subset works; asking for a scope not held does not
    r = await api.client.post(
        "/api/v1/auth/token",
        json={
            "grant_type": "password",
            "username": "bob",
            "password": "correct horse battery",
            "scopes": ["pose:read"],
        },
    )
    assert r.json()["scope"] == "pose:read"
    r = await api.client.post(
        "/api/v1/auth/token",
        json={
            "grant_type": "password",
            "username": "bob",
            "password": "correct horse battery",
            "scopes": ["config:write"],
        },
    )
    assert r.status_code == 403


async def test_bad_credentials_look_the_same(api: Api) -> None:
    await _create_user(api, "carol", "s3cret-password", ["pose:read"])
    await _create_user(api, "dave", "s3cret-password", ["pose:read"], disabled=True)
    reasons = set()
    for username, password in (
        ("carol", "wrong-password"),
        ("nobody", "s3cret-password"),
        ("dave", "s3cret-password"),
    ):
        r = await api.client.post(
            "/api/v1/auth/token", json={"grant_type": "password", "username": username, "password": password}
        )
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Bearer")
        reasons.add(r.json()["reason"])
    assert reasons == {"invalid credentials"}
    # inconsistent grants are 422, not 401 or 500
    r = await api.client.post("/api/v1/auth/token", json={"grant_type": "password", "username": "carol"})
    assert r.status_code == 422
    r = await api.client.post("/api/v1/auth/token", json={"grant_type": "magic"})
    assert r.status_code == 422


async def test_missing_wrong_and_implied_scopes(api: Api) -> None:
    r = await api.client.get(CURRENT)
    assert r.status_code == 401 and r.json()["reason"] == "authentication required"
    r = await api.client.get(CURRENT, headers=api.auth("analytics:read"))
    assert r.status_code == 403 and "pose:read" in r.json()["reason"]
    api.view.publish_frame(__import__("api_support").live_frame(1))
    assert (await api.client.get(CURRENT, headers=api.auth("pose:read"))).status_code == 200
    assert (await api.client.get(CURRENT, headers=api.auth("admin:all"))).status_code == 200  # implies all
    # scope sets per route: zone edits accept zone:write, start/stop need admin:all
    zone = {"id": "desk", "name": "Desk", "polygon": [[1, 1], [2, 1], [2, 2]]}
    r = await api.client.post("/api/v1/config/zones", json=zone, headers=api.auth("zone:write"))
    assert r.status_code == 201
    r = await api.client.post(
        "/api/v1/config/routers",
        json={"id": "r9", "name": "R", "kind": "esp32"},
        headers=api.auth("zone:write"),
    )
    assert r.status_code == 403
    assert (await api.client.post("/api/v1/system/stop", headers=api.auth("system:read"))).status_code == 403
    assert (await api.client.post("/api/v1/system/stop", headers=api.auth("admin:all"))).status_code == 200


@pytest.mark.parametrize(
    "case",
    [
        "expired",
        "tampered",
        "alg_none",
        "other_secret",
        "wrong_audience",
        "no_exp",
        "garbage",
        "basic_scheme",
    ],
)
async def test_rejected_tokens(api: Api, case: str) -> None:
    good = api.token("admin:all")
    if case == "expired":
        token = jwt.encode(_claims(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600), SECRET, "HS256")
    elif case == "tampered":
        header, payload, sig = good.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        claims["sub"] = "mallory"
        token = f"{header}.{_b64(claims)}.{sig}"
    elif case == "alg_none":
        token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims())}."
    elif case == "other_secret":
        token = jwt.encode(_claims(), "another-secret-of-sufficient-length-0123456789", "HS256")
    elif case == "wrong_audience":
        token = jwt.encode(_claims(aud="someone-else"), SECRET, "HS256")
    elif case == "no_exp":
        claims = _claims()
        del claims["exp"]
        token = jwt.encode(claims, SECRET, "HS256")
    elif case == "garbage":
        token = "not.a.jwt"
    else:
        token = None
    headers = {"Authorization": "Basic YWRtaW46YWRtaW4="} if token is None else {"Authorization": f"Bearer {token}"}
    r = await api.client.get(CURRENT, headers=headers)
    assert r.status_code == 401, (case, r.text)
    if case == "expired":
        assert "expired" in r.json()["reason"]
    assert api.services.metrics.auth_failures.labels("jwt")._value.get() >= (0 if case == "basic_scheme" else 1)


async def test_api_keys(api: Api) -> None:
    admin = api.auth("admin:all")
    r = await api.client.post("/api/v1/auth/keys", headers=admin, json={"owner": "sensor-hub", "scopes": ["pose:read"]})
    assert r.status_code == 201, r.text
    created = r.json()
    key = created["api_key"]
    assert key.startswith("wdp_") and created["key_id"] in key
    # only an argon2 hash of the secret is stored
    stored = store_config.list_api_keys(api.store.cursor())[0]
    assert stored.key_hash.startswith("$argon2id$") and key.split("_", 2)[2] not in stored.key_hash
    api.view.publish_frame(__import__("api_support").live_frame(1))
    r = await api.client.get(CURRENT, headers={"X-API-Key": key})
    assert r.status_code == 200
    assert (await api.client.get("/api/v1/system/status", headers={"X-API-Key": key})).status_code == 403
    who = (await api.client.get("/api/v1/auth/verify", headers={"X-API-Key": key})).json()
    assert who["kind"] == "api_key" and who["subject"] == "sensor-hub" and who["key_id"] == created["key_id"]
    # exchange for a JWT
    r = await api.client.post("/api/v1/auth/token", json={"grant_type": "api_key", "api_key": key})
    assert r.status_code == 200 and r.json()["scope"] == "pose:read"
    # a wrong secret with a valid key id, and a malformed key, are 401
    wrong = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    assert (await api.client.get(CURRENT, headers={"X-API-Key": wrong})).status_code == 401
    assert (await api.client.get(CURRENT, headers={"X-API-Key": "nonsense"})).status_code == 401
    # revocation takes effect immediately despite the verification cache
    listed = (await api.client.get("/api/v1/auth/keys", headers=admin)).json()
    assert [k["key_id"] for k in listed] == [created["key_id"]] and "api_key" not in listed[0]
    assert (await api.client.delete(f"/api/v1/auth/keys/{created['key_id']}", headers=admin)).status_code == 204
    assert (await api.client.get(CURRENT, headers={"X-API-Key": key})).status_code == 401
    assert (await api.client.delete(f"/api/v1/auth/keys/{created['key_id']}", headers=admin)).status_code == 404


async def test_user_admin(api: Api) -> None:
    admin = api.auth("admin:all")
    await _create_user(api, "erin", "password-123", ["pose:read"])
    user = store_config.get_user(api.store.cursor(), "erin")
    assert user is not None and user.password_hash.startswith("$argon2id$") and "password-123" not in user.password_hash
    r = await api.client.post(
        "/api/v1/auth/users",
        headers=admin,
        json={"username": "erin", "password": "password-456", "scopes": []},
    )
    assert r.status_code == 409
    r = await api.client.post(
        "/api/v1/auth/users", headers=admin, json={"username": "frank", "password": "pw", "scopes": []}
    )
    assert r.status_code == 422  # too short
    r = await api.client.post(
        "/api/v1/auth/users",
        headers=admin,
        json={"username": "gina", "password": "password-789", "scopes": ["root"]},
    )
    assert r.status_code == 422  # unknown scope
    names = [u["username"] for u in (await api.client.get("/api/v1/auth/users", headers=admin)).json()]
    assert names == ["erin"]
    assert (await api.client.get("/api/v1/auth/users", headers=api.auth("config:write"))).status_code == 403
    assert (await api.client.delete("/api/v1/auth/users/erin", headers=admin)).status_code == 204
    assert (await api.client.delete("/api/v1/auth/users/erin", headers=admin)).status_code == 404


def test_insecure_settings_refused() -> None:
    store = Store(":memory:")
    with pytest.raises(InsecureSettingsError, match="default JWT secret"):
        create_app(load_settings({}, env={}), store=store)
    with pytest.raises(InsecureSettingsError, match="at least 32 bytes"):
        create_app(load_settings({"auth": {"jwt": {"secret": "short"}}}, env={}), store=store)
    with pytest.raises(InsecureSettingsError, match="public_key"):
        create_app(load_settings({"auth": {"jwt": {"algorithm": "RS256"}}}, env={}), store=store)
    create_app(load_settings({"dev_mode": True}, env={}), store=store)  # dev mode may use the default
    # the secret can come from the environment instead of a file
    create_app(load_settings({}, env={"WDP_JWT_SECRET": SECRET}), store=store)


async def test_rs256(store: Store) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    settings = make_settings(auth={"jwt": {"algorithm": "RS256", "private_key": private, "public_key": public}})
    async for api in open_api(store, settings):
        token = api.token("system:read")
        assert jwt.get_unverified_header(token)["alg"] == "RS256"
        ok = await api.client.get("/api/v1/system/status", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
        # an HS256 token (even one "signed" with the public key, the classic confusion attack) is refused
        forged = base64.urlsafe_b64encode(b"x").decode()
        hs = jwt.encode(_claims(), SECRET, "HS256")
        for token in (hs, f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64(_claims())}.{forged}"):
            r = await api.client.get("/api/v1/system/status", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 401
