"""Webhooks: durable delivery through the store's outbox, HMAC signatures, SSRF guard.
See ``delivery`` for the delivery model and ``signing`` for the receiver-side verification snippet."""

from __future__ import annotations

from wdp.integrations.webhooks.delivery import (
    WebhookDispatcher,
    WebhookSettings,
    WebhookStats,
    parse_retry_after,
)
from wdp.integrations.webhooks.headers import HeaderRefusedError, check_custom_headers
from wdp.integrations.webhooks.signing import sign_payload, verify_signature
from wdp.integrations.webhooks.ssrf import ResolvedTarget, UrlGuard, UrlRefusedError

__all__ = [
    "HeaderRefusedError",
    "ResolvedTarget",
    "UrlGuard",
    "UrlRefusedError",
    "WebhookDispatcher",
    "WebhookSettings",
    "WebhookStats",
    "check_custom_headers",
    "parse_retry_after",
    "sign_payload",
    "verify_signature",
]
