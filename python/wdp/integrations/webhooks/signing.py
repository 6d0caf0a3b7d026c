"""Webhook signatures: ``X-Signature: sha256=<hex HMAC-SHA256(secret, X-Timestamp + body)>``.

``X-Timestamp`` is integer Unix seconds (ASCII) set per attempt; the MAC covers the timestamp bytes directly
followed by the raw request body (no separator; the body is JSON and starts with ``{``). A receiver checks
the MAC in constant time and rejects timestamps outside a replay window, then deduplicates by
``X-Delivery-ID`` (stable across retries). Verification without wdp installed::

    import hashlib, hmac, time

    def verify(secret: str, headers, body: bytes, tolerance_s: float = 300) -> bool:
        timestamp = headers["X-Timestamp"]
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > tolerance_s:
            return False                      # stale or future: possibly a replay
        mac = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest("sha256=" + mac, headers["X-Signature"])

Verify the exact bytes received, before any JSON parsing or re-serialization.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Signature"
TIMESTAMP_HEADER = "X-Timestamp"
DELIVERY_ID_HEADER = "X-Delivery-ID"
EVENT_TYPE_HEADER = "X-Event-Type"
ATTEMPT_HEADER = "X-Delivery-Attempt"
DEFAULT_TOLERANCE_S = 300.0


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def sign_payload(secret: str | bytes, timestamp: str | int, body: bytes) -> str:
    """The X-Signature value for ``body`` sent with X-Timestamp ``timestamp``."""
    mac = hmac.new(_bytes(secret), str(timestamp).encode("ascii") + body, hashlib.sha256).hexdigest()
    return f"sha256={mac}"


def verify_signature(
    secret: str | bytes,
    timestamp: str | int,
    body: bytes,
    signature: str,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    *,
    now: float | None = None,
) -> bool:
    """True when ``signature`` (the X-Signature header) is the HMAC of ``timestamp + body`` under ``secret``
    and ``timestamp`` (X-Timestamp, integer seconds) is within ``tolerance_s`` of ``now``. Constant-time
    comparison; malformed input is simply False."""
    ts_text = str(timestamp).strip()
    if not ts_text.isascii() or not ts_text.isdigit() or len(ts_text) > 12:
        return False
    current = time.time() if now is None else now
    if abs(current - int(ts_text)) > tolerance_s:
        return False
    if not isinstance(signature, str) or not signature.isascii():
        return False
    expected = sign_payload(secret, ts_text, body)
    return hmac.compare_digest(expected.encode("ascii"), signature.strip().encode("ascii"))
