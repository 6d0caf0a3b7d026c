"""Vectorized floor-polygon geometry: containment and signed distance to the boundary."""

from __future__ import annotations

import numpy as np


def as_polygon(polygon: object) -> np.ndarray:
    """(M, 2) float vertices (implicitly closed; a repeated closing vertex is dropped)."""
    poly = np.asarray(polygon, np.float64).reshape(-1, 2)
    if len(poly) > 1 and np.array_equal(poly[0], poly[-1]):
        poly = poly[:-1]
    if len(poly) < 3 or not np.isfinite(poly).all():
        raise ValueError("a polygon needs at least 3 finite vertices")
    return poly


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(N,) bool: even-odd rule (a ray towards +x crosses the boundary an odd number of times).
    Works for concave and self-intersecting polygons of either orientation; NaN points are outside."""
    p = np.asarray(points, np.float64).reshape(-1, 2)
    poly = as_polygon(polygon)
    x, y = p[:, 0:1], p[:, 1:2]
    x0, y0 = poly[:, 0], poly[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    # Half-open rule on y ((y0 <= y) != (y1 <= y)) counts a vertex on the ray once.
    straddle = (y0 <= y) != (y1 <= y)
    with np.errstate(all="ignore"):  # horizontal edges never straddle; their NaN/inf is masked
        x_cross = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    crosses = straddle & (x < x_cross)
    return (crosses.sum(axis=1) % 2) == 1


def distance_to_boundary(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(N,) Euclidean distance from each point to the nearest polygon edge."""
    p = np.asarray(points, np.float64).reshape(-1, 2)
    poly = as_polygon(polygon)
    a = poly
    b = np.roll(poly, -1, axis=0)
    ab = b - a  # (M, 2)
    ap = p[:, None, :] - a[None]  # (N, M, 2)
    len2 = (ab**2).sum(1)
    u = np.clip((ap * ab[None]).sum(-1) / np.where(len2 > 0, len2, 1.0), 0.0, 1.0)
    closest = a[None] + u[..., None] * ab[None]
    return np.sqrt(((p[:, None, :] - closest) ** 2).sum(-1)).min(axis=1)


def signed_distance(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(N,) distance to the boundary, positive inside the polygon and negative outside (NaN for NaN)."""
    p = np.asarray(points, np.float64).reshape(-1, 2)
    d = distance_to_boundary(p, polygon)
    out = np.where(points_in_polygon(p, polygon), d, -d)
    return np.where(np.isfinite(p).all(axis=1), out, np.nan)
