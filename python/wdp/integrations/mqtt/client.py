"""aiomqtt's client plus two things MQTT 5 tells a publisher that aiomqtt 2.x does not hand to its caller:

* the reason code of each QoS 1 acknowledgement: ``0x10`` ("no matching subscribers") means the broker took
  the message and dropped it because nobody was subscribed to its topic (e.g. the fleet's hubs, whose shared
  subscriptions mosquitto 2.0 restores from its persistence only when they reconnect);
* whether the CONNACK resumed a stored session (``session_present``).

How: aiomqtt registers its own bound methods as paho's callbacks, so overriding ``_on_publish`` and
``_on_connect`` here sees paho's reason codes and connect flags; the message id of a publish is taken from
paho's ``publish`` (wrapped per instance) through a context variable, which stays inside the publishing task.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

import aiomqtt
import paho.mqtt.client as paho

NO_MATCHING_SUBSCRIBERS = 0x10
_MID: ContextVar[int | None] = ContextVar("wdp_mqtt_publish_mid", default=None)


class ReasonClient(aiomqtt.Client):
    """``publish_acked`` returns the acknowledgement's reason code (0: success; MQTT 3.1.1 always 0)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.session_present = False
        self._reasons: dict[int, int] = {}
        paho_publish = self._client.publish

        def publish(*a: Any, **kw: Any) -> paho.MQTTMessageInfo:
            info = paho_publish(*a, **kw)
            _MID.set(info.mid)
            return info

        self._client.publish = publish  # type: ignore[method-assign]

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any = None
    ) -> None:
        self.session_present = bool(getattr(flags, "session_present", False))
        super()._on_connect(client, userdata, flags, reason_code, properties)

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        value = int(getattr(reason_code, "value", 0) or 0)
        if value:
            self._reasons[mid] = value
        super()._on_publish(client, userdata, mid, reason_code, properties)

    async def publish_acked(
        self, topic: str, payload: bytes, *, qos: int, retain: bool, timeout: float | None = None
    ) -> int:
        """Publish and wait for the acknowledgement (QoS 1/2); its reason code, 0 for success."""
        token = _MID.set(None)
        try:
            await self.publish(topic, payload, qos=qos, retain=retain, timeout=timeout)
            mid = _MID.get()
            return 0 if mid is None else self._reasons.pop(mid, 0)
        finally:
            mid = _MID.get()
            if mid is not None:
                self._reasons.pop(mid, None)
            _MID.reset(token)
