"""REST controllers, one class per resource group of /api/v1 (plus /metrics)."""

from __future__ import annotations

from wdp.serve.controllers.analytics import AnalyticsController
from wdp.serve.controllers.auth import AuthController
from wdp.serve.controllers.config import ConfigController
from wdp.serve.controllers.metrics import MetricsController
from wdp.serve.controllers.pose import PoseController
from wdp.serve.controllers.sensing import SensingController
from wdp.serve.controllers.system import SystemController
from wdp.serve.controllers.webhooks import WebhookController

CONTROLLERS = (
    PoseController,
    SensingController,
    SystemController,
    AnalyticsController,
    ConfigController,
    AuthController,
    WebhookController,
    MetricsController,
)

__all__ = [
    "CONTROLLERS",
    "AnalyticsController",
    "AuthController",
    "ConfigController",
    "MetricsController",
    "PoseController",
    "SensingController",
    "SystemController",
    "WebhookController",
]
