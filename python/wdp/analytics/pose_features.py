"""Scale-free geometry of 2-D poses: torso angle, leg geometry, extents (vectorized over people).

Image y grows downwards. Lengths are in image units; the ratios the classifiers use divide them by the
torso length or by a per-track reference height, so they hold for pixels and normalized coordinates alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wdp.tracking.detections import (
    HEAD,
    L_ANKLE,
    L_HIP,
    L_KNEE,
    L_SHOULDER,
    R_ANKLE,
    R_HIP,
    R_KNEE,
    R_SHOULDER,
)


@dataclass(frozen=True, eq=False)
class PoseFeatures:
    """Per-person arrays (N,); NaN where the keypoints needed are not seen."""

    head_y: np.ndarray  # mean y of the visible head points
    shoulder_y: np.ndarray  # shoulder midpoint y
    hip_y: np.ndarray  # hip midpoint y
    torso_length: np.ndarray  # |shoulder mid - hip mid|
    torso_angle_deg: np.ndarray  # hip->shoulder direction vs image up: 0 upright, 90 horizontal
    leg_drop: np.ndarray  # (ankle mid y - hip mid y) / torso length: ~1.7 standing, ~1 sitting
    knee_drop: np.ndarray  # (knee mid y - hip mid y) / torso length: ~0.85 standing, ~0.3 sitting
    height: np.ndarray  # vertical extent of the visible keypoints
    width: np.ndarray  # horizontal extent of the visible keypoints

    def __len__(self) -> int:
        return len(self.hip_y)


def _pair_mid(kp: np.ndarray, vis: np.ndarray, a: int, b: int) -> np.ndarray:
    """(N, 2) midpoint of a left/right pair, the one seen point if only one is, NaN if neither."""
    w = vis[:, [a, b]].astype(np.float64)
    n = w.sum(1, keepdims=True)
    s = (kp[:, [a, b], :2] * w[..., None]).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s / n, np.nan)


def pose_features(keypoints: np.ndarray, min_score: float = 0.3) -> PoseFeatures:
    kp = np.asarray(keypoints, np.float64).reshape(-1, 17, 3)
    vis = (kp[..., 2] >= min_score) & np.isfinite(kp[..., :2]).all(-1)
    shoulder = _pair_mid(kp, vis, L_SHOULDER, R_SHOULDER)
    hip = _pair_mid(kp, vis, L_HIP, R_HIP)
    knee = _pair_mid(kp, vis, L_KNEE, R_KNEE)
    ankle = _pair_mid(kp, vis, L_ANKLE, R_ANKLE)
    head_w = vis[:, list(HEAD)]
    with np.errstate(invalid="ignore", divide="ignore"):
        head_y = (kp[:, list(HEAD), 1] * head_w).sum(1) / head_w.sum(1)
        head_y = np.where(head_w.any(1), head_y, np.nan)
        torso = shoulder - hip
        torso_len = np.hypot(torso[:, 0], torso[:, 1])
        # angle between the torso and image-up (0, -1)
        cos_up = np.clip(-torso[:, 1] / torso_len, -1.0, 1.0)
        angle = np.degrees(np.arccos(cos_up))
        safe_len = np.where(torso_len > 0, torso_len, np.nan)
        leg_drop = (ankle[:, 1] - hip[:, 1]) / safe_len
        knee_drop = (knee[:, 1] - hip[:, 1]) / safe_len
    xs = np.where(vis, kp[..., 0], np.nan)
    ys = np.where(vis, kp[..., 1], np.nan)
    any_vis = vis.any(1)
    height = np.full(len(kp), np.nan)
    width = np.full(len(kp), np.nan)
    if any_vis.any():
        height[any_vis] = np.nanmax(ys[any_vis], 1) - np.nanmin(ys[any_vis], 1)
        width[any_vis] = np.nanmax(xs[any_vis], 1) - np.nanmin(xs[any_vis], 1)
    return PoseFeatures(
        head_y=head_y,
        shoulder_y=shoulder[:, 1],
        hip_y=hip[:, 1],
        torso_length=torso_len,
        torso_angle_deg=angle,
        leg_drop=leg_drop,
        knee_drop=knee_drop,
        height=height,
        width=width,
    )


def ramp(x: np.ndarray | float, lo: float, hi: float) -> np.ndarray:
    """0 at ``lo``, 1 at ``hi``, linear between (either order); NaN stays NaN."""
    x = np.asarray(x, np.float64)
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0) if hi != lo else (x >= hi).astype(np.float64)
