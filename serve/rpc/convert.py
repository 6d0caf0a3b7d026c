"""msgspec Structs (wdp.schemas) <-> the generated protobuf messages of wdp.v1."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from wdp.schemas import JSON_ENCODER, EventBase, PoseFrame, SensingState, event_type
from wdp.serve.stream.protocol import Filters


def frame_to_pb(pb2: ModuleType, frame: PoseFrame) -> Any:
    persons = []
    for p in frame.persons:
        msg = pb2.Person(
            track_id=p.track_id,
            keypoints=[pb2.Keypoint(x=k[0], y=k[1], score=k[2]) for k in p.keypoints],
            box=list(p.box),
            confidence=p.confidence,
            zone_ids=list(p.zone_ids),
        )
        if p.activity is not None:
            msg.activity = p.activity
        if p.position is not None:
            msg.x, msg.y = p.position
        persons.append(msg)
    return pb2.PoseFrame(
        frame_id=frame.frame_id,
        timestamp=frame.timestamp,
        source=frame.source,
        persons=persons,
        router_ids=list(frame.router_ids),
        latency_ms=frame.latency_ms,
    )


def event_to_pb(pb2: ModuleType, event: EventBase) -> Any:
    return pb2.Event(
        type=event_type(event), event_id=event.event_id, timestamp=event.timestamp, json=JSON_ENCODER.encode(event)
    )


def sensing_to_pb(pb2: ModuleType, s: SensingState) -> Any:
    msg = pb2.SensingState(
        timestamp=s.timestamp,
        source=s.source,
        motion=s.motion,
        motion_score=s.motion_score,
        threshold=s.threshold,
        presence=s.presence,
        still=s.still,
        breathing_confidence=s.breathing_confidence,
        calibration=s.calibration,
        packet_rate=s.packet_rate,
    )
    if s.router_id is not None:
        msg.router_id = s.router_id
    if s.zone_id is not None:
        msg.zone_id = s.zone_id
    if s.breathing_bpm is not None:
        msg.breathing_bpm = s.breathing_bpm
    return msg


def filters_from_pb(msg: Any) -> Filters:
    """The WebSocket's Filters from the proto's; ValueError (-> INVALID_ARGUMENT) for values it refuses."""
    import msgspec

    raw: dict[str, Any] = {}
    for name in ("zone_id", "min_confidence", "person_id", "min_severity", "router_id"):
        if msg.HasField(name):
            raw[name] = getattr(msg, name)
    try:
        return msgspec.convert(raw, Filters)
    except msgspec.ValidationError as exc:
        raise ValueError(f"invalid filters: {exc}") from None


def csi_from_pb(msg: Any, max_values: int) -> np.ndarray:
    """A CsiFrame's complex64 (subcarriers, rx, tx) array; ValueError saying what is wrong."""
    shape = (int(msg.subcarriers), int(msg.rx), int(msg.tx))
    if min(shape) < 1:
        raise ValueError(f"bad shape {shape}: subcarriers, rx and tx must be >= 1")
    n = 2 * shape[0] * shape[1] * shape[2]
    if n > max_values:
        raise ValueError(f"frame of {n} values is larger than {max_values}")
    values = np.asarray(msg.re_im, dtype=np.float32)
    if values.size != n:
        raise ValueError(f"re_im has {values.size} values, shape {shape} needs {n}")
    if not np.isfinite(values).all():
        raise ValueError("re_im has non-finite values")
    return values.view(np.complex64).reshape(shape)
