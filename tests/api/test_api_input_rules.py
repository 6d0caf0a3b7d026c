"""Inputs the API must refuse with a 422 and a reason (issue 12, items 9-11): webhook targets that can never be
delivered (SSRF rule of the delivery, checked at create and update), custom webhook headers that could split a
request or forge the signature headers, and zone / alert rule / router / template bodies with unbounded
numbers or control and bidi characters in display strings."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from api_support import UNDELIVERABLE_TARGETS, Api, make_settings
from litestar.testing import AsyncTestClient

from wdp.integrations.webhooks import UrlGuard
from wdp.integrations.webhooks.headers import sendable_headers
from wdp.serve import StoreBackedEngineView, create_app
from wdp.serve.integrations_plugin import IntegrationsPlugin
from wdp.store import Store
from wdp.store import config as store_config

pytestmark = pytest.mark.anyio

HOOK = {"url": "https://hooks.example.test/in", "events": ["person.detected"]}
SQUARE = [[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]]
RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: "abc\u202efed" shows as "abcdef"

# What the fake DNS answers; anything else does not resolve. "slow.example.test" answers after 30 s.
DNS = {
    "public.example.test": ["93.184.216.34"],
    "internal.example.test": ["10.1.2.3"],
    "mixed.example.test": ["93.184.216.34", "169.254.169.254"],
    "lan.example.test": ["192.168.7.9"],
}


async def fake_resolver(host: str, port: int) -> list[Any]:
    if host == "slow.example.test":
        await asyncio.sleep(30)
    if host not in DNS:
        raise OSError(f"{host}: Name or service not known")
    return [ipaddress.ip_address(a) for a in DNS[host]]


@pytest.fixture
async def hooks_api(store: Store) -> AsyncIterator[Api]:
    """The API with the webhook guard a served engine builds from conf webhooks.allowed_networks."""
    view = StoreBackedEngineView(store)
    guard = UrlGuard(["192.168.7.0/24"], resolver=fake_resolver)
    app = create_app(make_settings(), engine_view=view, store=store, webhook_guard=guard)
    async with AsyncTestClient(app) as client:
        yield Api(app=app, client=client, view=view, store=store)


async def _post(api: Api, path: str, body: Any) -> Any:
    return await api.client.post(path, headers=api.auth("config:write"), json=body)


# ------------------------------------------------------------------------------------------ item 9: targets

UNDELIVERABLE = [
    *UNDELIVERABLE_TARGETS,
    "http://api.localhost/",
    "gopher://hooks.example.test/",
    "http://internal.example.test/",  # resolves to a private address
    "http://mixed.example.test/",  # one of its addresses is the metadata service
]


async def test_undeliverable_webhook_targets_are_refused_at_create_and_update(hooks_api: Api) -> None:
    api = hooks_api
    for url in UNDELIVERABLE:
        r = await _post(api, "/api/v1/webhooks", {**HOOK, "url": url})
        assert r.status_code == 422, (url, r.status_code, r.text)
        assert r.json()["reason"], url
    assert store_config.WEBHOOKS.list(api.store.cursor()) == []  # nothing stored, so nothing queued

    created = await _post(api, "/api/v1/webhooks", {**HOOK, "url": "https://public.example.test/in"})
    assert created.status_code == 201, created.text
    hook_id = created.json()["id"]
    for url in ("http://127.0.0.1/hook", "http://internal.example.test/", "http://0x7f.1/"):
        r = await api.client.put(
            f"/api/v1/webhooks/{hook_id}", headers=api.auth("config:write"), json={**HOOK, "url": url}
        )
        assert r.status_code == 422, (url, r.text)
        assert "refused" in r.json()["reason"]
    stored = store_config.WEBHOOKS.get(api.store.cursor(), hook_id)
    assert stored is not None and stored.url == "https://public.example.test/in"


async def test_webhook_targets_honour_allowed_networks_and_slow_dns(hooks_api: Api) -> None:
    api = hooks_api
    ok = [
        "http://192.168.7.20:8123/api/webhook/x",  # literal address inside webhooks.allowed_networks
        "http://lan.example.test/",  # resolves inside it
        "https://unregistered.example.test/in",  # does not resolve (yet): checked again at every delivery
    ]
    for url in ok:
        r = await _post(api, "/api/v1/webhooks", {**HOOK, "url": url})
        assert r.status_code == 201, (url, r.text)
    t0 = time.monotonic()
    r = await _post(api, "/api/v1/webhooks", {**HOOK, "url": "https://slow.example.test/in"})
    assert r.status_code == 201, r.text  # a slow DNS answer never fails the request ...
    assert time.monotonic() - t0 < 10  # ... nor holds it for long (1 s lookup budget)


async def test_the_default_api_refuses_loopback_targets(api: Api) -> None:
    """create_app without a guard refuses like a delivery with no allowed_networks."""
    for url in ("http://127.0.0.1:8080/", "http://localhost/"):
        r = await _post(api, "/api/v1/webhooks", {**HOOK, "url": url})
        assert r.status_code == 422, (url, r.text)


def test_served_engine_checks_targets_with_the_delivery_networks() -> None:
    plugin = IntegrationsPlugin(None, None, webhooks={"enabled": False, "allowed_networks": ["127.0.0.0/8"]})  # type: ignore[arg-type]
    plugin.url_guard.check_url("http://127.0.0.1:8080/hook")
    assert plugin.url_guard.allowed_networks == (ipaddress.ip_network("127.0.0.0/8"),)


# ------------------------------------------------------------------------------------------ item 10: headers


async def test_webhook_headers_with_control_characters_or_reserved_names_are_refused(api: Api) -> None:
    bad_headers = [
        {"X-A": "b\r\nX-Injected: 1"},
        {"X-A": "b\nX-Injected: 1"},
        {"X-A": "b\rc"},
        {"X-A": "nul\x00"},
        {"X-A": "bell\x07"},
        {"X-A": "del\x7f"},
        {"X-A": "caf\u00e9"},
        {"X-A": " padded"},
        {"X-A\r\nX-Injected": "1"},
        {"X A": "1"},
        {"X-A:": "1"},
        {"": "1"},
        {"X-\u00c4": "1"},
        {"X-Signature": "sha256=forged"},
        {"x-timestamp": "1"},
        {"X-Event-Type": "person.detected"},
        {"X-DELIVERY-ID": "forged"},
        {"X-Delivery-Attempt": "1"},
        {"Content-Type": "text/plain"},
        {"Content-Length": "0"},
        {"Host": "evil.example"},
        {"Transfer-Encoding": "chunked"},
        {"X-A": "1", "x-a": "2"},
        {f"X-H{i}": "v" for i in range(33)},
        {f"X-H{i}": "v" * 1000 for i in range(9)},
        {"X-" + "n" * 80: "1"},
    ]
    for headers in bad_headers:
        r = await _post(api, "/api/v1/webhooks", {**HOOK, "headers": headers})
        assert r.status_code == 422, (headers, r.status_code, r.text)
        assert r.json()["reason"], headers
    assert store_config.WEBHOOKS.list(api.store.cursor()) == []
    good = {"Authorization": "Bearer abc.def", "X-Tenant": "kitchen 2", "X-Tab": "a\tb"}
    created = await _post(api, "/api/v1/webhooks", {**HOOK, "headers": good})
    assert created.status_code == 201, created.text
    r = await api.client.put(
        f"/api/v1/webhooks/{created.json()['id']}",
        headers=api.auth("config:write"),
        json={**HOOK, "headers": {"X-A": "b\r\nX-Injected: 1"}},
    )
    assert r.status_code == 422 and "control characters" in r.json()["reason"]


# ------------------------------------------------------------------------------------------ item 11: config


def _zone(**kw: Any) -> dict[str, Any]:
    return {"id": "z1", "name": "Kitchen", "polygon": SQUARE, **kw}


BAD_ZONES = [
    _zone(max_occupancy=2**70),
    _zone(max_occupancy=10_001),
    _zone(max_occupancy=-1),
    _zone(name=f"abc{RLO}fed"),
    _zone(name="a\u2066b"),  # LEFT-TO-RIGHT ISOLATE
    _zone(name="line\nbreak"),
    _zone(name="esc\x1b[31m"),
    _zone(name="zw\u200bsp"),
    _zone(name="bom\ufeff"),
    _zone(name="ls\u2028"),
    _zone(name="x" * 129),
    _zone(name="   "),
    _zone(id=f"z{RLO}1"),
    _zone(id="z" * 65),
    _zone(polygon=[[0, 0], [1e300, 0], [0, 1]]),
    _zone(polygon=[[0, 0], [1e4 + 1, 0], [0, 1]]),
    _zone(polygon=[[i, i % 2] for i in range(300)]),
    _zone(polygon=[[0, 0], [1, 1]]),
    _zone(polygon=[[0, 0], [1, 1], [2, 2]]),  # no area
    _zone(alerts={"cooldown_s": 1e300}),
    _zone(alerts={"min_duration_s": -1}),
]


async def test_zone_bodies_with_unbounded_numbers_or_bidi_text_are_refused(api: Api) -> None:
    w = api.auth("config:write")
    before = [z.id for z in api.view.zones]
    for body in BAD_ZONES:
        r = await api.client.post("/api/v1/config/zones", headers=w, json=body)
        assert r.status_code == 422, (body, r.status_code, r.text)
        assert r.json()["reason"]
        r = await api.client.put("/api/v1/config/zones/z1", headers=w, json=body)
        assert r.status_code == 422, (body, r.status_code, r.text)
    assert store_config.ZONES.get(api.store.cursor(), "z1") is None and [z.id for z in api.view.zones] == before
    r = await api.client.post("/api/v1/config/zones", headers=w, json=_zone(name=f"abc{RLO}fed"))
    assert "U+202E" in r.json()["reason"]
    ok = _zone(name="Küche 👩\u200d🍳 مطبخ", max_occupancy=10_000)  # any script, emoji ZWJ sequences
    assert (await api.client.post("/api/v1/config/zones", headers=w, json=ok)).status_code == 201


async def test_alert_rule_router_and_template_bodies_are_bounded(api: Api) -> None:
    w = api.auth("config:write")
    rule = {"id": "r1", "name": "Falls", "event_types": ["person.fall_detected"]}
    router = {"id": "rt1", "name": "Hall", "kind": "esp32"}
    cases = [
        ("/api/v1/config/alerts", {**rule, "name": f"x{RLO}y"}),
        ("/api/v1/config/alerts", {**rule, "cooldown_s": 1e300}),
        ("/api/v1/config/alerts", {**rule, "event_types": ["person.fall_detected"] * 65}),
        ("/api/v1/config/alerts", {**rule, "zone_ids": ["left"] * 257}),
        ("/api/v1/config/routers", {**router, "name": f"x{RLO}y"}),
        ("/api/v1/config/routers", {**router, "host": "a\r\nb"}),
        ("/api/v1/config/routers", {**router, "port": 70000}),
        ("/api/v1/config/routers", {**router, "packet_rate": 1e300}),
        ("/api/v1/config/routers", {**router, "last_seen": 1e300}),
        ("/api/v1/config/routers", {**router, "kind": "esp32" * 100}),
        ("/api/v1/config/templates", {"id": "t1", "name": f"x{RLO}y"}),
        ("/api/v1/config/templates", {"id": "t1", "name": "Office", "description": f"reads {RLO}backwards"}),
        ("/api/v1/config/templates", {"id": "t1", "name": "Office", "zones": [_zone(max_occupancy=2**70)]}),
        ("/api/v1/config/templates", {"id": "t1", "name": "Office", "zones": [_zone(name=f"a{RLO}b")]}),
        ("/api/v1/config/templates", {"id": "t1", "name": "Office", "routers": [{**router, "name": "a\x00"}]}),
    ]
    for path, body in cases:
        r = await api.client.post(path, headers=w, json=body)
        assert r.status_code == 422, (path, body, r.status_code, r.text)
        assert r.json()["reason"]
    for path, body in (("/api/v1/config/alerts", rule), ("/api/v1/config/routers", router)):
        assert (await api.client.post(path, headers=w, json=body)).status_code == 201, path


def test_delivery_drops_headers_the_api_would_refuse() -> None:
    """A subscription stored before the header rule (or written to the store directly) cannot split a request
    or shadow a signature header under another letter case at delivery."""
    stored = {"X-Ok": "1", "X-A": "b\r\nX-Injected: 1", "x-signature": "sha256=forged", "Host": "evil"}
    assert sendable_headers(stored) == {"X-Ok": "1"}
