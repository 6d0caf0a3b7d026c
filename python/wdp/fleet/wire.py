"""Fleet topics and payloads: ``{root}/{site}/{edge}/{kind}`` with kind ``frames`` | ``sensing`` | ``events``,
msgpack of the schemas Struct (events tagged by ``type``); a frames message holds one PoseFrame or an array of
them (the edge's batches). Hubs subscribe ``$share/{group}/{root}/+/+/{kind}``."""

from __future__ import annotations

from typing import Literal

import msgspec

from wdp.integrations.mqtt.config import valid_segment
from wdp.schemas import Event, EventBase, PoseFrame, SensingState

Kind = Literal["frames", "sensing", "events"]
KINDS: tuple[Kind, ...] = ("frames", "sensing", "events")
ENCODER = msgspec.msgpack.Encoder()
FRAMES = msgspec.msgpack.Decoder(list[PoseFrame] | PoseFrame)
SENSING = msgspec.msgpack.Decoder(SensingState)
EVENT = msgspec.msgpack.Decoder(Event)


def edge_prefix(root: str, site: str, edge: str) -> str:
    for name, value in (("site", site), ("edge", edge)):
        if not valid_segment(value):
            raise ValueError(f"{name} {value!r} is not a valid topic segment")
    return f"{root.strip('/')}/{site}/{edge}"


def shared_filters(root: str, group: str) -> list[str]:
    return [f"$share/{group}/{root.strip('/')}/+/+/{kind}" for kind in KINDS]


def kind_of(topic: str) -> Kind | None:
    kind = topic.rsplit("/", 1)[-1]
    return kind if kind in KINDS else None  # type: ignore[return-value]


def decode(kind: Kind, payload: bytes) -> list[PoseFrame] | list[SensingState] | list[EventBase]:
    """The items of one message (a frames message may hold several)."""
    if kind == "frames":
        frames = FRAMES.decode(payload)
        return frames if isinstance(frames, list) else [frames]
    if kind == "sensing":
        return [SENSING.decode(payload)]
    return [EVENT.decode(payload)]
