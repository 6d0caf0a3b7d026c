"""Pose nets (plain nn.Modules), output decoding, metrics and exported-model loading."""

from __future__ import annotations

from wdp.model.activity_net import ActivityNet, GruBaseline
from wdp.model.decode import DecodedPoses, decode_densepose, decode_poses, to_people
from wdp.model.exported import ExportedPoseNet, load_exported
from wdp.model.paper_net import PaperNet
from wdp.model.wdp_net import WdpNet

NETS = {"paper": PaperNet, "wdpnet": WdpNet}

__all__ = [
    "NETS",
    "ActivityNet",
    "GruBaseline",
    "DecodedPoses",
    "ExportedPoseNet",
    "PaperNet",
    "WdpNet",
    "decode_densepose",
    "decode_poses",
    "load_exported",
    "to_people",
]
