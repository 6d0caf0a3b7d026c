"""What responses say (issue 12, smaller items): the 403 reason names each scope once, and the rate-limit
headers are where the README says they are."""

from __future__ import annotations

from pathlib import Path

import pytest
from api_support import Api
from litestar.routes import HTTPRoute

from wdp.serve.errors import scope_requirement

pytestmark = pytest.mark.anyio

README = Path(__file__).resolve().parents[2] / "README.md"


def test_scope_requirement_names_admin_once() -> None:
    assert scope_requirement(("admin:all",)) == "admin:all"
    assert scope_requirement(("pose:read",)) == "pose:read (or admin:all)"
    assert scope_requirement(("system:read", "admin:all", "zone:write")) == "system:read or zone:write (or admin:all)"


async def test_forbidden_reason_names_each_scope_once(api: Api) -> None:
    h = api.auth("pose:read")
    r = await api.client.post("/api/v1/system/stop", headers=h)  # admin:all only
    assert r.status_code == 403 and r.json()["reason"] == "requires scope admin:all"
    r = await api.client.get("/api/v1/analytics/reports?start_time=0&end_time=1", headers=h)
    assert r.status_code == 403 and r.json()["reason"] == "requires scope analytics:read (or admin:all)"
    schema = (await api.client.get("/schema/openapi.json")).text
    assert "admin:all (or admin:all)" not in schema and "Requires scope: admin:all." in schema


async def test_rate_limit_headers_where_the_readme_says(api: Api) -> None:
    """Routes exempt from the rate limits carry no X-RateLimit-* headers (they have no budget to report); the
    README names them, and every /api/v1 response carries API-Version."""
    readme = " ".join(README.read_text().split())
    sentence = readme[readme.index("every rate-limited one `X-RateLimit-*`") :][:400]
    h = api.auth("admin:all")
    exempt = {"/api/v1/system/health", "/metrics", "/schema/openapi.json", "/", "/dashboard/app.js"}
    for path in sorted(exempt):
        r = await api.client.get(path, headers=h)
        assert r.status_code == 200, (path, r.text)
        assert ("api-version" in r.headers) == path.startswith("/api/v1/"), path
        assert not any(k.lower().startswith("x-ratelimit") for k in r.headers), path
    for named in ("`/api/v1/system/health`", "`/metrics`", "`/schema`", "dashboard", "visualization streams"):
        assert named in sentence, named
    r = await api.client.get("/api/v1/system/status", headers=h)
    assert r.status_code == 200
    assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} <= set(r.headers)
    # every exempt API route is one the README's list covers
    for route in api.app.routes:
        if isinstance(route, HTTPRoute) and route.path.startswith("/api/"):
            for handler in route.route_handlers:
                if handler.opt.get("no_rate_limit"):
                    covered = route.path == "/api/v1/system/health" or route.path.startswith("/api/v1/visualization/")
                    assert covered, route.path
