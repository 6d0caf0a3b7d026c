"""Server (installed as wdp.serve): the Litestar REST + WebSocket API over an EngineView and the Store.

from wdp.serve import create_app, load_settings
app = create_app(load_settings(cfg.api), engine_view=engine, store=store)
"""

from __future__ import annotations

from wdp.serve.app import create_app, create_app_from_config, create_app_from_env
from wdp.serve.engine_view import EngineStatus, EngineView, StoreBackedEngineView
from wdp.serve.settings import InsecureSettingsError, ServeSettings, load_settings

__all__ = [
    "EngineStatus",
    "EngineView",
    "InsecureSettingsError",
    "ServeSettings",
    "StoreBackedEngineView",
    "create_app",
    "create_app_from_config",
    "create_app_from_env",
    "load_settings",
]
