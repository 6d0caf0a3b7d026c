"""Decoding: perfect net outputs built from the labels decode back to the labels (AP 1.0)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from contract_data import random_sample
from wheel_layout import ensure_wheel_layout

from wdp.model.decode import decode_densepose, decode_poses, to_people
from wdp.model.metrics import ImagePoses, keypoint_ap
from wdp.model.spec import MAP_H, MAP_W, N_KEYPOINTS

ensure_wheel_layout()
from wdp.train.targets import encode_targets  # noqa: E402

torch.set_num_threads(1)


def _batch(n: int, seed: int, max_people: int = 3) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    samples = [random_sample(rng, max_people) for _ in range(n)]
    return {k: torch.from_numpy(np.stack([s[k] for s in samples])) for k in samples[0]}


def _logit(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(1e-6, 1 - 1e-6)
    return torch.log(p) - torch.log1p(-p)


def perfect_outputs(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What an ideal net outputs for these labels (heatmap logits, offsets written at the center cells)."""
    t = encode_targets(batch)
    b, p = t["center_index"].shape
    offsets = torch.zeros(b, 2 * N_KEYPOINTS, MAP_H * MAP_W)
    for i in range(b):
        for k in range(p):
            if t["person_mask"][i, k]:
                offsets[i, :, t["center_index"][i, k]] = t["offsets"][i, k].reshape(-1)
    return _logit(t["center_heatmap"]), offsets.reshape(b, -1, MAP_H, MAP_W), _logit(t["keypoint_heatmaps"])


def _images(batch, decoded, min_score: float = 0.5) -> list[ImagePoses]:
    out = []
    for i in range(len(batch["num_people"])):
        n = int(batch["num_people"][i])
        keep = decoded.scores[i] >= min_score
        out.append(
            ImagePoses(
                batch["keypoints"][i, :n].double().numpy(),
                batch["person_area"][i, :n].double().numpy(),
                batch["boxes"][i, :n].double().numpy(),
                decoded.keypoints[i][keep].double().numpy(),
                decoded.scores[i][keep].double().numpy(),
            )
        )
    return out


@pytest.mark.parametrize("refine", [False, True])
def test_perfect_outputs_decode_to_labels(refine: bool) -> None:
    batch = _batch(24, seed=3)
    assert batch["num_people"].sum() > 20
    center, offsets, kheat = perfect_outputs(batch)
    decoded = decode_poses(center, offsets, kheat, refine_threshold=0.1 if refine else 2.0)
    images = _images(batch, decoded)
    assert keypoint_ap(images)["ap"] == pytest.approx(1.0)
    # joint positions themselves: exact through the offsets; to float precision through the log-parabola
    worst = 0.0
    for img in images:
        assert len(img.dt_scores) == len(img.gt_keypoints)
        for g in img.gt_keypoints:
            vis = g[:, 2] > 0
            err = np.min([np.abs(d[vis, :2] - g[vis, :2]).max() for d in img.dt_keypoints])
            worst = max(worst, err)
    assert worst < (1e-3 if refine else 1e-4)


def test_refinement_corrects_offset_errors() -> None:
    batch = _batch(8, seed=5)
    center, offsets, kheat = perfect_outputs(batch)
    noisy = offsets + torch.where(
        offsets != 0, torch.empty_like(offsets).uniform_(-1.2, 1.2), torch.zeros_like(offsets)
    )
    raw = _images(batch, decode_poses(center, noisy, kheat, refine_threshold=2.0))
    refined = _images(batch, decode_poses(center, noisy, kheat, refine_radius=2.0))
    assert keypoint_ap(raw)["ap"] < 0.9
    assert keypoint_ap(refined)["ap"] == pytest.approx(1.0)


def test_no_people_gives_low_scores_and_empty_lists() -> None:
    center = torch.full((2, 1, MAP_H, MAP_W), -8.0)
    decoded = decode_poses(center, torch.zeros(2, 34, MAP_H, MAP_W), torch.full((2, 17, MAP_H, MAP_W), -8.0))
    assert decoded.keypoints.shape == (2, 4, 17, 3) and decoded.boxes.shape == (2, 4, 4)
    assert float(decoded.scores.max()) < 1e-3
    assert to_people(decoded, min_score=0.3) == [[], []]


def test_people_list_and_boxes() -> None:
    batch = _batch(4, seed=11)
    decoded = decode_poses(*perfect_outputs(batch), box_margin=0.0)
    people = to_people(decoded, min_score=0.5)
    for i, persons in enumerate(people):
        assert len(persons) == int(batch["num_people"][i])
        for person in persons:
            kp, box = person["keypoints"], person["box"]
            assert kp.shape == (17, 3) and 0.5 <= person["score"] <= 1.0
            np.testing.assert_allclose(box, [kp[:, 0].min(), kp[:, 1].min(), kp[:, 0].max(), kp[:, 1].max()])


def test_decode_densepose() -> None:
    logits = torch.zeros(1, 25, 2, 2)
    logits[0, 0, 0, 0] = 5  # background
    logits[0, 7, 0, 1] = 5
    logits[0, 24, 1, :] = 5
    uv = torch.full((1, 2, 2, 2), 0.5)
    parts, uv_body = decode_densepose(logits, uv)
    assert parts.tolist() == [[[0, 7], [24, 24]]]
    assert uv_body[0, :, 0, 0].tolist() == [0.0, 0.0] and uv_body[0, :, 1, 1].tolist() == [0.5, 0.5]


def test_decode_densepose_is_coarse_then_fine() -> None:
    """A cell whose body probability is spread over parts is body, though background is its top class."""
    logits = torch.zeros(1, 25, 1, 2)
    logits[0, 0] = 2.0  # background beats every single part (e^2 vs 1) ...
    logits[0, 5, 0, 0] = 1.0  # ... but not all 24 together (7.4 vs 24.7): body, part 5
    logits[0, 0, 0, 1] = 5.0  # P(background) = e^5 / (e^5 + 24) = 0.86: background
    uv = torch.full((1, 2, 1, 2), 0.25)
    parts, uv_body = decode_densepose(logits, uv)
    assert parts.tolist() == [[[5, 0]]]
    assert uv_body[0, :, 0, 0].tolist() == [0.25, 0.25] and uv_body[0, :, 0, 1].tolist() == [0.0, 0.0]
