"""Wire types shared by every stage: poses, events, configuration.

All are msgspec Structs (kw_only, frozen). Types that arrive from clients (zones, alert rules, webhook
subscriptions, routers) forbid unknown fields so typos fail loudly; types the engine emits (frames, events)
accept unknown fields so payloads stored by a newer version still decode.

House style: one reused Encoder and one typed Decoder per type (see the module-level instances at the end),
e.g. ``EVENT_JSON.decode(raw)`` returns the right Event subclass from its ``"type"`` tag.

Units: ``timestamp`` is float seconds since the Unix epoch (UTC). Keypoints and boxes are in normalized image
coordinates (0..1, as in the seed API); ``position`` is the person's floor position in metres (room frame),
the frame zone polygons and heatmaps use.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Annotated, Literal

import msgspec

from wdp.schemas_sample import COCO_KEYPOINTS, N_KEYPOINTS

KEYPOINT_NAMES: tuple[str, ...] = COCO_KEYPOINTS  # COCO order

# One keypoint is [x, y, score] and a person has the 17 COCO keypoints; lengths are checked on decode.
Keypoint = Annotated[list[float], msgspec.Meta(min_length=3, max_length=3)]
Keypoints = Annotated[list[Keypoint], msgspec.Meta(min_length=N_KEYPOINTS, max_length=N_KEYPOINTS)]
FrameSource = Literal["simulator", "replay", "live"]


def most_simulated(sources: Iterable[FrameSource]) -> FrameSource:
    """What a result made from these inputs is: as simulated as its most simulated input (simulator < replay <
    live), so simulated data is never shown as live."""
    return min(sources, key=_FRAME_SOURCE_ORDER.index)


_FRAME_SOURCE_ORDER: tuple[FrameSource, ...] = ("simulator", "replay", "live")
Severity = Literal["low", "medium", "high", "critical"]


def new_id() -> str:
    """A fresh uuid4 string (event ids, delivery ids, config ids)."""
    return str(uuid.uuid4())


# --------------------------------------------------------------------------------------------- poses


class DensePose(msgspec.Struct, kw_only=True, frozen=True):
    """One person's DensePose output at the model's label-map resolution, compact (see wdp.densepose_codec).

    The label map covers the whole model image (normalized 0..1 on both axes; cell (r, c) is centred on
    ((c + 0.5) / width, (r + 0.5) / height)). ``box`` is the person's crop of it in cells; ``parts`` are the
    crop's part labels (0 background, 1..24 DensePose-COCO parts, names in ``DENSEPOSE_PARTS``) row-major and
    run-length encoded as [label, count, label, count, ...]; ``uv`` holds U then V of every labelled pixel of
    the crop (row-major order), each quantized to uint8 as round(value * 255) (base64 in JSON).
    """

    map_size: tuple[int, int]  # (width, height) of the model's label map, e.g. (64, 64)
    box: tuple[int, int, int, int]  # crop x, y, width, height in map cells
    parts: list[int]
    uv: bytes


class Person(msgspec.Struct, kw_only=True, frozen=True):
    """One tracked person in one frame. ``dense`` is there only when asked for (REST ``?dense=true``, the
    ``dense_poses`` stream topic, the store's dense option): default payloads have no such key."""

    track_id: int
    keypoints: Keypoints  # stored as FLOAT[51] in the history store
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 (normalized image coords)
    confidence: float
    zone_ids: list[str] = []
    activity: str | None = None
    position: tuple[float, float] | None = None  # floor (x, y) in metres; None when not localized
    dense: DensePose | msgspec.UnsetType = msgspec.UNSET  # body parts + UV, on request only (omitted when unset)


class PoseFrame(msgspec.Struct, kw_only=True, frozen=True):
    """All persons estimated from one CSI window."""

    frame_id: int
    timestamp: float
    source: FrameSource  # lets every consumer tell simulated or replayed data from live data
    persons: list[Person] = []
    router_ids: list[str] = []
    latency_ms: float = 0.0  # CSI arrival -> poses published


CalibrationState = Literal["calibrating", "auto", "baseline"]


class SensingState(msgspec.Struct, kw_only=True, frozen=True):
    """Training-free sensing of one link (``router_id``) or one zone (``zone_id``), one per second.

    ``motion_score`` is the link's motion statistic relative to its calibrated quiet level (1 = as quiet as
    calibration; the motion threshold is ``threshold``). ``presence`` includes a person keeping still, found by
    breathing-scale micro-motion; ``breathing_bpm`` is set while a still person breathes (None otherwise, also
    when a still person shows no breathing: apnea). ``calibration``: "calibrating" until the link has a quiet
    reference (states then say motion=False, presence=False), "auto" (the quietest stretch the detector found),
    "baseline" (an installer's quiet recording)."""

    timestamp: float
    router_id: str | None = None
    zone_id: str | None = None
    source: FrameSource = "live"
    motion: bool
    motion_score: float
    threshold: float = 0.0
    presence: bool
    still: bool = False
    breathing_bpm: float | None = None
    breathing_confidence: float = 0.0
    calibration: CalibrationState = "calibrating"
    packet_rate: float = 0.0


class SensingLinkStatus(msgspec.Struct, kw_only=True, frozen=True):
    """Health of one router's sensing link (REST system/routers and sensing/routers/{id}): its calibration
    and the input problems the detector absorbed. ``shape_changes`` (the router changed its bandwidth or
    antennas: calibration restarted), ``time_jumps`` (timestamps went back or left a gap: windows
    restarted) and ``bad_frames`` (empty or non-finite frames, skipped) say a link is unwell before its
    states do; ``source`` holds the counters the router's source reports about itself (serial port,
    followed file: reconnects, lines skipped, last error), empty when it reports none."""

    router_id: str
    calibration: CalibrationState = "calibrating"
    packets: int = 0
    bad_frames: int = 0
    shape_changes: int = 0
    time_jumps: int = 0
    recalibrations: int = 0
    features: int = 0  # live amplitude features the detector uses
    shape: list[int] = []  # (subcarriers, rx, tx) of the frames it reads
    zone_ids: list[str] = []  # zones (sensing.zones) the router is placed in
    last_state_at: float | None = None  # timestamp of its latest SensingState
    notes: list[str] = []  # the last few things that happened (recalibrations, shape changes)
    source: dict[str, str | int | float | bool | None] = {}


class ActivityLinkStatus(msgspec.Struct, kw_only=True, frozen=True):
    """The activity/fall model on one router's stream (wdp.engine.activity_stage): which model runs there,
    or why none does (``state`` "off" with ``reason``: no shipped model matches the router's frame shape,
    the configured one expects another shape), and the input it skipped."""

    router_id: str
    state: Literal["deciding", "on", "off"] = "deciding"  # deciding: too few frames yet to know the shape
    reason: str | None = None  # why "off"
    model: str | None = None  # the model directory
    shape: list[int] = []  # (subcarriers, rx, tx) the router sends
    packets: int = 0
    bad_frames: int = 0  # empty, non-finite, or timestamps going back: skipped
    other_shape: int = 0  # frames of another shape than the router's: skipped
    other_sender: int = 0  # frames of another transmitter than the router's (``mac``): skipped
    mac: str | None = None  # the transmitter it reads (the router's dominant one), when the source says
    gaps: int = 0  # gaps longer than the window's slack: the window restarted
    windows: int = 0  # windows classified
    windows_dropped: int = 0  # windows dropped because inference lagged (bounded queue, oldest first)
    errors: int = 0  # windows the model failed on (see the server log)
    last_window_at: float | None = None
    activity: str | None = None  # the latest window's most likely activity
    p_fall: float | None = None  # ... and its fall probability


# --------------------------------------------------------------------------------------------- config


# Bounds of the configuration types, checked by msgspec whenever one is decoded (REST bodies, MQTT commands,
# templates, config files). What a type cannot say (finite coordinates in a ring with an area, no control or
# bidi characters in display strings, ids as topic/URL-safe names) is checked by ``wdp.config_checks``.
MAX_ZONE_VERTICES = 256
MAX_COORD_M = 1e4  # floor coordinates, metres
MAX_OCCUPANCY = 10_000
MAX_CONFIG_SECONDS = 366 * 86400.0  # durations and cooldowns
MAX_NAME_CHARS = 128
MAX_ID_CHARS = 64
MAX_CONFIG_ITEMS = 256  # zones per rule or template, rules and routers per template

ConfigId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)]
DisplayName = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME_CHARS)]
Coordinate = Annotated[float, msgspec.Meta(ge=-MAX_COORD_M, le=MAX_COORD_M)]
FloorPoint = tuple[Coordinate, Coordinate]
# +1: an explicitly closed ring repeats its first vertex
Polygon = Annotated[list[FloorPoint], msgspec.Meta(min_length=3, max_length=MAX_ZONE_VERTICES + 1)]
Occupancy = Annotated[int, msgspec.Meta(ge=0, le=MAX_OCCUPANCY)]
ConfigSeconds = Annotated[float, msgspec.Meta(ge=0.0, le=MAX_CONFIG_SECONDS)]


