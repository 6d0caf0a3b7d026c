"""Model resolution, the fast decoder (equal to wdp.model.decode_poses), the runner, truth detections."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from engine_fixtures import TINY, cached_tiny_model, export_tiny_model

from wdp.csi.simulator import SceneSimulator, random_scene
from wdp.engine.models import (
    DEFAULT_MIN_SCORE,
    ModelRunner,
    decode_poses_fast,
    local_peaks,
    pick_backend,
    resolve_model,
    truth_detections,
)
from wdp.model import WdpNet, decode_poses
from wdp.model.decode import _local_peaks
from wdp.model.spec import INPUT_SHAPE

torch.set_num_threads(1)


def _assert_same(a, b) -> None:
    for name in ("keypoints", "boxes", "scores"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), atol=1e-5, rtol=1e-5)


def test_separable_peak_nms_equals_max_pool() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 17, 64, 64, generator=g)
    x[0, 0, 5, 5] = x[0, 0, 5, 6] = 9.0  # a plateau: both cells are peaks for max pooling too
    x[1, 2, 0, :] = 7.0  # a ridge along the border
    x[2] = torch.round(x[2])  # many ties
    assert torch.equal(local_peaks(x), _local_peaks(x))
    assert torch.equal(local_peaks(torch.sigmoid(x)), _local_peaks(torch.sigmoid(x)))


@pytest.mark.parametrize("radius", [2.0, 1.5, 3.0])
def test_fast_decode_equals_reference_on_net_outputs(radius: float) -> None:
    torch.manual_seed(1)
    net = WdpNet(**TINY).eval()
    with torch.no_grad():
        out = net(torch.rand(6, *INPUT_SHAPE) * 20, torch.randn(6, *INPUT_SHAPE))
    center, offsets, heat = out[0], out[1] * 8, out[2] * 6  # spread the offsets, sharpen the peaks
    ref = decode_poses(center, offsets, heat, refine_radius=radius)
    fast = decode_poses_fast(center, offsets, heat, refine_radius=radius)
    _assert_same(fast, ref)


def test_fast_decode_equals_reference_on_sharp_peaks_and_borders() -> None:
    g = torch.Generator().manual_seed(2)
    b, h, w = 4, 64, 64
    center = torch.full((b, 1, h, w), -8.0)
    heat = torch.full((b, 17, h, w), -8.0)
    offsets = torch.zeros(b, 34, h, w)
    for i in range(b):
        for _ in range(3):
            cy, cx = (int(v) for v in torch.randint(0, 64, (2,), generator=g))
            center[i, 0, cy, cx] = 4.0 + float(torch.rand(1, generator=g))
            d = torch.randn(17, 2, generator=g) * 6
            offsets[i, 0::2, cy, cx] = d[:, 0]
            offsets[i, 1::2, cy, cx] = d[:, 1]
            for j in range(17):  # joint peaks near (not at) the regressed positions, some off the map edge
                jx = int(np.clip(round(cx + float(d[j, 0]) + float(torch.randn(1, generator=g))), 0, w - 1))
                jy = int(np.clip(round(cy + float(d[j, 1]) + float(torch.randn(1, generator=g))), 0, h - 1))
                heat[i, j, jy, jx] = 3.0
                heat[i, j, jy, min(jx + 1, w - 1)] = 1.5
    center[0, 0, 0, 0] = 6.0  # a person centred in the corner: candidates outside the map
    _assert_same(decode_poses_fast(center, offsets, heat), decode_poses(center, offsets, heat))


def test_resolve_by_path_name_and_version(tmp_path_factory, tmp_path) -> None:
    src = cached_tiny_model(tmp_path_factory)
    root = tmp_path / "models"
    for version in ("v2", "v10", "v9"):
        shutil.copytree(src, root / "pose" / version)
    (root / "pose" / "notes").mkdir()  # not a model: ignored
    assert resolve_model(src) == src
    assert resolve_model("pose", root) == root / "pose" / "v10"  # number-aware: v10 > v9 > v2
    assert resolve_model("pose/v9", root) == root / "pose" / "v9"
    assert resolve_model("pose:v2", root) == root / "pose" / "v2"
    shutil.copytree(src, root / "flat")
    assert resolve_model("flat", root) == root / "flat"
    with pytest.raises(FileNotFoundError, match="looked in"):
        resolve_model("pose/v3", root)
    with pytest.raises(FileNotFoundError):
        resolve_model("nothing-here", root)


def test_runner_infers_detections_in_image_pixels(tmp_path_factory) -> None:
    runner = ModelRunner.load(cached_tiny_model(tmp_path_factory), min_score=0.0)
    assert runner.spec.shape == (5, 30, 3, 3) and runner.info.name == "wdpnet"
    assert runner.decode_params == {
        "max_people": 4,
        "refine_radius": 2.0,
        "refine_threshold": 0.1,
        "box_margin": 0.1,
    }
    rng = np.random.default_rng(0)
    amp = rng.uniform(5, 30, (3, *INPUT_SHAPE)).astype(np.float32)
    phase = rng.normal(0, 1, (3, *INPUT_SHAPE)).astype(np.float32)
    dets = runner.infer(amp, phase)
    assert len(dets) == 3 and all(len(d) == 4 for d in dets)  # min_score 0: every decoded slot
    out = runner.model(amp, phase)
    ref = decode_poses(out["center"], out["offsets"], out["keypoint_heatmaps"])
    np.testing.assert_allclose(dets[1].keypoints, ref.keypoints[1].numpy(), atol=1e-4)
    strict = ModelRunner(runner.model, min_score=1.01)
    assert all(len(d) == 0 for d in strict.infer(amp, phase))


def test_runner_takes_the_cards_recommended_min_score(tmp_path_factory, tmp_path) -> None:
    model = tmp_path / "m"
    shutil.copytree(cached_tiny_model(tmp_path_factory), model)
    assert ModelRunner.load(model).min_score == DEFAULT_MIN_SCORE  # the card recommends none
    card_file = model / "model_card.json"
    card = json.loads(card_file.read_text())
    card["decode"]["min_score"] = 0.123
    card_file.write_text(json.dumps(card))
    assert ModelRunner.load(model).min_score == 0.123
    assert ModelRunner.load(model, min_score=0.5).min_score == 0.5  # engine.min_detection_score wins
    # joint scores are published relative to the card's reference (0.5 = the model's usual confidence)
    amp = np.random.default_rng(0).uniform(5, 30, (2, *INPUT_SHAPE)).astype(np.float32)
    phase = np.random.default_rng(1).uniform(-3, 3, (2, *INPUT_SHAPE)).astype(np.float32)
    raw = ModelRunner.load(model, min_score=0.0).infer(amp, phase)
    card["decode"]["keypoint_score_ref"] = 0.05
    card["decode"]["score_ref"] = 0.25
    card_file.write_text(json.dumps(card))
    scaled = ModelRunner.load(model, min_score=0.0).infer(amp, phase)
    for r, s in zip(raw, scaled, strict=True):
        np.testing.assert_allclose(s.keypoints[..., :2], r.keypoints[..., :2])
        np.testing.assert_allclose(s.scores, np.minimum(r.scores * 2.0, 1.0), rtol=1e-6)
        np.testing.assert_allclose(s.keypoints[..., 2], np.minimum(r.keypoints[..., 2] * 10.0, 1.0), rtol=1e-6)


def test_auto_backend_prefers_onnx_runtime(tmp_path) -> None:
    path = export_tiny_model(tmp_path / "both", seed=3, formats=("torchscript", "onnx"))
    assert pick_backend(path) == "onnx" and pick_backend(path, "torchscript") == "torchscript"
    assert pick_backend(path / "model.ts") == "auto"
    onnx = ModelRunner.load(path, min_score=0.0, threads=1)
    ts = ModelRunner.load(path, backend="torchscript", min_score=0.0)
    assert onnx.info.backend == "onnx" and ts.info.backend == "torchscript"
    rng = np.random.default_rng(1)
    amp = rng.uniform(5, 30, (2, *INPUT_SHAPE)).astype(np.float32)
    phase = rng.normal(0, 1, (2, *INPUT_SHAPE)).astype(np.float32)
    for a, b in zip(onnx.infer(amp, phase), ts.infer(amp, phase), strict=True):
        np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-3)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)


def test_truth_detections_from_simulator() -> None:
    sim = SceneSimulator(random_scene(81, 4, n_people=2))
    frame = next(iter(sim.stream(0.5, 0.6)))
    det = truth_detections(frame.persons)
    visible = [p for p in frame.persons if (p.keypoints[:, 2] > 0).any()]
    assert len(det) == len(visible) >= 1
    for d_kp, p in zip(det.keypoints, visible, strict=True):
        vis = p.keypoints[:, 2] > 0
        np.testing.assert_allclose(d_kp[vis, :2], p.keypoints[vis, :2])
        assert (d_kp[vis, 2] == 1.0).all() and (d_kp[~vis, 2] == 0).all()
    assert len(truth_detections(())) == 0
