"""Per-frame pose detections (the model's output, the tracker's input) and COCO keypoint constants."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wdp.schemas_sample import COCO_OKS_SIGMAS

N_KEYPOINTS = 17
NOSE, L_EYE, R_EYE, L_EAR, R_EAR = 0, 1, 2, 3, 4
L_SHOULDER, R_SHOULDER, L_ELBOW, R_ELBOW, L_WRIST, R_WRIST = 5, 6, 7, 8, 9, 10
L_HIP, R_HIP, L_KNEE, R_KNEE, L_ANKLE, R_ANKLE = 11, 12, 13, 14, 15, 16
HEAD = (NOSE, L_EYE, R_EYE, L_EAR, R_EAR)

# COCO per-keypoint OKS constants (pycocotools: sigmas / 10; kappa = 2 * sigma).
COCO_SIGMAS = np.array(COCO_OKS_SIGMAS)


@dataclass(frozen=True, eq=False)
class Detections:
    """People found in one frame: ``keypoints`` (N, 17, 3) as (x, y, score), ``boxes`` (N, 4) as
    (x0, y0, x1, y1) and ``scores`` (N,), all in one image unit (pixels or normalized; the tracker's
    ``scale`` says which)."""

    keypoints: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, N_KEYPOINTS, 3)), np.zeros((0, 4)), np.zeros(0))

    @classmethod
    def from_arrays(
        cls,
        keypoints: np.ndarray,
        boxes: np.ndarray | None = None,
        scores: np.ndarray | None = None,
        *,
        min_keypoint_score: float = 0.05,
    ) -> Detections:
        """Validate shapes and clean values: non-finite keypoints become invisible (score 0), missing or
        non-finite boxes are taken from the visible keypoints, missing scores are the mean keypoint score,
        and a detection with neither a usable box nor a visible keypoint is dropped."""
        kp = np.array(keypoints, np.float64, copy=True)
        if kp.ndim == 2 and kp.shape == (N_KEYPOINTS, 3):
            kp = kp[None]
        if kp.ndim != 3 or kp.shape[1:] != (N_KEYPOINTS, 3):
            raise ValueError(f"keypoints must be (N, {N_KEYPOINTS}, 3), got {kp.shape}")
        n = len(kp)
        bad = ~np.isfinite(kp).all(axis=2)
        kp[bad] = 0.0
        kp[..., 2] = np.clip(kp[..., 2], 0.0, 1.0)
        visible = kp[..., 2] >= min_keypoint_score

        if boxes is None:
            bx = np.full((n, 4), np.nan)
        else:
            bx = np.array(boxes, np.float64, copy=True).reshape(n, 4)
        bx = np.concatenate([np.minimum(bx[:, :2], bx[:, 2:]), np.maximum(bx[:, :2], bx[:, 2:])], axis=1)
        need = ~np.isfinite(bx).all(axis=1)
        if need.any():
            bx[need] = keypoint_boxes(kp[need], visible[need])

        if scores is None:
            sc = np.where(visible, kp[..., 2], 0.0).sum(1) / np.maximum(visible.sum(1), 1)
        else:
            sc = np.array(scores, np.float64, copy=True).reshape(n)
            sc = np.where(np.isfinite(sc), np.clip(sc, 0.0, 1.0), 0.0)
        keep = np.isfinite(bx).all(axis=1)
        return cls(kp[keep], bx[keep], sc[keep])


def keypoint_boxes(keypoints: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """(N, 4) tight boxes around the visible keypoints (NaN rows where none is visible)."""
    xy = keypoints[..., :2]
    big = np.where(visible[..., None], xy, np.inf)
    small = np.where(visible[..., None], xy, -np.inf)
    lo = big.min(axis=1)
    hi = small.max(axis=1)
    out = np.concatenate([lo, hi], axis=1)
    out[~visible.any(axis=1)] = np.nan
    return out
