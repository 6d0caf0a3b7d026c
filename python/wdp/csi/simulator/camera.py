"""Virtual pinhole camera that turns 3D joints into image-space labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_DEPTH_M = 0.05  # points closer than this (or behind the camera) do not project


@dataclass(frozen=True, eq=False)
class Camera:
    """Pinhole camera. ``rotation`` rows are the camera axes (x right, y down, z forward) in world
    coordinates, so camera coordinates are ``rotation @ (p - position)``."""

    position: np.ndarray
    rotation: np.ndarray
    focal: float
    width: int
    height: int

    @classmethod
    def look_at(cls, position: np.ndarray, target: np.ndarray, fov_deg: float, width: int, height: int) -> Camera:
        position = np.asarray(position, np.float64)
        forward = np.asarray(target, np.float64) - position
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, (0.0, 0.0, 1.0))
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        focal = 0.5 * width / np.tan(np.radians(fov_deg) / 2)
        return cls(position, np.stack([right, down, forward]), float(focal), width, height)

    @property
    def center(self) -> tuple[float, float]:
        return 0.5 * self.width, 0.5 * self.height

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World points (..., 3) -> camera coordinates (..., 3)."""
        return (np.asarray(points) - self.position) @ self.rotation.T

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (..., 3) -> (pixel xy (..., 2), depth (...)). Depth <= MIN_DEPTH_M means 'behind'."""
        pc = self.to_camera(points)
        z = pc[..., 2]
        zs = np.maximum(z, MIN_DEPTH_M)
        cx, cy = self.center
        xy = np.stack([self.focal * pc[..., 0] / zs + cx, self.focal * pc[..., 1] / zs + cy], axis=-1)
        return xy, z

    def in_image(self, xy: np.ndarray, depth: np.ndarray, margin: float = 0.0) -> np.ndarray:
        return (
            (depth > MIN_DEPTH_M)
            & (xy[..., 0] >= margin)
            & (xy[..., 0] < self.width - margin)
            & (xy[..., 1] >= margin)
            & (xy[..., 1] < self.height - margin)
        )
