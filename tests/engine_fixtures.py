"""Helpers for the engine tests: a tiny freshly initialised pose net exported like a trained one, a scripted
two-person scene, and a small subscriber that collects bus messages."""

from __future__ import annotations

from pathlib import Path

import torch
from wheel_layout import ensure_wheel_layout

from wdp import schemas
from wdp.csi.simulator.config import INTEL5300_SUBCARRIERS_20MHZ
from wdp.model import WdpNet

TINY = dict(width=8, embed_dim=32, attention_layers=1, seed_channels=16, head_channels=8)


def export_tiny_model(
    out: Path, seed: int = 0, name: str = "wdpnet", formats: tuple[str, ...] = ("torchscript",)
) -> Path:
    """A small WdpNet with random weights, exported (TorchScript + model card) the way training exports;
    the shipped model (python/wdp/models/default) is not needed for the engine's tests."""
    ensure_wheel_layout()
    from wdp.train.export import export_net

    torch.manual_seed(seed)
    net = WdpNet(**TINY).eval()
    export_net(
        net,
        out,
        net_name=name,
        formats=formats,
        net_params=TINY,
        onnx_optimize=False,
        sanitization={"method": "endpoints", "subcarrier_index": list(INTEL5300_SUBCARRIERS_20MHZ)},
        decode={"max_people": 4, "refine_radius": 2.0, "refine_threshold": 0.1, "box_margin": 0.1},
    )
    return out


def two_person_scene():
    """Room 101 (outside the training splits): person 0 stands, then walks into the 'bed' zone; person 1
    stands, falls sideways at t = 4.5 s and stays down."""
    from wdp.csi.simulator import Fall, Lie, PersonSpec, Stand, Walk, scripted_scene

    return scripted_scene(
        101,
        [
            PersonSpec((1.0, 2.6), (Stand(until=1.5), Walk(to=(3.7, 4.3), speed=1.0), Stand())),
            PersonSpec((1.0, 4.6), (Stand(until=4.5), Fall(direction="left"), Lie())),
        ],
        duration=9.0,
        seed=3,
    )


def cached_tiny_model(tmp_path_factory, seed: int = 0) -> Path:
    """export_tiny_model once per test session (the session's base temp dir is shared by all modules)."""
    out = tmp_path_factory.getbasetemp() / f"tiny-model-{seed}"
    if not (out / "model_card.json").is_file():
        export_tiny_model(out, seed=seed)
    return out


BED = schemas.Zone(id="bed", name="bed", polygon=[(3.0, 3.6), (4.4, 3.6), (4.4, 5.0), (3.0, 5.0)])
