"""``uvicorn probe_engine_app:create_probe_engine_app --factory``: what `wdp serve` runs (the live engine on a
composed serve config, the history store, webhooks and the API) under plain uvicorn, so a test can keep the
access log on. The serve-config overrides come as a JSON list in WDP_PROBE_OVERRIDES."""

from __future__ import annotations

import json
import os
from typing import Any

from wdp.engine.config import compose_serve_config
from wdp.serve.engine_adapter import create_engine_app


def create_probe_engine_app() -> Any:
    overrides = json.loads(os.environ.get("WDP_PROBE_OVERRIDES", "[]"))
    return create_engine_app(compose_serve_config(overrides))
