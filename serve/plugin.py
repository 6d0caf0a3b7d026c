"""The one init plugin: registers controllers, the guard, the edge middleware, error handlers, OpenAPI, CORS,
the ``services`` dependency, and the lifespan that opens the store and starts the stream hub."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Schema
from litestar.plugins import InitPluginProtocol

from wdp.serve.controllers import CONTROLLERS
from wdp.serve.demo_feed import run_demo_feed
from wdp.serve.edge import EdgeMiddleware
from wdp.serve.engine_view import StoreBackedEngineView
from wdp.serve.errors import http_exception_handler, internal_error_handler, scope_guard
from wdp.serve.json_request import JsonBodyRequest
from wdp.serve.openapi import document_errors, openapi_config
from wdp.serve.security import ADMIN_ALL
from wdp.serve.services import Services
from wdp.serve.stream.handler import StreamController
from wdp.store import config as store_config

log = logging.getLogger("wdp.serve")


def _export_responses() -> dict[tuple[str, str], dict[str, OpenAPIResponse]]:
    binary = Schema(type=OpenAPIType.STRING, format="binary")  # type: ignore[arg-type]
    return {
        ("/api/v1/analytics/export", "get"): {
            "200": OpenAPIResponse(
                description="The export file (Parquet or CSV by `format`)",
                content={
                    "application/vnd.apache.parquet": OpenAPIMediaType(schema=binary),
                    "text/csv": OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING)),
                },
            )
        }
    }


class WdpApiPlugin(InitPluginProtocol):
    def __init__(self, services: Services, *, owns_store: bool) -> None:
        self.services = services
        self._owns_store = owns_store

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        services = self.services
        settings = services.settings
        app_config.route_handlers.extend([*CONTROLLERS, StreamController])
        app_config.dependencies["services"] = Provide(lambda: services, use_cache=True, sync_to_thread=False)
        app_config.guards.append(scope_guard)
        app_config.request_class = JsonBodyRequest  # JSON bodies: media type and nesting checked once
        app_config.middleware.append(EdgeMiddleware(services))
        app_config.exception_handlers[HTTPException] = http_exception_handler
        app_config.exception_handlers[Exception] = internal_error_handler
        app_config.lifespan.append(self.lifespan)
        app_config.on_startup.append(self._document)
        app_config.openapi_config = openapi_config(settings)
        app_config.debug = settings.dev_mode
        if settings.cors.allow_origins:
            c = settings.cors
            app_config.cors_config = CORSConfig(
                allow_origins=list(c.allow_origins),
                allow_methods=list(c.allow_methods),  # type: ignore[arg-type]
                allow_headers=list(c.allow_headers),
                expose_headers=list(c.expose_headers),
                allow_credentials=c.allow_credentials,
                max_age=c.max_age,
            )
        app_config.state["services"] = services
        return app_config

    def _document(self, app: Litestar) -> None:
        document_errors(app, _export_responses())

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Litestar) -> AsyncIterator[None]:
        s = self.services
        opened = False
        if not s.store.is_open:
            s.store.open()
            opened = True
        feed: asyncio.Task[None] | None = None
        try:
            await self._bootstrap_admin()
            zones = await s.db(store_config.ZONES.list)
            if zones:
                s.engine.set_zones(zones)  # the engine starts with the stored zone set
            await s.hub.start()
            demo = s.settings.demo_feed
            if demo.fps > 0 and isinstance(s.engine, StoreBackedEngineView):
                feed = asyncio.create_task(run_demo_feed(s.engine, demo.fps, demo.persons), name="wdp-demo-feed")
            yield
        finally:
            if feed is not None:
                feed.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await feed
            await s.hub.stop()
            if opened or self._owns_store:
                s.store.close()

    async def _bootstrap_admin(self) -> None:
        auth = self.services.settings.auth
        if not auth.bootstrap_admin_password:
            return
        if await self.services.db(store_config.list_users):
            return
        password_hash = await anyio.to_thread.run_sync(self.services.hasher.hash, auth.bootstrap_admin_password)
        await self.services.db(store_config.put_user, auth.bootstrap_admin, password_hash, [ADMIN_ALL])
        log.info("created bootstrap admin user %r", auth.bootstrap_admin)


def services_of(app: Litestar) -> Any:
    return app.state["services"]
