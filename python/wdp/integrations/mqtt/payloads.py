"""MQTT payloads (JSON, msgspec): what each topic carries, built from PoseFrames and Events.

The person update carries the full wire ``Person`` (keypoints as [x, y, score]); pose/current carries a
summary (the seed's shape: count plus per-person id, confidence, zones, activity, detected keypoints) so a
dashboard can subscribe to it at frame rate without the keypoint arrays.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from wdp.schemas import EventBase, FrameSource, Person, PoseFrame, event_type

KEYPOINT_DETECTED_SCORE = 0.5  # a keypoint with a score above this counts as detected (seed)


class PersonSummary(msgspec.Struct, kw_only=True, frozen=True):
    track_id: int
    confidence: float
    zone_ids: list[str]
    activity: str | None
    position: tuple[float, float] | None
    keypoints_detected: int


class CurrentPose(msgspec.Struct, kw_only=True, frozen=True):
    """pose/current"""

    timestamp: float
    frame_id: int
    source: FrameSource
    person_count: int
    persons: list[PersonSummary]
    latency_ms: float


class PersonUpdate(msgspec.Struct, kw_only=True, frozen=True):
    """pose/person/{id}/update"""

    timestamp: float
    frame_id: int
    source: FrameSource
    person: Person


class ZoneOccupancy(msgspec.Struct, kw_only=True, frozen=True):
    """pose/zone/{id}/occupancy"""

    timestamp: float
    zone_id: str
    occupancy_count: int
    person_ids: list[int]
    frame_id: int | None = None


Availability = Literal["online", "offline"]


class SystemStatusMessage(msgspec.Struct, kw_only=True, frozen=True):
    """system/status. ``availability`` is what Home Assistant's availability template reads; the last will
    sets it to offline. ``state`` and ``details`` come from the engine (running/stopped, fps, routers...)."""

    availability: Availability
    state: str = "unknown"
    timestamp: float | None = None
    details: dict[str, Any] = {}


class AlertMessage(msgspec.Struct, kw_only=True, frozen=True):
    """system/alerts/{category}. ``event_type`` is also the Home Assistant event entity's event type."""

    category: str
    event_type: str
    severity: str | None
    timestamp: float
    event: EventBase


class CommandResponse(msgspec.Struct, kw_only=True, frozen=True):
    """response/... for one command."""

    command: str  # e.g. "zone.configure", "system.start"
    status: Literal["ok", "error"]
    correlation_id: str | None = None
    timestamp: float = 0.0
    target: str | None = None  # zone id for zone commands
    error: str | None = None
    result: Any = None


def current_pose(frame: PoseFrame) -> CurrentPose:
    return CurrentPose(
        timestamp=frame.timestamp,
        frame_id=frame.frame_id,
        source=frame.source,
        person_count=len(frame.persons),
        persons=[
            PersonSummary(
                track_id=p.track_id,
                confidence=p.confidence,
                zone_ids=p.zone_ids,
                activity=p.activity,
                position=p.position,
                keypoints_detected=sum(1 for kp in p.keypoints if kp[2] > KEYPOINT_DETECTED_SCORE),
            )
            for p in frame.persons
        ],
        latency_ms=frame.latency_ms,
    )


def zone_members(frame: PoseFrame) -> dict[str, list[int]]:
    """zone id -> sorted track ids of the persons in it, for the zones that appear in the frame."""
    members: dict[str, set[int]] = {}
    for person in frame.persons:
        for zone_id in person.zone_ids:
            members.setdefault(zone_id, set()).add(person.track_id)
    return {zone_id: sorted(ids) for zone_id, ids in members.items()}


def alert_category(event: EventBase) -> str | None:
    """The system/alerts/{category} of an event, or None when the event is not an alert:
    alert.high_occupancy -> high_occupancy, ..., person.fall_detected -> fall_detected."""
    name = event_type(event)
    if name.startswith("alert."):
        return name.removeprefix("alert.")
    if name == "person.fall_detected":
        return "fall_detected"
    return None


def alert_message(event: EventBase, category: str) -> AlertMessage:
    return AlertMessage(
        category=category,
        event_type=event_type(event),
        severity=getattr(event, "severity", None),
        timestamp=event.timestamp,
        event=event,
    )
