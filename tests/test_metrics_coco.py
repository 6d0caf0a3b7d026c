"""Our numpy COCO keypoint AP against pycocotools on identical predictions, plus hand-checked values."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from wdp.model.metrics import ImagePoses, PartConfusion, keypoint_ap, localization_errors, oks, pose_errors
from wdp.model.spec import KEYPOINT_NAMES, OKS_SIGMAS

STAT_KEYS = ("ap", "ap50", "ap75", "ap_medium", "ap_large", "ar", "ar50", "ar75", "ar_medium", "ar_large")


def _random_person(rng: np.random.Generator, scale: float) -> np.ndarray:
    kp = np.zeros((17, 3))
    center = rng.uniform(scale, 256 - scale, 2)
    kp[:, :2] = center + rng.normal(0, scale / 3, (17, 2))
    kp[:, 2] = np.where(rng.random(17) < 0.85, 2, 0)
    return kp


def _random_case(rng: np.random.Generator, n_images: int) -> list[ImagePoses]:
    images = []
    for _ in range(n_images):
        n_gt = int(rng.integers(0, 5))
        scales = rng.choice([10.0, 25.0, 60.0], n_gt)  # small / medium / large people
        gts = np.array([_random_person(rng, s) for s in scales]).reshape(n_gt, 17, 3)
        if n_gt and rng.random() < 0.2:
            gts[0, :, 2] = 0  # a gt with no visible joint: COCO ignores it
        boxes = np.zeros((n_gt, 4))
        area = np.zeros(n_gt)
        for g in range(n_gt):
            x0, y0 = gts[g, :, :2].min(0) - 5
            x1, y1 = gts[g, :, :2].max(0) + 5
            boxes[g] = (x0, y0, x1, y1)
            area[g] = (x1 - x0) * (y1 - y0) * rng.uniform(0.5, 1.0)
        dts, scores = [], []
        for g in range(n_gt):
            if rng.random() < 0.2:
                continue  # missed person
            d = gts[g].copy()
            d[:, :2] += rng.normal(0, rng.choice([0.5, 3.0, 10.0]), (17, 2))
            d[:, 2] = rng.random(17)
            dts.append(d)
            scores.append(rng.random())
            if rng.random() < 0.15:  # duplicate detection of the same person
                dts.append(d + rng.normal(0, 2, d.shape))
                scores.append(rng.random())
        for _ in range(int(rng.integers(0, 3))):  # false positives
            dts.append(_random_person(rng, 25.0))
            scores.append(rng.random())
        dt_kp = np.array(dts).reshape(len(dts), 17, 3)
        images.append(ImagePoses(gts, area, boxes, dt_kp, np.array(scores)))
    if not any(len(i.dt_scores) for i in images):  # pycocotools cannot load an empty result list
        images[0].dt_keypoints = _random_person(rng, 25.0)[None]
        images[0].dt_scores = np.array([0.5])
    return images


def _pycocotools_stats(images: list[ImagePoses]) -> np.ndarray:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    anns, results = [], []
    for i, img in enumerate(images, start=1):
        for g in range(len(img.gt_keypoints)):
            x0, y0, x1, y1 = img.gt_boxes[g]
            kp = img.gt_keypoints[g]
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": 1,
                    "iscrowd": 0,
                    "keypoints": kp.ravel().tolist(),
                    "num_keypoints": int((kp[:, 2] > 0).sum()),
                    "area": float(img.gt_area[g]),
                    "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                }
            )
        for d in range(len(img.dt_scores)):
            results.append(
                {
                    "image_id": i,
                    "category_id": 1,
                    "keypoints": img.dt_keypoints[d].ravel().tolist(),
                    "score": float(img.dt_scores[d]),
                }
            )
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {
            "images": [{"id": i} for i in range(1, len(images) + 1)],
            "annotations": anns,
            "categories": [{"id": 1, "name": "person", "keypoints": list(KEYPOINT_NAMES)}],
        }
        gt.createIndex()
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


@pytest.mark.parametrize("seed", range(6))
def test_keypoint_ap_matches_pycocotools(seed: int) -> None:
    rng = np.random.default_rng(seed)
    images = _random_case(rng, n_images=int(rng.integers(3, 25)))
    ours = keypoint_ap(images)
    ref = _pycocotools_stats(images)
    assert 0 < ref[0] < 1  # a non-trivial case
    np.testing.assert_allclose([ours[k] for k in STAT_KEYS], ref, atol=1e-6, rtol=0)


def test_keypoint_ap_matches_pycocotools_with_many_detections() -> None:
    # more than maxDets=20 detections in one image: both must truncate the same way
    rng = np.random.default_rng(99)
    images = _random_case(rng, 4)
    extra = np.array([_random_person(rng, 25.0) for _ in range(30)])
    images[1].dt_keypoints = np.concatenate([images[1].dt_keypoints.reshape(-1, 17, 3), extra])
    images[1].dt_scores = np.concatenate([images[1].dt_scores, rng.random(30)])
    np.testing.assert_allclose([keypoint_ap(images)[k] for k in STAT_KEYS], _pycocotools_stats(images), atol=1e-6)


def test_perfect_and_empty_predictions() -> None:
    rng = np.random.default_rng(1)
    gts = np.array([_random_person(rng, 40.0) for _ in range(3)])
    img = ImagePoses(
        gts, np.full(3, 5000.0), np.tile([0.0, 0, 100, 100], (3, 1)), gts.copy(), np.array([0.9, 0.8, 0.7])
    )
    assert keypoint_ap([img])["ap"] == pytest.approx(1.0)
    none = ImagePoses(gts, np.full(3, 5000.0), np.tile([0.0, 0, 100, 100], (3, 1)), np.zeros((0, 17, 3)), np.zeros(0))
    assert keypoint_ap([none])["ap"] == 0.0
    assert keypoint_ap([none])["ar"] == 0.0


def test_oks_hand_value() -> None:
    # one visible joint (left hip, sigma 0.107) off by d pixels: OKS = exp(-d^2 / (2 area (2 sigma)^2))
    gt = np.zeros((1, 17, 3))
    gt[0, 11] = (100, 100, 2)
    dt = gt.copy()
    dt[0, 11, 0] += 7.0
    area = 900.0
    expected = np.exp(-(7.0**2) / (2 * area * (2 * OKS_SIGMAS[11]) ** 2))
    assert oks(dt, gt, np.array([area]), np.array([[90, 90, 110, 110.0]]))[0, 0] == pytest.approx(expected, rel=1e-12)


def test_pck_and_joint_error() -> None:
    gt = np.zeros((1, 17, 3))
    gt[0, :, :2] = np.stack([np.arange(17) * 5.0, np.full(17, 50.0)], axis=1)
    gt[0, :, 2] = 2
    gt[0, 5, :2] = (0, 0)  # left shoulder
    gt[0, 12, :2] = (30, 40)  # right hip: torso diameter 50 -> PCK@0.2 radius 10 px
    dt = gt.copy()
    dt[0, :, 0] += 4.0  # every joint 4 px off ...
    dt[0, 0, 0] += 20.0  # ... the nose 24 px off
    img = ImagePoses(gt, np.array([4000.0]), np.array([[0, 0, 80, 80.0]]), dt, np.array([0.9]))
    res = pose_errors([img])
    assert res["pck@0.2"] == pytest.approx(16 / 17)
    assert res["joint_error/nose"] == pytest.approx(24.0)
    assert res["joint_error/left_ankle"] == pytest.approx(4.0)
    assert res["mpjpe"] == pytest.approx((16 * 4 + 24) / 17)
    # an unmatched gt (no detections) fails every joint
    empty = ImagePoses(gt, np.array([4000.0]), np.array([[0, 0, 80, 80.0]]), np.zeros((0, 17, 3)), np.zeros(0))
    assert pose_errors([img, empty])["pck@0.2"] == pytest.approx(16 / 34)


def test_part_iou() -> None:
    gt = np.zeros((4, 4), np.int64)
    gt[0, :2] = 1  # part 1: 2 px
    gt[1, :] = 2  # part 2: 4 px
    pred = gt.copy()
    pred[0, 1] = 0  # lose one part-1 pixel
    pred[2, 0] = 2  # one extra part-2 pixel
    conf = PartConfusion()
    conf.add(pred, gt)
    res = conf.compute()
    assert res["part_miou"] == pytest.approx((1 / 2 + 4 / 5) / 2)
    assert res["body_iou"] == pytest.approx(5 / 7)
    assert res["part_accuracy"] == pytest.approx(14 / 16)


def test_localization_errors_use_the_top_detection_and_a_constant_baseline() -> None:
    def person(cx: float, cy: float) -> np.ndarray:
        kp = np.zeros((len(KEYPOINT_NAMES), 3))
        kp[:, 0] = cx + np.linspace(-5, 5, len(KEYPOINT_NAMES))
        kp[:, 1] = cy + np.linspace(-20, 20, len(KEYPOINT_NAMES))
        kp[:, 2] = 2
        return kp

    area, box = np.array([400.0]), np.array([[0.0, 0.0, 20.0, 40.0]])
    images = [
        # top detection (score 0.9) 3 px right of the person; the low-scoring exact one is ignored
        ImagePoses(
            person(100, 100)[None], area, box, np.stack([person(103, 100), person(100, 100)]), np.array([0.9, 0.1])
        ),
        # two people: the detection pairs with the nearer one (error 4)
        ImagePoses(
            np.stack([person(200, 100), person(50, 100)]),
            np.r_[area, area],
            np.r_[box, box],
            person(200, 104)[None],
            np.array([0.2]),
        ),
        ImagePoses(person(150, 100)[None], area, box, np.zeros((0, len(KEYPOINT_NAMES), 3)), np.zeros(0)),
        ImagePoses(
            np.zeros((0, len(KEYPOINT_NAMES), 3)), np.zeros(0), np.zeros((0, 4)), person(1, 1)[None], np.array([1.0])
        ),
    ]
    out = localization_errors(images)
    assert out["center_error"] == pytest.approx(3.5)
    assert out["top1_mpjpe"] == pytest.approx(3.5)
    # mean gt centre of the windows with people: x = (100 + 200 + 50 + 150) / 4 = 125, y = 100
    assert out["center_error_const"] == pytest.approx((25 + 75 + 25) / 3)
    assert localization_errors(images[3:])["center_error"] == -1.0
