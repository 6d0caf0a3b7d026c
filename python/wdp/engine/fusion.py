"""Fusing the detections of several routers in one time slot (OKS-NMS with keypoint averaging).

All routers of a deployment report poses in the same camera image frame (the model maps CSI to the image
of the camera it was trained with), so one person seen by two routers yields two detections of the same
pose. Greedy NMS by score: the best remaining detection starts a cluster and takes, from every OTHER router
(two detections of one router are two people as far as that router can tell), its best detection whose
object keypoint similarity (COCO OKS, scale = the seed's box area) is at least ``oks_threshold``. A
cluster becomes one detection: each keypoint is the score-weighted mean of the members that see it (score:
the best member's), the box the score-weighted mean box, the score the best score.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from wdp.tracking.detections import COCO_SIGMAS, Detections

_KAPPA2 = (2.0 * COCO_SIGMAS) ** 2


def oks_matrix(kp_a: np.ndarray, area_a: np.ndarray, kp_b: np.ndarray, min_keypoint_score: float) -> np.ndarray:
    """(A, B) OKS of poses ``kp_a`` (A, 17, 3) against ``kp_b`` (B, 17, 3) over keypoints both see; scale is
    the area of a's box. Pairs with no common keypoint score 0."""
    d2 = ((kp_a[:, None, :, :2] - kp_b[None, :, :, :2]) ** 2).sum(-1)
    e = np.exp(-d2 / (2.0 * np.maximum(area_a, 1e-9)[:, None, None] * _KAPPA2))
    common = (kp_a[:, None, :, 2] >= min_keypoint_score) & (kp_b[None, :, :, 2] >= min_keypoint_score)
    n = common.sum(-1)
    return np.where(n > 0, np.where(common, e, 0.0).sum(-1) / np.maximum(n, 1), 0.0)


def fuse_detections(
    per_router: Sequence[Detections], oks_threshold: float = 0.5, min_keypoint_score: float = 0.3
) -> Detections:
    """One Detections for a time slot from each router's (see the module docstring)."""
    parts = [d for d in per_router if len(d)]
    if not parts:
        return Detections.empty()
    if len(parts) == 1:
        return parts[0]
    kp = np.concatenate([d.keypoints for d in parts])
    boxes = np.concatenate([d.boxes for d in parts])
    scores = np.concatenate([d.scores for d in parts])
    router = np.concatenate([np.full(len(d), i) for i, d in enumerate(parts)])
    area = np.prod(np.maximum(boxes[:, 2:] - boxes[:, :2], 0.0), axis=1)
    oks = oks_matrix(kp, area, kp, min_keypoint_score)
    order = np.argsort(-scores, kind="stable")
    taken = np.zeros(len(scores), bool)
    out_kp, out_box, out_score = [], [], []
    for i in order:
        if taken[i]:
            continue
        members = [i]
        taken[i] = True
        for r in range(len(parts)):
            if r == router[i]:
                continue
            cand = np.flatnonzero((router == r) & ~taken & (oks[i] >= oks_threshold))
            if len(cand):
                j = cand[np.argmax(scores[cand])]
                members.append(j)
                taken[j] = True
        m = np.array(members)
        w = kp[m, :, 2] * (kp[m, :, 2] >= min_keypoint_score)  # (M, 17)
        wsum = w.sum(0)
        xy = np.where(
            wsum[:, None] > 0,
            (w[..., None] * kp[m, :, :2]).sum(0) / np.maximum(wsum, 1e-12)[:, None],
            kp[i, :, :2],
        )
        out_kp.append(np.concatenate([xy, kp[m, :, 2].max(0)[:, None]], axis=1))
        sw = scores[m] / max(scores[m].sum(), 1e-12)
        out_box.append((sw[:, None] * boxes[m]).sum(0))
        out_score.append(scores[i])
    return Detections(np.stack(out_kp), np.stack(out_box), np.array(out_score))
