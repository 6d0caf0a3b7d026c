"""Checks of configuration items beyond what their msgspec types bound (``wdp.schemas``: lengths, numeric
ranges): ids, display strings, zone polygons. One rule for every way a zone or rule arrives (REST, MQTT
commands, templates); each failure is a ``ConfigError`` naming the field, which the API turns into a 422 and
the MQTT command processor into an error response.

Display strings (names, descriptions, hosts) may hold any printable text but no control characters (C0/C1),
format characters (bidi embeddings/overrides/isolates such as U+202E, zero-width characters, BOM),
surrogates, private-use characters or line/paragraph separators: they would reorder or hide text on a
dashboard and in logs. ZWJ/ZWNJ stay allowed (emoji sequences and several scripts need them).
"""

from __future__ import annotations

import math
import re
import unicodedata

from wdp.schemas import (
    MAX_CONFIG_SECONDS,
    MAX_COORD_M,
    MAX_NAME_CHARS,
    MAX_OCCUPANCY,
    MAX_ZONE_VERTICES,
    Router,
    Zone,
)

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_JOINERS = frozenset({"\u200c", "\u200d"})  # ZWNJ, ZWJ


class ConfigError(ValueError):
    """A configuration item that must not be accepted; ``field`` names the offending field."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def refused_character(value: str) -> str | None:
    """The first character of ``value`` not allowed in display text, as ``U+XXXX``, or None."""
    for ch in value:
        if ch in _JOINERS:
            continue
        if unicodedata.category(ch) in _REFUSED_CATEGORIES:
            return f"U+{ord(ch):04X}"
    return None


def check_text(value: str, field: str, *, max_chars: int, allow_empty: bool = True) -> None:
    if not allow_empty and not value.strip():
        raise ConfigError(f"{field} must not be blank", field)
    if len(value) > max_chars:
        raise ConfigError(f"{field} must be at most {max_chars} characters", field)
    bad = refused_character(value)
    if bad is not None:
        raise ConfigError(f"{field} contains a control or bidi/format character ({bad})", field)


def check_id(value: str, field: str = "id") -> None:
    if not ID_PATTERN.match(value):
        raise ConfigError(f"{field} must match {ID_PATTERN.pattern}", field)


def check_name(value: str, field: str = "name") -> None:
    check_text(value, field, max_chars=MAX_NAME_CHARS, allow_empty=False)


def _finite_range(value: float, field: str, lo: float, hi: float) -> None:
    if not (math.isfinite(value) and lo <= value <= hi):
        raise ConfigError(f"{field} must be a finite number within {lo:g}..{hi:g}", field)


def polygon_area(points: list[tuple[float, float]]) -> float:
    s = 0.0
    for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1], strict=True):
        s += x0 * y1 - x1 * y0
    return abs(s) / 2.0


def check_zone(zone: Zone) -> None:
    """Raise ConfigError unless ``zone`` is fit to store and hand to the engine (also for zones built in code,
    which msgspec's decode-time bounds never saw)."""
    check_id(zone.id)
    check_name(zone.name)
    pts = list(zone.polygon)
    if len(pts) > 1 and pts[0] == pts[-1]:
        pts = pts[:-1]  # an explicitly closed ring is fine
    if not 3 <= len(pts) <= MAX_ZONE_VERTICES:
        raise ConfigError(f"polygon needs 3-{MAX_ZONE_VERTICES} vertices", "polygon")
    if not all(len(pt) == 2 and math.isfinite(c) and abs(c) <= MAX_COORD_M for pt in pts for c in pt):
        raise ConfigError(f"polygon coordinates must be finite metres within +-{MAX_COORD_M:g}", "polygon")
    if polygon_area(pts) < 1e-6:
        raise ConfigError("polygon has no area", "polygon")
    if zone.max_occupancy is not None and not 0 <= zone.max_occupancy <= MAX_OCCUPANCY:
        raise ConfigError(f"max_occupancy must be within 0..{MAX_OCCUPANCY}", "max_occupancy")
    for name in ("min_duration_s", "cooldown_s"):
        _finite_range(getattr(zone.alerts, name), f"alerts.{name}", 0.0, MAX_CONFIG_SECONDS)


def check_router_fields(router: Router) -> None:
    check_id(router.id)
    check_name(router.name)
    check_text(router.host, "host", max_chars=255)
    if any(ch.isspace() for ch in router.host):
        raise ConfigError("host must not contain whitespace", "host")
