"""Image -> floor-plane localisation through a homography.

A person's floor position is where their feet are: the midpoint of the visible ankles (one ankle if only
one is seen; the bottom centre of the box if neither is), mapped to floor (x, y) metres by the 3x3
homography H from the image to the floor plane z = 0.

For a pinhole camera x_cam = R X + t with intrinsics K, a floor point (x, y, 0) images at
K [r1 r2 t] (x, y, 1)^T, so H = (K [r1 r2 t])^-1. H is kept with the sign for which the third
homogeneous coordinate is positive for floor points in front of the camera; image points whose ray
never meets the floor in front (at or above the horizon) map to NaN.
"""

from __future__ import annotations

import numpy as np

from wdp.tracking.detections import L_ANKLE, R_ANKLE


class FloorProjector:
    def __init__(self, image_to_floor: np.ndarray):
        h = np.array(image_to_floor, np.float64)
        if h.shape != (3, 3) or not np.isfinite(h).all() or abs(np.linalg.det(h)) < 1e-300:
            raise ValueError("image_to_floor must be a finite, invertible 3x3 matrix")
        self.H = h

    # ----------------------------------------------------------------------------------- construction

    @classmethod
    def from_camera(cls, K: np.ndarray, R: np.ndarray, t: np.ndarray, plane_height: float = 0.0) -> FloorProjector:
        """Camera with intrinsics ``K`` (3x3) and world->camera pose x_cam = R X + t (world z up,
        floor at z = 0). Image units are those of K (pixels, or normalized if K is).

        ``plane_height``: map image points on the horizontal plane this high instead (e.g. ~0.07 m, the
        ankle height of an adult, removes the parallax of ankle keypoints seen from a high camera); the
        result is still the floor (x, y) below the point."""
        K = np.asarray(K, np.float64)
        R = np.asarray(R, np.float64)
        t = np.asarray(t, np.float64).reshape(3)
        floor_to_image = K @ np.column_stack([R[:, 0], R[:, 1], t + plane_height * R[:, 2]])
        # inv(K[r1 r2 t]) (u, 1) = (x, y, 1) / z_cam: positive third coordinate <=> in front of the camera.
        return cls(np.linalg.inv(floor_to_image))

    @classmethod
    def from_correspondences(cls, image_points: np.ndarray, floor_points: np.ndarray) -> FloorProjector:
        """Least-squares (normalized DLT) homography from >= 4 image <-> floor point pairs, no three
        collinear, e.g. floor marks clicked in a camera frame."""
        src = np.asarray(image_points, np.float64).reshape(-1, 2)
        dst = np.asarray(floor_points, np.float64).reshape(-1, 2)
        if len(src) < 4 or len(src) != len(dst):
            raise ValueError("need at least 4 matching image/floor points")
        ts, td = _normalizing_transform(src), _normalizing_transform(dst)
        a = _apply(ts, src)
        b = _apply(td, dst)
        rows = []
        for (x, y), (u, v) in zip(a, b, strict=True):
            rows.append([-x, -y, -1, 0, 0, 0, u * x, u * y, u])
            rows.append([0, 0, 0, -x, -y, -1, v * x, v * y, v])
        _, _, vt = np.linalg.svd(np.asarray(rows))
        hn = vt[-1].reshape(3, 3)
        h = np.linalg.inv(td) @ hn @ ts
        w = (np.column_stack([src, np.ones(len(src))]) @ h.T)[:, 2]
        if np.median(w) < 0:
            h = -h
        return cls(h)

    def scaled(self, sx: float, sy: float | None = None) -> FloorProjector:
        """The same mapping for image coordinates in other units: pixel = (sx * u, sy * v); e.g. a pixel
        homography used on normalized coordinates of a W x H image is ``scaled(W, H)``."""
        sy = sx if sy is None else sy
        return FloorProjector(self.H @ np.diag([float(sx), float(sy), 1.0]))

    # ---------------------------------------------------------------------------------------- mapping

    def image_to_floor(self, points: np.ndarray) -> np.ndarray:
        """Image points (..., 2) -> floor points (..., 2) in metres; NaN where the ray misses the floor."""
        p = np.asarray(points, np.float64)
        hom = p @ self.H[:, :2].T + self.H[:, 2]
        w = hom[..., 2:3]
        with np.errstate(divide="ignore", invalid="ignore"):
            out = hom[..., :2] / w
        return np.where((w > 1e-12) & np.isfinite(out), out, np.nan)

    def floor_to_image(self, points: np.ndarray) -> np.ndarray:
        """Floor points (..., 2) -> image points (..., 2) (the inverse mapping)."""
        inv = np.linalg.inv(self.H)
        p = np.asarray(points, np.float64)
        hom = p @ inv[:, :2].T + inv[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            return hom[..., :2] / hom[..., 2:3]

    def locate(self, keypoints: np.ndarray, boxes: np.ndarray, min_score: float = 0.3) -> np.ndarray:
        """Floor positions (N, 2) of people with keypoints (N, 17, 3) and boxes (N, 4): ankle midpoint,
        else the one visible ankle, else the box's bottom centre."""
        return self.image_to_floor(foot_points(keypoints, boxes, min_score))


def foot_points(keypoints: np.ndarray, boxes: np.ndarray, min_score: float = 0.3) -> np.ndarray:
    """(N, 2) image point where each person touches the floor (see FloorProjector.locate)."""
    kp = np.asarray(keypoints, np.float64).reshape(-1, 17, 3)
    bx = np.asarray(boxes, np.float64).reshape(-1, 4)
    ankles = kp[:, [L_ANKLE, R_ANKLE]]
    seen = ankles[..., 2] >= min_score
    n_seen = seen.sum(1, keepdims=True)
    mid = np.where(seen[..., None], ankles[..., :2], 0.0).sum(1) / np.maximum(n_seen, 1)
    bottom = np.column_stack([0.5 * (bx[:, 0] + bx[:, 2]), bx[:, 3]])
    return np.where(n_seen > 0, mid, bottom)


def _normalizing_transform(p: np.ndarray) -> np.ndarray:
    c = p.mean(0)
    d = np.sqrt(((p - c) ** 2).sum(1)).mean()
    s = np.sqrt(2) / d if d > 0 else 1.0
    return np.array([[s, 0, -s * c[0]], [0, s, -s * c[1]], [0, 0, 1.0]])


def _apply(h: np.ndarray, p: np.ndarray) -> np.ndarray:
    hom = p @ h[:, :2].T + h[:, 2]
    return hom[:, :2] / hom[:, 2:3]
