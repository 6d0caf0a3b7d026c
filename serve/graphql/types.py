"""GraphQL object types: the REST/WebSocket payloads (wdp.schemas, serve.api_types) as strawberry types.

``Person`` and ``PoseFrame`` declare the fields of wdp.schemas.Person / PoseFrame under the same names, and
resolvers return those msgspec Structs as they are (strawberry's default resolver reads attributes): a
history page is not copied into a second object tree.

Keypoints are one ``Keypoints`` scalar (``[[x, y, score], ...]``, 17 rows) rather than nested lists of
Float: a frame page is thousands of numbers, and one scalar serializes them in a single step.
"""

from __future__ import annotations

from typing import Any, NewType

import strawberry
from strawberry.scalars import JSON

from wdp import schemas
from wdp.schemas import JSON_ENCODER, EventBase, event_type

Keypoints = NewType("Keypoints", object)
KEYPOINTS_SCALAR = strawberry.scalar(
    name="Keypoints",
    serialize=lambda v: v,
    parse_value=lambda v: v,
    description="17 COCO keypoints as [[x, y, score], ...] in normalized image coordinates",
)
Vector = NewType("Vector", object)
VECTOR_SCALAR = strawberry.scalar(
    name="Vector",
    serialize=lambda v: list(v),
    parse_value=lambda v: v,
    description="A short fixed list of numbers (a box [x0, y0, x1, y1], a floor position [x, y]) as one value",
)
SCALAR_MAP = {Keypoints: KEYPOINTS_SCALAR, Vector: VECTOR_SCALAR}  # the schema's StrawberryConfig.scalar_map


@strawberry.type
class Person:
    track_id: int
    keypoints: Keypoints  # type: ignore[valid-type]
    box: Vector  # type: ignore[valid-type]
    confidence: float
    zone_ids: list[str]
    activity: str | None
    position: Vector | None  # type: ignore[valid-type]


@strawberry.type
class PoseFrame:
    frame_id: int
    timestamp: float
    source: str
    persons: list[Person]
    router_ids: list[str]
    latency_ms: float


@strawberry.type
class PoseHistoryPage:
    frames: list[PoseFrame]
    total: int
    limit: int
    skip: int


@strawberry.type
class TrajectoryPoint:
    timestamp: float
    x: float
    y: float


@strawberry.type
class PersonDetails:
    track_id: int
    first_seen: float
    last_seen: float
    frames: int
    average_confidence: float
    activities: JSON
    current_zone_ids: list[str]
    last_position: list[float] | None
    trajectory: list[TrajectoryPoint] | None


@strawberry.type
class Zone:
    id: str
    name: str
    polygon: list[list[float]]
    max_occupancy: int | None
    restricted: bool

    @staticmethod
    def of(z: schemas.Zone) -> Zone:
        return Zone(
            id=z.id,
            name=z.name,
            polygon=[list(pt) for pt in z.polygon],
            max_occupancy=z.max_occupancy,
            restricted=z.restricted,
        )


@strawberry.input
class ZoneInput:
    id: str
    name: str
    polygon: list[list[float]]
    max_occupancy: int | None = None
    restricted: bool = False


@strawberry.type
class ZoneOccupancy:
    zone_id: str
    name: str
    count: int
    track_ids: list[int]
    max_occupancy: int | None
    over_capacity: bool
    restricted: bool


@strawberry.type
class Event:
    type: str
    event_id: str
    timestamp: float
    track_id: int | None
    zone_id: str | None
    router_id: str | None
    severity: str | None
    data: JSON  # the whole event as REST returns it

    @staticmethod
    def of(e: EventBase) -> Event:
        import msgspec

        return Event(
            type=event_type(e),
            event_id=e.event_id,
            timestamp=e.timestamp,
            track_id=getattr(e, "track_id", None),
            zone_id=getattr(e, "zone_id", None),
            router_id=getattr(e, "router_id", None),
            severity=getattr(e, "severity", None),
            data=msgspec.json.decode(JSON_ENCODER.encode(e)),
        )


@strawberry.type
class SensingState:
    timestamp: float
    router_id: str | None
    zone_id: str | None
    source: str
    motion: bool
    motion_score: float
    presence: bool
    still: bool
    breathing_bpm: float | None
    breathing_confidence: float
    calibration: str
    packet_rate: float

    @staticmethod
    def of(s: schemas.SensingState) -> SensingState:
        return SensingState(
            timestamp=s.timestamp,
            router_id=s.router_id,
            zone_id=s.zone_id,
            source=s.source,
            motion=s.motion,
            motion_score=s.motion_score,
            presence=s.presence,
            still=s.still,
            breathing_bpm=s.breathing_bpm,
            breathing_confidence=s.breathing_confidence,
            calibration=s.calibration,
            packet_rate=s.packet_rate,
        )


@strawberry.type
class Router:
    id: str
    name: str
    kind: str
    host: str
    port: int
    status: str
    packet_rate: float
    loss: float
    last_seen: float | None

    @staticmethod
    def of(r: schemas.Router) -> Router:
        return Router(
            id=r.id,
            name=r.name,
            kind=r.kind,
            host=r.host,
            port=r.port,
            status=r.status,
            packet_rate=r.packet_rate,
            loss=r.loss,
            last_seen=r.last_seen,
        )


@strawberry.type
class SystemStatus:
    status: str
    server_time: float
    uptime_s: float
    running: bool
    source: str | None
    fps: float
    latency_ms_p50: float
    latency_ms_p99: float
    frames_total: int
    frames_dropped: int
    persons: int
    active_routers: int
    total_routers: int
    stream_clients: int
    api_versions: list[str]


@strawberry.type
class ActivityCount:
    activity: str
    person_frames: int
    persons: int


@strawberry.type
class ActivitySummary:
    start: float
    end: float
    zone_id: str | None
    person_frames: int
    activities: list[ActivityCount]


@strawberry.type
class Webhook:
    id: str
    url: str
    events: list[str]
    has_secret: bool
    active: bool


@strawberry.input
class WebhookInput:
    url: str
    events: list[str]
    secret: str | None = None
    active: bool = True


@strawberry.type
class ModelSwapped:
    name: str
    path: str


@strawberry.input
class StreamFilters:
    """The WebSocket's subscribe filters."""

    zone_id: str | None = None
    min_confidence: float | None = None
    person_id: int | None = None
    min_severity: str | None = None
    router_id: str | None = None


def as_dict(x: Any) -> Any:
    import msgspec

    return msgspec.to_builtins(x)
