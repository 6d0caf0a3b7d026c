"""MQTT integration: publisher with the seed's topic tree, command subscriber, Home Assistant discovery.
See ``wdp.integrations.mqtt.bridge`` for the delivery model and ``config`` for the topic table."""

from __future__ import annotations

from wdp.integrations.mqtt.bridge import MqttBridge, MqttStats
from wdp.integrations.mqtt.commands import CommandHandlers, CommandProcessor, ZonePatch
from wdp.integrations.mqtt.config import MqttConfig, TlsConfig, Topics

__all__ = [
    "CommandHandlers",
    "CommandProcessor",
    "MqttBridge",
    "MqttConfig",
    "MqttStats",
    "TlsConfig",
    "Topics",
    "ZonePatch",
]
