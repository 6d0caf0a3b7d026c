"""Home Assistant MQTT discovery: config messages that make Home Assistant create entities for our topics.

Entities (all on one device, all unavailable while system/status says offline, e.g. after the last will):
    sensor         person_count               from pose/current   value_json.person_count
    binary_sensor  presence (occupancy class) from pose/current   ON when person_count > 0
    sensor         zone_{id}_occupancy        from pose/zone/{id}/occupancy   value_json.occupancy_count
    event          fall                       from system/alerts/fall_detected  (person.fall_detected)
    sensor         engine_state (diagnostic)  from system/status       value_json.state (running, stopped...)

Per router (announced with its first sensing state) and per zone (configured, or with its first sensing state),
from sensing/{router|zone}/{id}/state, object ids ``sensing_{router|zone}_{id}_...``:
    binary_sensor  ..._motion         (motion class)     ON while value_json.motion
    binary_sensor  ..._presence       (occupancy class)  ON while value_json.presence (still people included)
    sensor         ..._breathing_rate breaths/min        value_json.breathing_bpm (unknown when none is measured)
    sensor         ..._motion_score   (measurement)      value_json.motion_score (1 = calibrated quiet level)
While a link is still calibrating, the templates render "None", which Home Assistant shows as unknown (the
state then says motion and presence False only because nothing can be told yet). ``expire_after`` makes them
unavailable when no state arrived for ``sensing_expire_after_s`` (engine stopped, router silent).

Config topic: ``{discovery_prefix}/{component}/{node_id}/{object_id}/config``, retained. Removing a zone
publishes an empty retained config, which is how Home Assistant deletes the entity; ``zone_of_config_topic``
tells which zone a retained config belongs to, so configs of zones deleted while wdp was not running are cleared
at the next connect.
Reference: https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery
"""

from __future__ import annotations

import re
from typing import Any, Literal

from wdp import __version__
from wdp.integrations.mqtt.config import MqttConfig, SensingKind, Topics

FALL_EVENT_TYPE = "person.fall_detected"
BREATHING_UNIT = "breaths/min"
SENSING_ENTITIES: tuple[tuple[str, str], ...] = (  # (component, object id suffix)
    ("binary_sensor", "motion"),
    ("binary_sensor", "presence"),
    ("sensor", "breathing_rate"),
    ("sensor", "motion_score"),
)
_CALIBRATING = "value_json.calibration == 'calibrating'"
_ZONE_OBJECT = re.compile(r"^zone_(?P<zone>.+)_occupancy$")
_SENSING_ZONE_OBJECT = re.compile(rf"^sensing_zone_(?P<zone>.+)_(?:{'|'.join(w for _, w in SENSING_ENTITIES)})$")


def _guarded(template: str) -> str:
    """A value template that renders nothing for a payload that is not JSON (Home Assistant then ignores the
    message instead of logging a template error): the empty retained message that clears a deleted zone's state
    can reach Home Assistant before the empty config that deletes its entity."""
    return "{% if value_json is defined %}" + template + "{% endif %}"


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
        "value_template": _guarded("{{ value_json.person_count }}"),
        "state_class": "measurement",
        "unit_of_measurement": "persons",
        "icon": "mdi:account-group",
    }
    presence = _base(config, topics, "presence", "Presence") | {
        "state_topic": topics.current,
        "value_template": _guarded("{{ 'ON' if value_json.person_count > 0 else 'OFF' }}"),
        "payload_on": "ON",
        "payload_off": "OFF",
        "device_class": "occupancy",
    }
    engine_state = _base(config, topics, "engine_state", "Engine state") | {
        "state_topic": topics.status,
        "value_template": _guarded("{{ value_json.state }}"),
        "entity_category": "diagnostic",
        "icon": "mdi:state-machine",
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
        config_topic(config, "sensor", "engine_state"): engine_state,
    }


def zone_of_config_topic(config: MqttConfig, topic: str) -> tuple[Literal["occupancy", "sensing"], str] | None:
    """("occupancy" | "sensing", zone topic level) when ``topic`` is a discovery config topic of this node for a
    zone's occupancy sensor or one of its sensing entities; else None."""
    head = f"{config.discovery_prefix}/"
    if not topic.startswith(head) or not topic.endswith("/config"):
        return None
    parts = topic[len(head) : -len("/config")].split("/")
    if len(parts) != 3 or parts[1] != config.node_id:
        return None
    if match := _ZONE_OBJECT.match(parts[2]):
        return "occupancy", match["zone"]
    if match := _SENSING_ZONE_OBJECT.match(parts[2]):
        return "sensing", match["zone"]
    return None


def zone_entity(config: MqttConfig, topics: Topics, zone_id: str, name: str | None = None) -> tuple[str, dict]:
    object_id = zone_object_id(zone_id)
    payload = _base(config, topics, object_id, f"{name or zone_id} occupancy") | {
        "state_topic": topics.zone_occupancy(zone_id),
        "value_template": _guarded("{{ value_json.occupancy_count }}"),
        "state_class": "measurement",
        "unit_of_measurement": "persons",
        "icon": "mdi:account-multiple",
    }
    return config_topic(config, "sensor", object_id), payload


def sensing_object_id(kind: SensingKind, segment: str, what: str) -> str:
    return f"sensing_{kind}_{segment}_{what}"


def sensing_config_topics(config: MqttConfig, kind: SensingKind, segment: str) -> list[str]:
    return [config_topic(config, c, sensing_object_id(kind, segment, w)) for c, w in SENSING_ENTITIES]


def sensing_entities(
    config: MqttConfig, topics: Topics, kind: SensingKind, segment: str, label: str
) -> dict[str, dict[str, Any]]:
    """Config topic -> config payload for the four sensing entities of one router or zone (``segment``: its id
    as a topic level; ``label``: how entity names call it, e.g. "Router sim-0" or "Kitchen")."""
    state_topic = topics.sensing(kind, segment)
    common: dict[str, Any] = {"state_topic": state_topic}
    if config.sensing_expire_after_s > 0:
        common["expire_after"] = config.sensing_expire_after_s

    def base(what: str, name: str) -> dict[str, Any]:
        return _base(config, topics, sensing_object_id(kind, segment, what), f"{label} {name}") | common

    def on_off(field: str) -> str:
        return _guarded(f"{{{{ 'None' if {_CALIBRATING} else ('ON' if value_json.{field} else 'OFF') }}}}")

    payloads = {
        "motion": base("motion", "motion")
        | {"value_template": on_off("motion"), "payload_on": "ON", "payload_off": "OFF", "device_class": "motion"},
        "presence": base("presence", "presence")
        | {
            "value_template": on_off("presence"),
            "payload_on": "ON",
            "payload_off": "OFF",
            "device_class": "occupancy",
        },
        "breathing_rate": base("breathing_rate", "breathing rate")
        | {
            "value_template": _guarded(
                "{{ value_json.breathing_bpm if value_json.breathing_bpm is not none else 'None' }}"
            ),
            "unit_of_measurement": BREATHING_UNIT,
            "state_class": "measurement",
            "suggested_display_precision": 1,
            "icon": "mdi:lungs",
        },
        "motion_score": base("motion_score", "motion score")
        | {
            "value_template": _guarded(f"{{{{ 'None' if {_CALIBRATING} else value_json.motion_score }}}}"),
            "state_class": "measurement",
            "suggested_display_precision": 2,
            "icon": "mdi:motion-sensor",
        },
    }
    return {
        config_topic(config, component, sensing_object_id(kind, segment, what)): payloads[what]
        for component, what in SENSING_ENTITIES
    }
