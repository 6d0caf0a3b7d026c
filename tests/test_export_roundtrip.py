"""Exported nets (TorchScript, ONNX) reproduce the eager net; load_exported gives a plain callable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from wheel_layout import ensure_wheel_layout

from wdp.model import NETS, load_exported
from wdp.model.spec import INPUT_SHAPE, OUTPUT_NAMES

ensure_wheel_layout()
from wdp.train.export import export_net  # noqa: E402

torch.set_num_threads(1)

SMALL = {
    "paper": dict(width=8, mlp_hidden=64, head_channels=8),
    "wdpnet": dict(width=8, embed_dim=32, seed_channels=16, head_channels=8),
}


@pytest.fixture(scope="module", params=["paper", "wdpnet"])
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    torch.manual_seed(0)
    net = NETS[request.param](**SMALL[request.param])
    # non-trivial BatchNorm statistics, so eval-mode export is really tested
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.rand(8, *INPUT_SHAPE) * 3, torch.randn(8, *INPUT_SHAPE) * 2)
    net.eval()
    out = tmp_path_factory.mktemp(request.param)
    paths = export_net(
        net,
        out,
        net_name=request.param,
        net_params=SMALL[request.param],
        metrics={"test/ap": 0.25},
        training={"config_hash": "x" * 64},
    )
    return request.param, net, out, paths


def _inputs(b: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, *INPUT_SHAPE, generator=g) * 5 + 0.1, torch.randn(b, *INPUT_SHAPE, generator=g)


@pytest.mark.parametrize("backend", ["torchscript", "onnx"])
def test_exported_matches_eager(exported, backend: str) -> None:
    _, net, out, _ = exported
    model = load_exported(out, backend=backend)
    assert model.backend == backend
    for b in (1, 5):  # the batch axis is dynamic in both formats
        amp, phase = _inputs(b, seed=b)
        with torch.no_grad():
            eager = net(amp, phase)
        got = model(amp, phase)
        assert list(got) == list(OUTPUT_NAMES)
        for name, ref in zip(OUTPUT_NAMES, eager, strict=True):
            torch.testing.assert_close(got[name], ref, atol=1e-5, rtol=1e-5)


def test_loader_forms_and_card(exported) -> None:
    name, net, out, paths = exported
    assert {p.name for p in paths.values()} == {"model.ts", "model.onnx", "model_card.json"}
    card = json.loads(paths["card"].read_text())
    assert card["net"]["name"] == name and card["net"]["params"] == SMALL[name]
    assert card["net"]["num_parameters"] == sum(p.numel() for p in net.parameters())
    assert card["metrics"] == {"test/ap": 0.25} and card["files"]["onnx"] == "model.onnx"
    assert card["outputs"]["offsets"]["shape"] == ["batch", 34, 64, 64]

    amp, phase = _inputs(1, seed=9)
    with torch.no_grad():
        ref = net(amp, phase)[0][0]
    by_dir = load_exported(out)  # auto: TorchScript first
    by_file = load_exported(out / "model.onnx")  # ONNX by suffix, card found beside it
    assert by_dir.backend == "torchscript" and by_file.backend == "onnx" and by_file.card["net"]["name"] == name
    for model in (by_dir, by_file):
        single = model(amp[0].numpy(), phase[0].numpy())  # numpy, unbatched
        torch.testing.assert_close(single["center"], ref, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="expected amplitude/phase"):
        by_dir(np.zeros((2, 5, 30, 3)), np.zeros((2, 5, 30, 3)))
    with pytest.raises(FileNotFoundError):
        load_exported(Path(out) / "missing.onnx")
