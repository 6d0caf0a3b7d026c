"""Semantic checks of configuration bodies beyond their Struct types (the wire types in wdp.schemas carry no
constraints). Each raises a 422 naming the field."""

from __future__ import annotations

import math
import re
from collections.abc import Collection

from wdp.schemas import EVENT_NAMES, AlertRule, RetryPolicy, Router, Zone
from wdp.serve.errors import unprocessable

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
ROUTER_KINDS = ("esp32", "nexmon", "intel5300", "atheros", "picoscenes", "simulator", "replay")
MAX_VERTICES = 256
MAX_COORD_M = 1e4


def check_id(value: str, field: str = "id") -> None:
    if not ID_PATTERN.match(value):
        raise unprocessable(f"{field} must match {ID_PATTERN.pattern}", field=field)


def check_name(value: str, field: str = "name") -> None:
    if not value.strip() or len(value) > 128:
        raise unprocessable(f"{field} must be 1-128 characters", field=field)


def _finite_nonneg(value: float, field: str) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise unprocessable(f"{field} must be a finite number >= 0", field=field)


def polygon_area(points: list[tuple[float, float]]) -> float:
    s = 0.0
    for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1], strict=True):
        s += x0 * y1 - x1 * y0
    return abs(s) / 2.0


def check_zone(zone: Zone) -> None:
    check_id(zone.id)
    check_name(zone.name)
    pts = list(zone.polygon)
    if len(pts) > 1 and pts[0] == pts[-1]:
        pts = pts[:-1]  # an explicitly closed ring is fine
    if not 3 <= len(pts) <= MAX_VERTICES:
        raise unprocessable(f"polygon needs 3-{MAX_VERTICES} vertices", field="polygon")
    if not all(math.isfinite(c) and abs(c) <= MAX_COORD_M for pt in pts for c in pt):
        raise unprocessable(f"polygon coordinates must be finite metres within +-{MAX_COORD_M:g}", field="polygon")
    if polygon_area(pts) < 1e-6:
        raise unprocessable("polygon has no area", field="polygon")
    if zone.max_occupancy is not None and zone.max_occupancy < 0:
        raise unprocessable("max_occupancy must be >= 0", field="max_occupancy")
    _finite_nonneg(zone.alerts.min_duration_s, "alerts.min_duration_s")
    _finite_nonneg(zone.alerts.cooldown_s, "alerts.cooldown_s")


def check_router(router: Router) -> None:
    check_id(router.id)
    check_name(router.name)
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
