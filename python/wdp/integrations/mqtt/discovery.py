"""Home Assistant MQTT discovery: config messages that make Home Assistant create entities for our topics.

Entities (all on one device, all unavailable while system/status says offline, e.g. after the last will):
    sensor         person_count               from pose/current   value_json.person_count
    binary_sensor  presence (occupancy class) from pose/current   ON when person_count > 0
    sensor         zone_{id}_occupancy        from pose/zone/{id}/occupancy   value_json.occupancy_count
    event          fall                       from system/alerts/fall_detected  (person.fall_detected)

Config topic: ``{discovery_prefix}/{component}/{node_id}/{object_id}/config``, retained. Removing a zone
publishes an empty retained config, which is how Home Assistant deletes the entity.
Reference: https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery
"""

from __future__ import annotations

from typing import Any

from wdp import __version__
from wdp.integrations.mqtt.config import MqttConfig, Topics

FALL_EVENT_TYPE = "person.fall_detected"


def _base(config: MqttConfig, topics: Topics, object_id: str, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "unique_id": f"{config.node_id}_{object_id}",
        "object_id": f"{config.node_id}_{object_id}",
        "availability": [
            {
                "topic": topics.status,
                "value_template": "{{ value_json.availability }}",
                "payload_available": "online",
                "payload_not_available": "offline",
            }
        ],
        "device": {
            "identifiers": [f"wdp_{config.node_id}"],
            "name": config.device_name,
            "manufacturer": "wdp",
            "model": "WiFi CSI pose estimation",
            "sw_version": __version__,
        },
        "origin": {"name": "wdp", "sw_version": __version__},
    }


def config_topic(config: MqttConfig, component: str, object_id: str) -> str:
    return f"{config.discovery_prefix}/{component}/{config.node_id}/{object_id}/config"


def zone_object_id(zone_id: str) -> str:
    return f"zone_{zone_id}_occupancy"


def static_entities(config: MqttConfig, topics: Topics) -> dict[str, dict[str, Any]]:
    """Config topic -> config payload for the entities that do not depend on zones."""
    person_count = _base(config, topics, "person_count", "Person count") | {
        "state_topic": topics.current,
        "value_template": "{{ value_json.person_count }}",
        "state_class": "measurement",
        "unit_of_measurement": "persons",
        "icon": "mdi:account-group",
    }
    presence = _base(config, topics, "presence", "Presence") | {
        "state_topic": topics.current,
        "value_template": "{{ 'ON' if value_json.person_count > 0 else 'OFF' }}",
        "payload_on": "ON",
        "payload_off": "OFF",
        "device_class": "occupancy",
    }
    fall = _base(config, topics, "fall", "Fall detected") | {
        "state_topic": topics.alert("fall_detected"),
        "event_types": [FALL_EVENT_TYPE],
        "icon": "mdi:human-handsdown",
    }
    return {
        config_topic(config, "sensor", "person_count"): person_count,
        config_topic(config, "binary_sensor", "presence"): presence,
        config_topic(config, "event", "fall"): fall,
    }


def zone_entity(config: MqttConfig, topics: Topics, zone_id: str, name: str | None = None) -> tuple[str, dict]:
    object_id = zone_object_id(zone_id)
    payload = _base(config, topics, object_id, f"{name or zone_id} occupancy") | {
        "state_topic": topics.zone_occupancy(zone_id),
        "value_template": "{{ value_json.occupancy_count }}",
        "state_class": "measurement",
        "unit_of_measurement": "persons",
        "icon": "mdi:account-multiple",
    }
    return config_topic(config, "sensor", object_id), payload
