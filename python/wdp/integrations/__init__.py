"""Integration clients: MQTT (publisher, command subscriber, Home Assistant discovery) and webhooks (durable
outbox delivery, HMAC signatures, SSRF guard).

Both are standalone components: they take PoseFrames and Events through plain method calls (usable as
callbacks) or ``consume(async_iterable)`` and know nothing of the engine that produces them, so the serving
lifespan opens them, injects them, and closes them.

    bridge = MqttBridge(MqttConfig(host="broker", prefix="wdp"), handlers=CommandHandlers(...))
    async with bridge:
        bridge.publish_frame(frame)            # non-blocking; queued while disconnected
        bridge.publish_event(event)

    async with WebhookDispatcher(store) as hooks:
        await hooks.submit([event])            # stored + queued durably before this returns
"""

from __future__ import annotations

from wdp.integrations.mqtt import CommandHandlers, MqttBridge, MqttConfig, MqttStats, TlsConfig
from wdp.integrations.webhooks import (
    UrlGuard,
    UrlRefusedError,
    WebhookDispatcher,
    sign_payload,
    verify_signature,
)

__all__ = [
    "CommandHandlers",
    "MqttBridge",
    "MqttConfig",
    "MqttStats",
    "TlsConfig",
    "UrlGuard",
    "UrlRefusedError",
    "WebhookDispatcher",
    "sign_payload",
    "verify_signature",
]