class ZoneAlertSettings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    high_occupancy: bool = True  # alert.high_occupancy when count > max_occupancy
    restricted_breach: bool = True  # alert.restricted_zone_breach when restricted and entered
    fall: bool = True  # person.fall_detected raises an alert in this zone
    min_duration_s: ConfigSeconds = 0.0  # condition must hold this long before alerting
    cooldown_s: ConfigSeconds = 60.0  # no repeat alert of the same kind within this time


class Zone(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    id: ConfigId
    name: DisplayName
    polygon: Polygon  # floor coordinates in metres, any orientation, implicitly closed
    max_occupancy: Occupancy | None = None
    restricted: bool = False
    alerts: ZoneAlertSettings = ZoneAlertSettings()


RouterStatus = Literal["connected", "disconnected", "error", "unknown"]


class Router(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    id: ConfigId
    name: DisplayName
    kind: Annotated[str, msgspec.Meta(max_length=32)]  # csi source format: esp32, nexmon, intel5300, ...
    host: Annotated[str, msgspec.Meta(max_length=255)] = ""
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0
    status: RouterStatus = "unknown"
    packet_rate: Annotated[float, msgspec.Meta(ge=0.0, le=1e7)] = 0.0  # packets/s over the last stats window
    loss: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.0  # fraction of packets lost (0..1)
    last_seen: Annotated[float, msgspec.Meta(ge=0.0, le=1e11)] | None = None


class AlertRule(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Which events raise alerts, where, and how often."""

    id: ConfigId
    name: DisplayName
    # e.g. ["person.fall_detected", "alert.high_occupancy"]
    event_types: Annotated[list[Annotated[str, msgspec.Meta(max_length=64)]], msgspec.Meta(max_length=64)]
    zone_ids: Annotated[list[ConfigId], msgspec.Meta(max_length=MAX_CONFIG_ITEMS)] = []  # empty: every zone
    min_severity: Severity = "low"
    cooldown_s: ConfigSeconds = 60.0
    channels: Annotated[list[Literal["webhook", "mqtt", "websocket"]], msgspec.Meta(max_length=3)] = msgspec.field(
        default_factory=lambda: ["webhook", "mqtt", "websocket"]
    )
    enabled: bool = True


class RetryPolicy(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    max_attempts: int = 5
    backoff_base_s: float = 1.0  # delay before retry n (1-based) is base * 2**(n-1), capped
    backoff_max_s: float = 300.0
    # plus network errors / timeouts, which always retry
    retry_on_status: list[int] = msgspec.field(default_factory=lambda: [408, 425, 429, 500, 502, 503, 504])

    def delay_s(self, attempt: int) -> float:
        """Delay after failed attempt number ``attempt`` (1-based)."""
        return min(self.backoff_max_s, self.backoff_base_s * 2.0 ** max(0, attempt - 1))


class WebhookSubscription(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    id: str
    url: str
    events: list[str]  # event type names; "*" matches every event
    secret: str | None = None  # HMAC key for X-Signature
    headers: dict[str, str] = {}
    retry: RetryPolicy = RetryPolicy()
    active: bool = True

    def wants(self, event_type: str) -> bool:
        return self.active and ("*" in self.events or event_type in self.events)


# --------------------------------------------------------------------------------------------- events


class EventBase(msgspec.Struct, kw_only=True, frozen=True, tag_field="type"):
    """Every event: a uuid, a UTC timestamp (float seconds) and a ``type`` tag with the seed's name."""

    timestamp: float
    event_id: str = msgspec.field(default_factory=new_id)


class PersonDetected(EventBase, tag="person.detected"):
    track_id: int
    confidence: float
    zone_id: str | None = None
    position: tuple[float, float] | None = None


class PersonLost(EventBase, tag="person.lost"):
    track_id: int
    duration_s: float  # first seen -> last seen
    zone_id: str | None = None
    position: tuple[float, float] | None = None


class PersonEnteredZone(EventBase, tag="person.entered_zone"):
    track_id: int
    zone_id: str
    position: tuple[float, float] | None = None


class PersonLeftZone(EventBase, tag="person.left_zone"):
    track_id: int
    zone_id: str
    dwell_s: float
    position: tuple[float, float] | None = None


# Activity and fall events come from one of two detectors: "keypoints" (the heuristic on a tracked person's
# keypoints, wdp.analytics: ``track_id`` set) or "model" (the activity/fall model on one router's CSI stream,
# wdp.engine.activity_stage: ``router_id`` set, no track). Payloads without ``detector`` are the heuristic's.
ActivityDetector = Literal["keypoints", "model"]


class PersonFallDetected(EventBase, tag="person.fall_detected", kw_only=True):
    track_id: int | None = None  # None: the model's (per router, no track)
    confidence: float
    severity: Severity
    zone_id: str | None = None
    position: tuple[float, float] | None = None
    alert_triggered: bool = False
    detector: ActivityDetector = "keypoints"
    router_id: str | None = None


class PersonActivityDetected(EventBase, tag="person.activity_detected", kw_only=True):
    track_id: int | None = None  # None: the model's (per router, no track)
    activity: str
    confidence: float
    zone_id: str | None = None
    detector: ActivityDetector = "keypoints"
    router_id: str | None = None


class SystemStarted(EventBase, tag="system.started"):
    version: str
    source: FrameSource


class SystemStopped(EventBase, tag="system.stopped"):
    reason: str = ""
    uptime_s: float = 0.0


class RouterConnected(EventBase, tag="router.connected"):
    router_id: str
    host: str = ""


class RouterDisconnected(EventBase, tag="router.disconnected"):
    router_id: str
    reason: str = ""


class AlertHighOccupancy(EventBase, tag="alert.high_occupancy"):
    zone_id: str
    current_occupancy: int
    max_occupancy: int
    duration_seconds: float
    severity: Severity = "medium"


class AlertRestrictedZoneBreach(EventBase, tag="alert.restricted_zone_breach"):
    zone_id: str
    track_id: int
    position: tuple[float, float] | None = None
    severity: Severity = "high"


class AlertSystemError(EventBase, tag="alert.system_error"):
    component: str
    message: str
    severity: Severity = "high"


class AlertPerformanceDegraded(EventBase, tag="alert.performance_degraded"):
    metric: str  # e.g. "fps", "latency_ms", "packet_loss"
    value: float
    threshold: float
    severity: Severity = "medium"


class AnalyticsReportGenerated(EventBase, tag="analytics.report_generated"):
    report_id: str
    period_start: float
    period_end: float
    summary: dict[str, float] = {}


class AnalyticsThresholdExceeded(EventBase, tag="analytics.threshold_exceeded"):
    metric: str
    value: float
    threshold: float
    zone_id: str | None = None
    severity: Severity = "medium"


# Training-free sensing per link (wdp.sensing): motion, presence, breathing. ``router_id`` names the link;
# ``zone_id`` is set when the state or event is a zone's (the OR of the routers placed in it).
class MotionStarted(EventBase, tag="motion.started"):
    motion_score: float
    router_id: str | None = None
    zone_id: str | None = None


class MotionStopped(EventBase, tag="motion.stopped"):
    duration_s: float  # motion.started -> motion.stopped
    router_id: str | None = None
    zone_id: str | None = None


class PresenceChanged(EventBase, tag="presence.changed"):
    presence: bool
    router_id: str | None = None
    zone_id: str | None = None
    still: bool = False  # present and not moving (found by breathing-scale micro-motion)


class BreathingUpdated(EventBase, tag="breathing.updated"):
    breathing_bpm: float | None  # None: a still person but no breathing detected (e.g. apnea)
    confidence: float
    router_id: str | None = None
    zone_id: str | None = None


Event = (
    PersonDetected
    | PersonLost
    | PersonEnteredZone
    | PersonLeftZone
    | PersonFallDetected
    | PersonActivityDetected
    | SystemStarted
    | SystemStopped
    | RouterConnected
    | RouterDisconnected
    | AlertHighOccupancy
    | AlertRestrictedZoneBreach
    | AlertSystemError
    | AlertPerformanceDegraded
    | AnalyticsReportGenerated
    | AnalyticsThresholdExceeded
    | MotionStarted
    | MotionStopped
    | PresenceChanged
    | BreathingUpdated
)
EVENT_TYPES: tuple[type[EventBase], ...] = Event.__args__  # type: ignore[attr-defined]
EVENT_NAMES: tuple[str, ...] = tuple(t.__struct_config__.tag for t in EVENT_TYPES)


def event_type(event: EventBase) -> str:
    """The wire name of an event, e.g. ``"person.fall_detected"``."""
    return type(event).__struct_config__.tag  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------- codecs
# One reused encoder (msgspec encoders are type-agnostic) and one typed decoder per type.

JSON_ENCODER = msgspec.json.Encoder()
POSE_FRAME_JSON = msgspec.json.Decoder(PoseFrame)
SENSING_STATE_JSON = msgspec.json.Decoder(SensingState)
PERSON_JSON = msgspec.json.Decoder(Person)
EVENT_JSON = msgspec.json.Decoder(Event)
ZONE_JSON = msgspec.json.Decoder(Zone)
ROUTER_JSON = msgspec.json.Decoder(Router)
ALERT_RULE_JSON = msgspec.json.Decoder(AlertRule)
WEBHOOK_JSON = msgspec.json.Decoder(WebhookSubscription)


# --------------------------------------------------------------------------------------------- history API


class PersonSummary(msgspec.Struct, kw_only=True, frozen=True):
    """What the history knows about one track (REST pose/persons/{id})."""

    track_id: int
    first_seen: float
    last_seen: float
    frames: int
    average_confidence: float
    activities: dict[str, int]  # activity -> frames in which it was reported
    current_zone_ids: list[str]  # zones at last_seen
    last_position: tuple[float, float] | None


class TrajectoryPoint(msgspec.Struct, kw_only=True, frozen=True, array_like=True):
    """(timestamp, x, y) floor position in metres; array_like keeps long trajectories compact on the wire."""

    timestamp: float
    x: float
    y: float


class FloorGrid(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """Heatmap grid: cell (ix, iy) covers [x0 + ix*cell_m, x0 + (ix+1)*cell_m) and likewise in y."""

    x0: float
    y0: float
    cell_m: float
    nx: int
    ny: int


class Heatmap(msgspec.Struct, kw_only=True, frozen=True):
    grid: FloorGrid
    start: float
    end: float
    counts: list[list[int]]  # [iy][ix] person-frames per cell


class OccupancyBucket(msgspec.Struct, kw_only=True, frozen=True):
    start: float  # bucket start (epoch seconds)
    frames: int  # frames recorded in the bucket (buckets without frames are omitted)
    mean: float  # mean persons in the zone per frame
    max: int


class DeliveryAttempt(msgspec.Struct, kw_only=True, frozen=True):
    """One webhook delivery attempt (REST webhooks/{id}/deliveries)."""

    delivery_id: str
    event_id: str
    subscription_id: str
    attempt: int
    timestamp: float
    ok: bool
    status_code: int | None = None
    latency_ms: float | None = None
    error: str | None = None
