"""Custom headers a webhook subscription may add to its deliveries.

Names must be RFC 9110/7230 tokens; values printable ASCII (space and tab allowed inside, none at the ends),
so no CR/LF can split a header and no byte needs an encoding the receiver might read differently. The headers
the delivery itself sets (signature, timestamp, event type, delivery id and attempt, framing headers) are
reserved: a subscription cannot forge or override them. Count and sizes are bounded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from wdp.integrations.webhooks.signing import (
    ATTEMPT_HEADER,
    DELIVERY_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
)

MAX_HEADERS = 32
MAX_NAME_CHARS = 64
MAX_VALUE_CHARS = 1024
MAX_TOTAL_BYTES = 8192  # names + values of all custom headers together

RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        SIGNATURE_HEADER,
        TIMESTAMP_HEADER,
        EVENT_TYPE_HEADER,
        DELIVERY_ID_HEADER,
        ATTEMPT_HEADER,
        "Content-Type",
        "Content-Length",
        "Content-Encoding",
        "Transfer-Encoding",
        "Host",
        "User-Agent",
        "Connection",
        "Keep-Alive",
        "Upgrade",
        "TE",
        "Trailer",
        "Expect",
        "Proxy-Authorization",
        "Proxy-Connection",
    )
)
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_VALUE = re.compile(r"^(?:[\x21-\x7e](?:[\x20\x09\x21-\x7e]*[\x21-\x7e])?)?$")


class HeaderRefusedError(ValueError):
    """A custom header a subscription may not set."""


def _problem(name: object, value: object) -> str | None:
    if not isinstance(name, str) or not isinstance(value, str):
        return "header names and values must be strings"
    if not 1 <= len(name) <= MAX_NAME_CHARS or not _TOKEN.match(name):
        return f"header name {name[:MAX_NAME_CHARS]!r} is not an HTTP token of 1-{MAX_NAME_CHARS} characters"
    lowered = name.lower()
    if lowered in RESERVED_HEADERS or lowered.startswith("proxy-"):
        return f"header {name!r} is set by the delivery and may not be overridden"
    if len(value) > MAX_VALUE_CHARS:
        return f"header {name!r}: value longer than {MAX_VALUE_CHARS} characters"
    if not _VALUE.match(value):
        return (
            f"header {name!r}: value must be printable ASCII without control characters (CR, LF, NUL, ...) "
            "or leading/trailing whitespace"
        )
    return None


def check_custom_headers(headers: Mapping[str, str]) -> None:
    """Raise HeaderRefusedError (with the reason) unless every header is fit to send (the API's check)."""
    if len(headers) > MAX_HEADERS:
        raise HeaderRefusedError(f"at most {MAX_HEADERS} custom headers")
    seen: set[str] = set()
    total = 0
    for name, value in headers.items():
        problem = _problem(name, value)
        if problem is not None:
            raise HeaderRefusedError(problem)
        if name.lower() in seen:
            raise HeaderRefusedError(f"header {name!r} is given twice (names are case-insensitive)")
        seen.add(name.lower())
        total += len(name) + len(value)
    if total > MAX_TOTAL_BYTES:
        raise HeaderRefusedError(f"custom headers exceed {MAX_TOTAL_BYTES} bytes in all")


def sendable_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The custom headers a delivery sends: those that pass the API's check. A subscription stored before the
    check existed (or written to the store directly) loses the others rather than splitting a request or
    shadowing a reserved header under another letter case."""
    return {k: v for k, v in list(headers.items())[:MAX_HEADERS] if _problem(k, v) is None}
