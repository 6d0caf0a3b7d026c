"""A real server for protocol tests: the app served by wdp.serve.asgi_server (uvicorn or hypercorn) on
127.0.0.1 at a port chosen at run time, on an event loop in a thread of its own, so the test drives it with
real clients (httpx, websockets, grpcio) and publishes into its engine view on the server's loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from litestar import Litestar
from server_process import free_port

from wdp.serve.asgi_server import ServerKind, serve


class LiveServer:
    def __init__(self, app: Litestar, port: int, loop: asyncio.AbstractEventLoop, tls: bool = False) -> None:
        self.app = app
        self.port = port
        self.loop = loop
        self.base = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        self.ws = f"{'wss' if tls else 'ws'}://127.0.0.1:{port}"

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` on the server's loop and return its result (a coroutine is awaited)."""

        async def run() -> Any:
            out = fn(*args)
            if asyncio.iscoroutine(out):
                out = await out
            return out

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=10)

    @property
    def grpc_port(self) -> int:
        return int(self.app.state["grpc"].port)


@contextmanager
def live_server(
    app: Litestar,
    server: ServerKind = "uvicorn",
    timeout: float = 20.0,
    certfile: str | None = None,
    keyfile: str | None = None,
    verify: Any = True,
) -> Iterator[LiveServer]:
    """``certfile``/``keyfile``: serve HTTPS (``verify``: what the readiness check trusts, e.g. an SSLContext)."""
    port = free_port()
    ready: concurrent.futures.Future[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = concurrent.futures.Future()
    errors: list[BaseException] = []

    def run() -> None:
        async def main() -> None:
            shutdown = asyncio.Event()
            ready.set_result((asyncio.get_running_loop(), shutdown))
            await serve(
                app,
                host="127.0.0.1",
                port=port,
                server=server,
                log_level="warning",
                shutdown=shutdown,
                certfile=certfile,
                keyfile=keyfile,
            )

        try:
            asyncio.run(main())
        except BaseException as exc:  # surfaced by the fixture
            errors.append(exc)

    thread = threading.Thread(target=run, name=f"live-{server}", daemon=True)
    thread.start()
    loop, shutdown = ready.result(timeout=timeout)
    srv = LiveServer(app, port, loop, tls=certfile is not None)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{srv.base}/api/v1/system/health", timeout=1.0, verify=verify).status_code in (200, 503):
                break
        except httpx.TransportError:
            pass
        if errors or not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{server} did not start: {errors!r}")
        time.sleep(0.05)
    try:
        yield srv
    finally:
        loop.call_soon_threadsafe(shutdown.set)
        thread.join(timeout=15)
        assert not thread.is_alive(), f"{server} did not stop"
