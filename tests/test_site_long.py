"""experiment=site_long's pieces: a 1-s window on a 20 Hz grid and the person-count head, from training to the
model card and the engine (window spec, hop, count gate)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from wheel_layout import compose_train, ensure_wheel_layout

ensure_wheel_layout()
from wdp.engine import ModelRunner  # noqa: E402
from wdp.engine.windowing import WindowSpec  # noqa: E402
from wdp.model import WdpNet  # noqa: E402
from wdp.model.exported import load_exported  # noqa: E402
from wdp.model.spec import MAX_PEOPLE, output_names  # noqa: E402
from wdp.train.losses import compute_losses  # noqa: E402
from wdp.train.targets import encode_targets  # noqa: E402
from wdp.train.training import train  # noqa: E402

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")


def test_site_long_config_is_the_site_training_with_a_1s_window_and_the_count_head() -> None:
    cfg = compose_train("experiment=site_long")
    site = compose_train("experiment=site")
    assert (cfg.data.sim.rate_hz, cfg.data.sim.window) == (20, 21)  # 21 grid instants 50 ms apart: 1.0 s
    assert list(cfg.model.net.input_shape) == [21, 30, 3, 3] and cfg.model.net.count_head
    assert cfg.data.rooms == site.data.rooms and cfg.data.sanitize == site.data.sanitize
    # the same number of windows seen as experiment=site
    assert cfg.data.num_train * cfg.trainer.max_epochs == site.data.num_train * site.trainer.max_epochs


def test_count_head_output_and_loss() -> None:
    net = WdpNet(width=8, embed_dim=16, seed_channels=8, head_channels=8, input_shape=(21, 30, 3, 3), count_head=True)
    out = net(torch.rand(3, 21, 30, 3, 3) + 0.5, torch.zeros(3, 21, 30, 3, 3))
    assert len(out) == 6 and out[5].shape == (3, MAX_PEOPLE + 1)
    assert (
        output_names(6)[-1] == "person_count"
        and len(net(torch.rand(1, 21, 30, 3, 3), torch.zeros(1, 21, 30, 3, 3))) == 6
    )
    batch = {
        "keypoints": torch.zeros(3, MAX_PEOPLE, 17, 3),
        "boxes": torch.zeros(3, MAX_PEOPLE, 4),
        "num_people": torch.tensor([0, 1, 2]),
        "part_mask": torch.zeros(3, 64, 64, dtype=torch.uint8),
        "uv": torch.zeros(3, 2, 64, 64),
    }
    target = encode_targets(batch)
    terms = compute_losses(out, target)
    expected = torch.nn.functional.cross_entropy(out[5], torch.tensor([0, 1, 2]))
    assert torch.allclose(terms["count"], expected)
    without = compute_losses(out[:5], target)
    assert "count" not in without and torch.allclose(terms["loss"] - without["loss"], expected)
    with pytest.raises(ValueError):
        output_names(8)


def test_window_hop_follows_the_card_rate() -> None:
    assert WindowSpec.from_card({"input_spec": {"window": 5, "frame_rate_hz": 100}}).hop == 5
    assert WindowSpec.from_card({"input_spec": {"window": 21, "frame_rate_hz": 20}}).hop == 1
    assert WindowSpec.from_card({"input_spec": {"window": 21, "frame_rate_hz": 20}}, hop=4).hop == 4
    assert WindowSpec.from_card(None).hop == 5


def test_long_window_count_head_run_exports_and_the_engine_keeps_the_counted_people(tmp_path: Path) -> None:
    cfg = compose_train(
        "experiment=smoke",
        f"paths.output_dir={tmp_path}",
        f"data.cache_dir={tmp_path / 'sim'}",
        "+data.sim.rate_hz=20",
        "+data.sim.window=21",
        "+model.net.input_shape=[21,30,3,3]",
        "+model.net.count_head=true",
        "export.formats=[torchscript,onnx]",
        "plots.enabled=false",
    )
    metrics, objects = train(cfg)
    assert objects["datamodule"].split("test").arrays["amplitude"].shape[1:] == (21, 30, 3, 3)
    assert "test/count" in metrics and 0.0 <= metrics["test/count_accuracy"] <= 1.0
    export = objects["exported"]["card"].parent
    card = json.loads((export / "model_card.json").read_text())
    spec = card["input_spec"]
    assert (spec["window"], spec["frame_rate_hz"], spec["window_s"]) == (21, 20, 21 / 20)
    assert card["decode"]["count_gate"] is True and card["outputs"]["person_count"]["shape"] == [
        "batch",
        MAX_PEOPLE + 1,
    ]
    rng = np.random.default_rng(0)
    amp = (rng.random((6, 21, 30, 3, 3)) * 20 + 1).astype(np.float32)
    pha = (rng.random((6, 21, 30, 3, 3)) * 2 - 1).astype(np.float32)
    for backend in ("torchscript", "onnx"):
        raw = load_exported(export, backend=backend)(amp, pha)
        assert list(raw) == list(output_names(6))
        counts = raw["person_count"].argmax(-1).numpy()
        runner = ModelRunner.load(export, backend=backend)
        assert runner.spec.shape == (21, 30, 3, 3) and runner.spec.hop == 1 and runner.count_gate
        runner.min_score = 2.0  # no score reaches it: only the count decides
        dets = runner.infer(amp, pha)
        assert counts.sum() > 0 and [len(d.scores) for d in dets] == [int(c) for c in counts]  # as many as counted
        assert all(np.all(np.diff(d.scores) <= 0) for d in dets)  # the best ones
        runner.count_gate = False  # the score threshold instead
        assert [len(d.scores) for d in runner.infer(amp, pha)] == [0] * 6
