"""HTTP/2 for REST and GraphQL: the app under hypercorn (api.server=hypercorn) on 127.0.0.1, driven by httpx's
HTTP/2 client, cleartext (h2c by prior knowledge) and over TLS (h2 by ALPN); the WebSocket still works
(HTTP/1.1 upgrade) on the same server; uvicorn stays HTTP/1.1."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_support import T0, history_frames, make_settings
from live_server import LiveServer, live_server
from tls_certs import make_certs
from websockets.asyncio.client import connect

from wdp.serve import StoreBackedEngineView, create_app
from wdp.store import Store


@pytest.fixture
def store() -> Iterator[Store]:
    with Store(":memory:") as s:
        with s.writer() as w:
            for f in history_frames():
                w.append(f)
        yield s


def _auth(srv: LiveServer) -> dict[str, str]:
    tok = srv.app.state["services"].tokens.issue("alice", ["pose:read", "stream:subscribe"])[0]
    return {"Authorization": f"Bearer {tok}"}


def _rest_and_graphql(client: httpx.Client, base: str, headers: dict[str, str]) -> None:
    r = client.get(f"{base}/api/v1/pose/history", params={"start_time": T0, "end_time": T0 + 5}, headers=headers)
    assert r.http_version == "HTTP/2" and r.status_code == 200 and r.json()["total"] == 50
    assert "x-ratelimit-limit" in r.headers  # the edge middleware ran
    g = client.post(f"{base}/graphql", json={"query": "{ currentPose { frameId } }"}, headers=headers)
    assert g.http_version == "HTTP/2" and g.json()["data"]["currentPose"]["frameId"] == 199
    # many requests multiplexed on the one connection
    for _ in range(20):
        assert client.get(f"{base}/api/v1/pose/current", headers=headers).http_version == "HTTP/2"


def test_hypercorn_h2c(store: Store) -> None:
    app = create_app(make_settings(server="hypercorn"), engine_view=StoreBackedEngineView(store), store=store)
    assert app.state["services"].settings.server == "hypercorn"
    with live_server(app, server="hypercorn") as srv:
        with httpx.Client(http1=False, http2=True, timeout=10) as client:  # prior knowledge: h2 without TLS
            _rest_and_graphql(client, srv.base, _auth(srv))

        async def ws() -> str:
            async with connect(f"{srv.ws}/ws/v1/stream", additional_headers=_auth(srv)) as sock:
                return str(json.loads(await asyncio.wait_for(sock.recv(), 5))["type"])

        assert asyncio.run(ws()) == "connection"


def test_hypercorn_h2_over_tls(store: Store, tmp_path: Path) -> None:
    make_certs(tmp_path)
    ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    app = create_app(make_settings(), engine_view=StoreBackedEngineView(store), store=store)
    tls = {"certfile": str(tmp_path / "server.crt"), "keyfile": str(tmp_path / "server.key"), "verify": ctx}
    with live_server(app, server="hypercorn", **tls) as srv:
        assert srv.base.startswith("https://")
        with httpx.Client(http2=True, verify=ctx, timeout=10) as client:  # h2 chosen by ALPN
            _rest_and_graphql(client, srv.base, _auth(srv))


def test_uvicorn_stays_http1(store: Store) -> None:
    app = create_app(make_settings(), engine_view=StoreBackedEngineView(store), store=store)
    with live_server(app) as srv, httpx.Client(http2=True, timeout=10) as client:
        r = client.get(f"{srv.base}/api/v1/pose/current", headers=_auth(srv))
        assert r.status_code == 200 and r.http_version == "HTTP/1.1"  # httpx falls back: no h2 on uvicorn


SIGTERM_CHILD = """
import asyncio, sys
from wdp.serve import StoreBackedEngineView, create_app, load_settings
from wdp.serve.asgi_server import serve
from wdp.store import Store

class Marker:  # a plugin whose lifespan exit proves the app shut down (the engine would flush there)
    def on_app_init(self, app_config):
        import contextlib
        @contextlib.asynccontextmanager
        async def lifespan(app):
            print("started", flush=True)
            yield
            print("lifespan exited", flush=True)
        app_config.lifespan.append(lifespan)
        return app_config

store = Store(":memory:")
settings = load_settings({"auth": {"jwt": {"secret": "x" * 40}}}, env={})
app = create_app(settings, engine_view=StoreBackedEngineView(store), store=store, plugins=[Marker()])
asyncio.run(serve(app, host="127.0.0.1", port=int(sys.argv[1]), server=sys.argv[2], log_level="warning"))
"""


@pytest.mark.parametrize("server", ["hypercorn", "uvicorn"])
def test_sigterm_stops_gracefully(server: str) -> None:
    """SIGTERM ends the server through the app's shutdown (where the engine stops and flushes its history),
    under either server, as `python -m wdp.serve` runs them (uvicorn re-raises the signal after its shutdown:
    exit status -15)."""
    import signal
    import subprocess
    import sys

    from server_process import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", SIGTERM_CHILD, str(port), server], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"started"
        deadline = 50
        while deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/api/v1/system/health", timeout=1.0)
                break
            except httpx.TransportError:
                deadline -= 1
                import time

                time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert b"lifespan exited" in out, err.decode()[-2000:]
    assert proc.returncode in (0, -signal.SIGTERM), err.decode()[-2000:]
