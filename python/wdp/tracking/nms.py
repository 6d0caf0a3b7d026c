"""Non-maximum suppression of the detections of one time slot, whatever router or window they came from.

The engine's cross-router fusion (wdp.engine.fusion) merges only poses that agree closely (OKS) and never two
detections of one router; a pose net with a coarse centre map also emits two peaks for one person. Both
reach the tracker as two detections of one person, and two confirmed tracks of one person are a ghost. Here,
greedily by score, a detection suppresses every weaker one that is the same person: object keypoint
similarity at least ``oks_threshold`` (COCO OKS, the stronger one's box area as scale), or box centres closer
than ``center_threshold`` times the larger of the two boxes' larger sides. The survivor keeps its own pose;
its score becomes the best of the group (two routers seeing a person make it no less likely).
"""

from __future__ import annotations

import numpy as np

from wdp.tracking.detections import COCO_SIGMAS

_KAPPA2 = (2.0 * COCO_SIGMAS) ** 2


def duplicate_groups(
    keypoints: np.ndarray,
    boxes: np.ndarray,
    scores: np.ndarray,
    visible: np.ndarray,
    *,
    oks_threshold: float,
    center_threshold: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the detections kept (in score order) and, per detection, the index it was merged into
    (itself if kept). ``keypoints`` (N, 17, >=2), ``boxes`` (N, 4), ``scores`` (N,), ``visible`` (N, 17)."""
    n = len(scores)
    owner = np.arange(n)
    if n < 2:
        return np.arange(n), owner
    xy = keypoints[..., :2]
    wh = np.maximum(boxes[:, 2:] - boxes[:, :2], 0.0)
    area = wh.prod(1)
    size = wh.max(1)
    centre = 0.5 * (boxes[:, :2] + boxes[:, 2:])
    d2 = ((xy[:, None] - xy[None]) ** 2).sum(-1)  # (N, N, 17)
    e = np.exp(-d2 / (2.0 * np.maximum(area, 1e-12)[:, None, None] * _KAPPA2))
    common = visible[:, None] & visible[None]
    n_common = common.sum(-1)
    oks = np.where(n_common > 0, np.where(common, e, 0.0).sum(-1) / np.maximum(n_common, 1), 0.0)
    dist = np.linalg.norm(centre[:, None] - centre[None], axis=-1)
    near = dist <= center_threshold * np.maximum(size[:, None], size[None])
    same = (oks >= oks_threshold) | near
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    taken = np.zeros(n, bool)
    for i in order:
        if taken[i]:
            continue
        kept.append(int(i))
        taken[i] = True
        dup = same[i] & ~taken
        owner[dup] = i
        taken |= dup
    return np.array(kept, dtype=np.int64), owner
