"""Issue 12 item 6: an anonymous flood from one address (or from everyone behind one proxy) must not lock
out sign-in or API keys; callers with credentials are limited per identity; failed sign-ins have their own
budget with backoff; Retry-After is the real time to a window's reset."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from api_support import Api, make_settings, open_api
from litestar.testing import AsyncTestClient
from omegaconf import OmegaConf

from wdp.serve.app import create_app
from wdp.serve.engine_view import StoreBackedEngineView
from wdp.serve.ratelimit import SignInThrottle, client_address
from wdp.serve.settings import ServeSettings, SignInLimits, load_settings
from wdp.store import Store

pytestmark = pytest.mark.anyio

PASSWORD = "correct horse battery staple"


def _limits(default: int = 5, **sign_in: Any) -> dict[str, Any]:
    tiers = {"default": default, "authenticated": 50, "premium": 80, "streaming": 5}
    return {
        "rate_limit": {
            "tiers": {k: {"limit": v, "window_s": 60.0} for k, v in tiers.items()},
            "sign_in": {"free_failures_per_account": 3, "free_failures_per_address": 6, **sign_in},
        }
    }


async def _admin_and_key(api: Api) -> tuple[dict[str, str], str]:
    admin = api.auth("admin:all", subject="root")
    r = await api.client.post(
        "/api/v1/auth/users", headers=admin, json={"username": "boss", "password": PASSWORD, "scopes": ["admin:all"]}
    )
    assert r.status_code in (200, 201), r.text
    r = await api.client.post("/api/v1/auth/keys", headers=admin, json={"owner": "hub", "scopes": ["pose:read"]})
    assert r.status_code in (200, 201), r.text
    return admin, r.json()["api_key"]


async def _sign_in(api: Api, username: str = "boss", password: str = PASSWORD, **headers: str) -> Any:
    body = {"grant_type": "password", "username": username, "password": password}
    return await api.client.post("/api/v1/auth/token", json=body, headers=headers)


async def test_anonymous_flood_does_not_lock_out_sign_in_or_api_keys(store: Store) -> None:
    async for api in open_api(store, make_settings(**_limits())):
        _, key = await _admin_and_key(api)
        codes = [(await api.client.get("/api/v1/pose/current")).status_code for _ in range(12)]
        assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}
        refused = await api.client.get("/api/v1/pose/current")
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        # the same address signs in, and uses an API key (first use: argon2) and a token: all per identity
        r = await _sign_in(api)
        assert r.status_code == 200, r.text
        assert "x-ratelimit-limit" not in r.headers  # sign-in is not in the anonymous budget
        r = await api.client.get("/api/v1/pose/current", headers={"X-API-Key": key})
        assert r.status_code == 200, r.text
        assert r.headers["x-ratelimit-limit"] == "50"
        bearer = {"Authorization": f"Bearer {(await _sign_in(api)).json()['access_token']}"}
        r = await api.client.get("/api/v1/pose/current", headers=bearer)
        assert r.status_code == 200 and r.headers["x-ratelimit-limit"] == "80"  # admin: premium tier
        r = await api.client.post("/api/v1/auth/token", json={"grant_type": "api_key", "api_key": key})
        assert r.status_code == 200, r.text


async def test_default_windows_give_a_short_retry_after(store: Store) -> None:
    settings = make_settings()
    assert all(t.window_s <= 60 for t in settings.rate_limit.tiers.values())
    shipped = load_settings(OmegaConf.load(Path(__file__).parents[2] / "conf/api/default.yaml"), env={})
    assert shipped.rate_limit == settings.rate_limit  # what `wdp serve` runs with
    async for api in open_api(store, settings):
        limit = settings.rate_limit.tiers[settings.rate_limit.anonymous_tier].limit
        for _ in range(limit):
            assert (await api.client.get("/api/v1/pose/current")).status_code == 401
        r = await api.client.get("/api/v1/pose/current")
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60


async def test_failed_sign_ins_lock_the_account_and_the_address(store: Store) -> None:
    async for api in open_api(store, make_settings(**_limits())):
        await _admin_and_key(api)
        codes = [(await _sign_in(api, password="wrong")).status_code for _ in range(4)]
        assert codes == [401, 401, 401, 429]  # 3 free failures, then locked
        r = await _sign_in(api)  # even the right password waits while the account is locked
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 300
        # another account from the same address still signs in (the address allows 6 failures) ...
        assert (await _sign_in(api, username="nobody", password="x")).status_code == 401
        assert (await _sign_in(api, username="nobody2", password="x")).status_code == 401
        assert (await _sign_in(api, username="nobody3", password="x")).status_code == 401  # the address's 6th
        assert (await _sign_in(api, username="nobody4", password="x")).status_code == 429
        # ... and a wrong X-API-Key counts as a failed sign-in of that key id and address
        bad = "wdp_0123456789ab_" + "x" * 40
        r = await api.client.get("/api/v1/pose/current", headers={"X-API-Key": bad})
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


def test_sign_in_throttle_backoff_and_forgetting() -> None:
    throttle = SignInThrottle(
        SignInLimits(
            free_failures_per_account=2,
            free_failures_per_address=100,
            backoff_base_s=1.0,
            backoff_max_s=8.0,
            forget_after_s=60.0,
        ),
        max_keys=1000,
    )
    keys = throttle.keys("10.0.0.1", "user:bob")
    waits = []
    for _ in range(6):
        throttle.failed(keys, now=100.0)
        waits.append(throttle.retry_after(keys, now=100.0))
    assert waits == [0, 1, 2, 4, 8, 8]  # doubling, capped
    assert throttle.retry_after(keys, now=107.5) == 1
    assert throttle.retry_after(keys, now=160.0) == 0  # forgotten after a quiet minute
    throttle.failed(keys, now=100.0)
    throttle.succeeded("user:bob")
    assert throttle.retry_after(keys, now=100.0) == 0


def _scope(peer: str, forwarded: str | None) -> dict[str, Any]:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
    return {"client": (peer, 1234), "headers": headers}


def test_client_address_trusts_only_configured_proxies() -> None:
    import ipaddress

    proxies = (ipaddress.ip_network("10.0.0.0/8"),)
    assert client_address(_scope("203.0.113.5", "1.2.3.4"), proxies) == "203.0.113.5"  # not a proxy
    assert client_address(_scope("10.0.0.2", "1.2.3.4"), ()) == "10.0.0.2"  # off by default
    assert client_address(_scope("10.0.0.2", "1.2.3.4"), proxies) == "1.2.3.4"
    # the client's own claim (left) is skipped: the nearest untrusted hop is the client
    assert client_address(_scope("10.0.0.2", "6.6.6.6, 1.2.3.4, 10.0.0.9"), proxies) == "1.2.3.4"
    assert client_address(_scope("10.0.0.2", "nonsense"), proxies) == "10.0.0.2"


async def _behind_proxy(store: Store, settings: ServeSettings) -> AsyncIterator[AsyncTestClient[Any]]:
    """The app as a reverse proxy at 10.0.0.2 reaches it: every request's peer is the proxy."""
    app = create_app(settings, engine_view=StoreBackedEngineView(store), store=store)

    async def via_proxy(scope: Any, receive: Any, send: Any) -> None:
        await app({**scope, "client": ("10.0.0.2", 443)} if "client" in scope else scope, receive, send)

    async with AsyncTestClient(via_proxy) as client:  # type: ignore[arg-type]
        yield client


@pytest.mark.parametrize("trusted", [True, False])
async def test_one_noisy_client_behind_a_trusted_proxy_locks_out_only_itself(store: Store, trusted: bool) -> None:
    extra = {"trusted_proxies": ["10.0.0.0/8"]} if trusted else {}
    settings = make_settings(rate_limit={**_limits()["rate_limit"], **extra})
    async for client in _behind_proxy(store, settings):
        noisy, quiet = {"X-Forwarded-For": "198.51.100.7"}, {"X-Forwarded-For": "198.51.100.8"}
        for _ in range(5):
            assert (await client.get("/api/v1/pose/current", headers=noisy)).status_code == 401
        assert (await client.get("/api/v1/pose/current", headers=noisy)).status_code == 429
        r = await client.get("/api/v1/pose/current", headers=quiet)
        assert r.status_code == (401 if trusted else 429)  # without the setting, all share the proxy's budget
