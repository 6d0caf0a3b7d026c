"""Rate limits, CORS, version/deprecation headers, Prometheus metrics, settings loading."""

from __future__ import annotations

import email.utils
from pathlib import Path

import pytest
from api_support import SECRET, Api, live_frame, make_settings, open_api
from omegaconf import OmegaConf

from wdp.serve import load_settings
from wdp.serve.ratelimit import RateLimiter
from wdp.serve.settings import RateLimitSettings, RateTier
from wdp.store import Store

pytestmark = pytest.mark.anyio


def _tiny_tiers(**limits: int) -> dict:
    tiers = {"default": 3, "authenticated": 5, "premium": 8, "streaming": 2, **limits}
    return {"rate_limit": {"tiers": {k: {"limit": v, "window_s": 60.0} for k, v in tiers.items()}}}


async def test_rate_limit_per_client_and_tier(store: Store) -> None:
    async for api in open_api(store, make_settings(**_tiny_tiers())):
        api.view.publish_frame(live_frame(1))
        alice, bob = api.auth("pose:read", subject="alice"), api.auth("pose:read", subject="bob")
        remaining = []
        for _ in range(5):
            r = await api.client.get("/api/v1/pose/current", headers=alice)
            assert r.status_code == 200
            assert r.headers["x-ratelimit-limit"] == "5"
            remaining.append(int(r.headers["x-ratelimit-remaining"]))
        assert remaining == [4, 3, 2, 1, 0]
        r = await api.client.get("/api/v1/pose/current", headers=alice)
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60
        assert r.headers["x-ratelimit-remaining"] == "0" and r.json()["reason"].startswith("rate limit")
        assert int(r.headers["x-ratelimit-reset"]) >= int(__import__("time").time())
        # another user has their own budget; admins get the premium tier
        assert (await api.client.get("/api/v1/pose/current", headers=bob)).status_code == 200
        r = await api.client.get("/api/v1/pose/current", headers=api.auth("admin:all", subject="root"))
        assert r.headers["x-ratelimit-limit"] == "8"
        # anonymous callers share their address's default tier (the 401s count too)
        codes = [(await api.client.get("/api/v1/pose/current")).status_code for _ in range(4)]
        assert codes == [401, 401, 401, 429]
        # health and metrics are exempt (monitoring must not be throttled)
        for _ in range(5):
            assert (await api.client.get("/api/v1/system/health")).status_code == 200
        metrics = (await api.client.get("/metrics")).text
        assert 'wdp_http_rate_limited_total{tier="authenticated"} 1.0' in metrics
        assert 'wdp_http_rate_limited_total{tier="default"} 1.0' in metrics


def test_rate_limiter_window_resets() -> None:
    limiter = RateLimiter(
        RateLimitSettings(
            tiers={"t": RateTier(limit=2, window_s=10.0)},
            anonymous_tier="t",
            authenticated_tier="t",
            stream_tier="t",
            admin_tier="t",
        )
    )
    assert [limiter.hit("t", "c", now=100.0).allowed for _ in range(3)] == [True, True, False]
    refused = limiter.hit("t", "c", now=105.0)
    assert not refused.allowed and refused.retry_after_s == 5
    assert limiter.hit("t", "c", now=110.0).allowed  # a new window
    assert limiter.hit("t", "other", now=105.0).allowed


async def test_cors(store: Store) -> None:
    settings = make_settings(cors={"allow_origins": ["https://dash.example"]})
    async for api in open_api(store, settings):
        pre = await api.client.options(
            "/api/v1/pose/current",
            headers={
                "Origin": "https://dash.example",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert pre.status_code in (200, 204)
        assert pre.headers["access-control-allow-origin"] == "https://dash.example"
        r = await api.client.get("/api/v1/system/health", headers={"Origin": "https://dash.example"})
        assert r.headers["access-control-allow-origin"] == "https://dash.example"
        assert "x-ratelimit-remaining" in r.headers["access-control-expose-headers"].lower()
        r = await api.client.get("/api/v1/system/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
    async for api in open_api(store):  # off by default
        r = await api.client.get("/api/v1/system/health", headers={"Origin": "https://dash.example"})
        assert "access-control-allow-origin" not in r.headers


async def test_version_and_deprecation_headers(store: Store) -> None:
    async for api in open_api(store):
        r = await api.client.get("/api/v1/system/health")
        assert r.headers["api-version"] == "v1" and "deprecation" not in r.headers
    settings = make_settings(
        versioning={
            "versions": {
                "v1": {
                    "status": "deprecated",
                    "deprecated_at": "2026-01-01T00:00:00Z",
                    "sunset_at": "2026-12-31",
                    "migration_guide": "https://docs.example/migration/v1-to-v2",
                }
            }
        }
    )
    async for api in open_api(store, settings):
        api.view.publish_frame(live_frame(1))
        for r in (
            await api.client.get("/api/v1/system/health"),
            await api.client.get("/api/v1/pose/current", headers=api.auth("pose:read")),
        ):
            assert r.headers["deprecation"] == "@1767225600"
            assert email.utils.parsedate_to_datetime(r.headers["sunset"]).year == 2026
            assert r.headers["sunset"] == "Thu, 31 Dec 2026 00:00:00 GMT"
            assert r.headers["link"] == '<https://docs.example/migration/v1-to-v2>; rel="deprecation"'


async def test_metrics(api: Api) -> None:
    api.view.publish_frame(live_frame(1))
    api.view.publish_frame(live_frame(2))
    h = api.auth("pose:read")
    for _ in range(3):
        await api.client.get("/api/v1/pose/current", headers=h)
    await api.client.get("/api/v1/pose/persons/12345", headers=h)
    r = await api.client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'wdp_http_requests_total{method="GET",route="/api/v1/pose/current",status="200"} 3.0' in text
    assert 'wdp_http_requests_total{method="GET",route="/api/v1/pose/persons/{person_id}",status="404"} 1.0' in text
    assert 'wdp_http_request_duration_seconds_count{method="GET",route="/api/v1/pose/current"} 3.0' in text
    assert "wdp_pipeline_frames_total 2.0" in text
    assert 'wdp_pipeline_latency_ms{quantile="0.5"} 12.5' in text
    assert "wdp_ws_connections 0.0" in text


def test_settings_sources() -> None:
    cfg = OmegaConf.create(
        {"dev_mode": False, "auth": {"jwt": {"secret": "from-yaml" * 5}}, "stream": {"queue_size": 16}}
    )
    s = load_settings(
        cfg,
        env={
            "WDP_API__STREAM__QUEUE_SIZE": "32",
            "WDP_API__CORS__ALLOW_ORIGINS": '["https://a"]',
            "WDP_JWT_SECRET": SECRET,
            "WDP_API__RATE_LIMIT__ENABLED": "false",
        },
    )
    assert s.stream.queue_size == 32 and s.cors.allow_origins == ["https://a"]
    assert s.auth.jwt.secret == SECRET and s.rate_limit.enabled is False
    with pytest.raises(Exception, match="unknown|Object contains unknown field"):
        load_settings({"stream": {"queue_sise": 4}}, env={})
    # the shipped YAML group loads and matches the Struct defaults where it sets nothing
    s = load_settings(OmegaConf.load(Path(__file__).parents[2] / "conf/api/default.yaml"), env={})
    assert s.rate_limit.tiers["premium"].limit == 6000 and s.stream.queue_size == 64
