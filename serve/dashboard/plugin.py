"""``DashboardPlugin``: the page at /, its assets under /dashboard/, the visualization routes, and the
lifespan of the visualization stream. Added by ``create_app`` when ``dashboard.enabled`` or
``visualization.enabled``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.connection import ASGIConnection
from litestar.di import Provide
from litestar.exceptions import NotFoundException
from litestar.handlers.base import BaseRouteHandler
from litestar.plugins import InitPluginProtocol
from litestar.static_files import create_static_files_router

from wdp.serve.dashboard.controller import (
    STATIC_DIR,
    STREAM_OPT,
    DashboardPageController,
    VisualizationController,
)
from wdp.serve.dashboard.visual import Visualization
from wdp.serve.services import Services

STATIC_PREFIX = "/dashboard"
MAX_ASSET_PATH = 255  # the assets are a few short names in one directory


def static_path_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """404 before the file system sees a path no asset can have: control characters (a NUL makes ``os.stat``
    raise), backslashes, ``.``/``..`` or empty segments, overlong names (ENAMETOOLONG). Litestar's static
    files app already keeps resolved paths inside the directory; this keeps odd ones from becoming a 500."""
    path = connection.scope["path"]
    rel = path[len(STATIC_PREFIX) :].lstrip("/") if path.startswith(STATIC_PREFIX) else path
    if rel and (
        len(rel.encode()) > MAX_ASSET_PATH
        or any(ord(c) < 0x20 or ord(c) == 0x7F or c == "\\" for c in rel)
        or any(part in ("", ".", "..") for part in rel.split("/"))
    ):
        raise NotFoundException(detail="no such file")


class DashboardPlugin(InitPluginProtocol):
    def __init__(self, services: Services) -> None:
        self.services = services
        self.visualization = Visualization(services.engine, services.settings.visualization)

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        settings = self.services.settings
        if settings.dashboard.enabled:
            app_config.route_handlers.append(DashboardPageController)
            app_config.route_handlers.append(
                create_static_files_router(
                    path=STATIC_PREFIX,
                    directories=[STATIC_DIR],
                    opt=dict(STREAM_OPT),
                    guards=[static_path_guard],
                    include_in_schema=False,
                    name="dashboard-static",
                    cache_control=None,
                )
            )
        if settings.visualization.enabled:
            app_config.route_handlers.append(VisualizationController)
            visualization = self.visualization
            app_config.dependencies["visualization"] = Provide(
                lambda: visualization, use_cache=True, sync_to_thread=False
            )
            app_config.lifespan.append(self.lifespan)
        app_config.state["visualization"] = self.visualization
        return app_config

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Litestar) -> AsyncIterator[None]:
        await self.visualization.open()
        try:
            yield
        finally:
            await self.visualization.close()
