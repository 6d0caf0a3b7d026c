"""Fusing detections of several routers in one slot (OKS-NMS, keypoint averaging)."""

from __future__ import annotations

import numpy as np

from wdp.engine.fusion import fuse_detections, oks_matrix
from wdp.tracking.detections import COCO_SIGMAS, Detections


def _person(x: float, y: float, h: float = 120.0, score: float = 0.9, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    kp = np.zeros((17, 3))
    kp[:, 0] = x + rng.uniform(-0.15, 0.15, 17) * h
    kp[:, 1] = y + np.linspace(-0.5, 0.5, 17) * h
    kp[:, 2] = score
    return kp


def _dets(*kps: np.ndarray, scores: list[float] | None = None) -> Detections:
    k = np.stack(kps)
    return Detections.from_arrays(k, None, np.array(scores) if scores else None)


def test_oks_matches_coco_formula() -> None:
    a = _person(100, 100)
    b = a.copy()
    b[:, 0] += 3.0
    area = 50.0 * 120.0
    got = oks_matrix(a[None], np.array([area]), b[None], 0.3)[0, 0]
    ref = np.mean(np.exp(-9.0 / (2 * area * (2 * COCO_SIGMAS) ** 2)))
    assert abs(got - ref) < 1e-12
    assert oks_matrix(a[None], np.array([area]), a[None], 0.3)[0, 0] == 1.0
    hidden = a.copy()
    hidden[:, 2] = 0.0
    assert oks_matrix(a[None], np.array([area]), hidden[None], 0.3)[0, 0] == 0.0


def test_same_person_from_two_routers_is_merged_with_weighted_keypoints() -> None:
    p = _person(120, 128)
    q = p.copy()
    q[:, 0] += 2.0
    q[:, 2] = 0.3  # the second router is less sure: its keypoints weigh less
    fused = fuse_detections([_dets(p, scores=[0.9]), _dets(q, scores=[0.6])])
    assert len(fused) == 1 and fused.scores[0] == 0.9
    w = 0.9 / (0.9 + 0.3)
    np.testing.assert_allclose(fused.keypoints[0, :, 0], w * p[:, 0] + (1 - w) * q[:, 0])
    np.testing.assert_allclose(fused.keypoints[0, :, 2], 0.9)


def test_different_people_and_same_router_pairs_stay_apart() -> None:
    left, right = _person(60, 128, seed=1), _person(190, 128, seed=2)
    fused = fuse_detections([_dets(left, right, scores=[0.8, 0.7]), _dets(right, left, scores=[0.9, 0.5])])
    assert len(fused) == 2
    xs = sorted(fused.keypoints[:, :, 0].mean(1))
    assert abs(xs[0] - left[:, 0].mean()) < 1 and abs(xs[1] - right[:, 0].mean()) < 1
    # two overlapping people in ONE router's view are two people: never merged with each other
    near = left.copy()
    near[:, 0] += 1.0
    assert len(fuse_detections([_dets(left, near, scores=[0.9, 0.8])])) == 2
    # three routers, one person: one detection; an empty router changes nothing
    three = fuse_detections([_dets(left), _dets(left), Detections.empty(), _dets(left)])
    assert len(three) == 1
    assert len(fuse_detections([Detections.empty(), Detections.empty()])) == 0
