"""Track-to-detection costs and gated Hungarian assignment."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from wdp.tracking.detections import COCO_SIGMAS

MIN_COMMON_KEYPOINTS = 3  # fewer shared keypoints than this: compare box centres instead


def keypoint_distance_cost(
    track_xy: np.ndarray,
    track_visible: np.ndarray,
    track_size: np.ndarray,
    det_xy: np.ndarray,
    det_visible: np.ndarray,
    track_center: np.ndarray,
    det_center: np.ndarray,
) -> np.ndarray:
    """(T, D) mean distance between keypoints seen by both, in units of the track's body size
    (the larger side of its box). Pairs sharing too few keypoints use the box-centre distance."""
    d = np.linalg.norm(track_xy[:, None] - det_xy[None], axis=-1)  # (T, D, 17)
    common = track_visible[:, None] & det_visible[None]
    n = common.sum(-1)
    mean = np.where(common, d, 0.0).sum(-1) / np.maximum(n, 1)
    centre = np.linalg.norm(track_center[:, None] - det_center[None], axis=-1)
    dist = np.where(n >= MIN_COMMON_KEYPOINTS, mean, centre)
    return dist / np.maximum(track_size, 1e-9)[:, None]


def oks_cost(
    track_xy: np.ndarray,
    track_visible: np.ndarray,
    track_area: np.ndarray,
    det_xy: np.ndarray,
    det_visible: np.ndarray,
) -> np.ndarray:
    """(T, D) 1 - OKS (COCO object keypoint similarity; the track's box area is the object scale).
    Pairs sharing no keypoint cost 1."""
    d2 = ((track_xy[:, None] - det_xy[None]) ** 2).sum(-1)  # (T, D, 17)
    kappa2 = (2.0 * COCO_SIGMAS) ** 2
    e = np.exp(-d2 / (2.0 * np.maximum(track_area, 1e-12)[:, None, None] * kappa2))
    common = track_visible[:, None] & det_visible[None]
    n = common.sum(-1)
    oks = np.where(common, e, 0.0).sum(-1) / np.maximum(n, 1)
    return np.where(n > 0, 1.0 - oks, 1.0)


def gated_assignment(cost: np.ndarray, gate: float) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Minimum-cost matching that never pairs a row and column whose cost exceeds ``gate``.

    Returns (matches as (row, col), unmatched rows, unmatched cols), each sorted. Gated-out pairs get a
    cost larger than any feasible total, so the solver never trades a feasible match for them."""
    n_rows, n_cols = cost.shape
    if n_rows == 0 or n_cols == 0:
        return [], list(range(n_rows)), list(range(n_cols))
    feasible = np.isfinite(cost) & (cost <= gate)
    big = (abs(gate) + 1.0) * (min(n_rows, n_cols) + 1) * 10.0
    c = np.where(feasible, cost, big)
    rows, cols = linear_sum_assignment(c)
    matches = [(int(r), int(k)) for r, k in zip(rows, cols, strict=True) if feasible[r, k]]
    mr = {r for r, _ in matches}
    mc = {k for _, k in matches}
    return (
        matches,
        [r for r in range(n_rows) if r not in mr],
        [k for k in range(n_cols) if k not in mc],
    )
