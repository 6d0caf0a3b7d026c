"""Training-free sensing per link: motion, presence (still people included) and breathing rate from any
CSI frame shape, calibrated on a quiet period. The engine runs one LinkSensor per router; ``wdp sense``
runs the same code over a capture file."""

from __future__ import annotations

from wdp.sensing.breathing import BreathingEstimate, estimate_breathing
from wdp.sensing.events import SensingEvents, combine_zone
from wdp.sensing.link import LinkSensor, LinkStatus, SensingConfig

__all__ = [
    "BreathingEstimate",
    "LinkSensor",
    "LinkStatus",
    "SensingConfig",
    "SensingEvents",
    "combine_zone",
    "estimate_breathing",
]
