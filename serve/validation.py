"""Semantic checks of configuration bodies beyond their Struct types (wdp.schemas bounds lengths and numbers at
decode time; ids, display strings and polygons are checked by wdp.config_checks, the rule MQTT commands use
too). Each raises a 422 naming the field."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from typing import Any

from wdp import config_checks
from wdp.config_checks import ConfigError
from wdp.schemas import EVENT_NAMES, AlertRule, RetryPolicy, Router, Zone
from wdp.serve.errors import unprocessable

ID_PATTERN = config_checks.ID_PATTERN
ROUTER_KINDS = ("esp32", "nexmon", "intel5300", "atheros", "picoscenes", "simulator", "replay")
MAX_DESCRIPTION_CHARS = 2000


def _as_422(check: Callable[..., None], *args: Any, **kwargs: Any) -> None:
    try:
        check(*args, **kwargs)
    except ConfigError as exc:
        raise unprocessable(str(exc), field=exc.field) from None


def check_id(value: str, field: str = "id") -> None:
    _as_422(config_checks.check_id, value, field)


def check_name(value: str, field: str = "name") -> None:
    _as_422(config_checks.check_name, value, field)


def check_description(value: str, field: str = "description") -> None:
    _as_422(config_checks.check_text, value, field, max_chars=MAX_DESCRIPTION_CHARS)


def _finite_nonneg(value: float, field: str) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise unprocessable(f"{field} must be a finite number >= 0", field=field)


def check_zone(zone: Zone) -> None:
    """The same rule the MQTT zone command applies (wdp.config_checks.check_zone), as a 422."""
    _as_422(config_checks.check_zone, zone)


def check_router(router: Router) -> None:
    _as_422(config_checks.check_router_fields, router)
    if router.kind not in ROUTER_KINDS:
        raise unprocessable(f"kind must be one of {', '.join(ROUTER_KINDS)}", field="kind")
    if len(router.host) > 255:
        raise unprocessable("host is too long", field="host")
    if not 0 <= router.port <= 65535:
        raise unprocessable("port must be 0-65535", field="port")
    _finite_nonneg(router.packet_rate, "packet_rate")
    if not (math.isfinite(router.loss) and 0.0 <= router.loss <= 1.0):
        raise unprocessable("loss must be within 0..1", field="loss")
    if router.last_seen is not None and not math.isfinite(router.last_seen):
        raise unprocessable("last_seen must be finite", field="last_seen")


def check_event_names(names: Collection[str], field: str, *, wildcard: bool) -> None:
    if not names:
        raise unprocessable(f"{field} must not be empty", field=field)
    allowed = set(EVENT_NAMES) | ({"*"} if wildcard else set())
    unknown = sorted(set(names) - allowed)
    if unknown:
        raise unprocessable(f"unknown event types: {', '.join(unknown[:5])}", field=field)


def check_alert_rule(rule: AlertRule, zone_ids: Collection[str]) -> None:
    check_id(rule.id)
    check_name(rule.name)
    check_event_names(rule.event_types, "event_types", wildcard=False)
    missing = sorted(set(rule.zone_ids) - set(zone_ids))
    if missing:
        raise unprocessable(f"unknown zones: {', '.join(missing[:5])}", field="zone_ids")
    _finite_nonneg(rule.cooldown_s, "cooldown_s")


def check_retry(retry: RetryPolicy) -> None:
    if not 1 <= retry.max_attempts <= 100:
        raise unprocessable("retry.max_attempts must be 1-100", field="retry.max_attempts")
    if not (math.isfinite(retry.backoff_base_s) and 0 < retry.backoff_base_s <= 3600):
        raise unprocessable("retry.backoff_base_s must be in (0, 3600]", field="retry.backoff_base_s")
    if not (math.isfinite(retry.backoff_max_s) and retry.backoff_base_s <= retry.backoff_max_s <= 86400):
        raise unprocessable("retry.backoff_max_s must be in [backoff_base_s, 86400]", field="retry.backoff_max_s")
    if not all(100 <= s <= 599 for s in retry.retry_on_status):
        raise unprocessable("retry.retry_on_status must hold HTTP status codes", field="retry.retry_on_status")
