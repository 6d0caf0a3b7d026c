"""``DashboardPlugin``: the page at /, its assets under /dashboard/, the visualization routes, and the
lifespan of the visualization stream. Added by ``create_app`` when ``dashboard.enabled`` or
``visualization.enabled``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.di import Provide
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
                    path="/dashboard",
                    directories=[STATIC_DIR],
                    opt=dict(STREAM_OPT),
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
