"""Both nets: output contract, batch independence, AGC invariance, gradients reach every parameter."""

from __future__ import annotations

import pytest
import torch

from wdp.model import NETS, PaperNet, WdpNet
from wdp.model.spec import INPUT_SHAPE, MAP_H, MAP_W, OUTPUT_CHANNELS, OUTPUT_NAMES

torch.set_num_threads(1)

SMALL = {
    "paper": dict(width=8, mlp_hidden=64, head_channels=8),
    "wdpnet": dict(width=8, embed_dim=32, seed_channels=16, head_channels=8),
    "wdpnet_trig": dict(width=8, embed_dim=32, seed_channels=16, head_channels=8, phase_trig=True, encoder_width=24),
}
SMALL["wdpnet_mlp"] = dict(width=8, embed_dim=32, seed_channels=16, head_channels=8, encoder="mlp", encoder_width=40)
NETS = {**NETS, "wdpnet_trig": WdpNet, "wdpnet_mlp": WdpNet}


def _inputs(b: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, *INPUT_SHAPE, generator=g) + 0.5, torch.randn(b, *INPUT_SHAPE, generator=g)


@pytest.mark.parametrize("name", ["paper", "wdpnet", "wdpnet_trig", "wdpnet_mlp"])
def test_output_contract(name: str) -> None:
    net = NETS[name](**SMALL[name]).eval()
    with torch.no_grad():
        outs = net(*_inputs(3))
    assert len(outs) == len(OUTPUT_NAMES)
    for out, key in zip(outs, OUTPUT_NAMES, strict=True):
        assert out.shape == (3, OUTPUT_CHANNELS[key], MAP_H, MAP_W)
        assert torch.isfinite(out).all()
    uv = outs[OUTPUT_NAMES.index("uv")]
    assert 0 <= float(uv.min()) and float(uv.max()) <= 1


@pytest.mark.parametrize("name", ["paper", "wdpnet", "wdpnet_trig", "wdpnet_mlp"])
def test_batch_items_are_independent_and_agc_invariant(name: str) -> None:
    net = NETS[name](**SMALL[name]).eval()
    amp, phase = _inputs(4, seed=1)
    with torch.no_grad():
        full = net(amp, phase)
        single = net(amp[2:3], phase[2:3])
        # receiver gain per frame and rx chain (AGC steps, chain mismatch) must not change the prediction:
        # amplitude is normalised per (frame, rx chain)
        gain = torch.tensor([0.3, 1.0, 2.5, 7.0, 0.9]).reshape(1, 5, 1, 1, 1) * torch.tensor([1.0, 0.7, 1.3]).reshape(
            1, 1, 1, 3, 1
        )
        scaled = net(amp * gain, phase)
    for f, s, g in zip(full, single, scaled, strict=True):
        torch.testing.assert_close(f[2:3], s, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(f, g, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["paper", "wdpnet", "wdpnet_trig", "wdpnet_mlp"])
def test_gradients_reach_every_parameter(name: str) -> None:
    net = NETS[name](**SMALL[name]).train()
    outs = net(*_inputs(2, seed=2))
    sum(o.square().mean() for o in outs).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def test_default_sizes() -> None:
    # the defaults the configs use; wdpnet is the smaller/faster of the two by design
    paper = sum(p.numel() for p in PaperNet().parameters())
    ours = sum(p.numel() for p in WdpNet().parameters())
    assert 1e6 < paper < 5e6 and 1e6 < ours < 5e6


def test_trig_phase_sees_wrapped_phase_as_one_circle() -> None:
    """With phase_trig, phase and phase + 2 pi (the same tx-difference angle) give the same output."""
    net = WdpNet(**SMALL["wdpnet_trig"]).eval()
    amp, phase = _inputs(2, seed=3)
    with torch.no_grad():
        a = net(amp, phase)
        b = net(amp, phase + 2 * torch.pi * torch.randint(-1, 2, phase.shape))
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, atol=1e-4, rtol=1e-4)


def test_unknown_encoder_is_refused() -> None:
    with pytest.raises(ValueError, match="encoder must be"):
        WdpNet(encoder="lstm")
