"""Per-person DensePose maps from the nets' single part/UV map of a window.

The nets predict one part map (background + 24 parts) and one U/V map per window, not one per person. A
person's share of it is the body pixels nearest to that person's skeleton: every labelled cell inside a
person's (slightly grown) box is given to the person whose limb segments (COCO skeleton between joints
scoring >= ``min_keypoint_score``) pass closest to it; a cell inside no box belongs to nobody. The same split
turns the simulator's single label map into per-person ground truth for the dense metric
(wdp.model.metrics.dense_ap), so predictions and labels are cut the same way.

Coordinates are label-map cells (cell (r, c) centred on (c, r)); ``spec.image_to_map`` converts image pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wdp.model.spec import SKELETON, image_to_map

_SEG_A = np.array([a for a, _ in SKELETON])
_SEG_B = np.array([b for _, b in SKELETON])


@dataclass(frozen=True, eq=False)
class PersonDense:
    """One person's crop of the label map: ``box`` (x, y, w, h) in cells, ``parts`` (h, w) uint8 with the
    person's cells labelled (everything else 0), ``uv`` (2, h, w) float32 in [0, 1] (0 off the person)."""

    box: tuple[int, int, int, int]
    parts: np.ndarray
    uv: np.ndarray

    @property
    def cells(self) -> int:
        return int(np.count_nonzero(self.parts))


def _empty(uv_dtype: np.dtype) -> PersonDense:
    return PersonDense((0, 0, 0, 0), np.zeros((0, 0), np.uint8), np.zeros((2, 0, 0), uv_dtype))


def _segment_distance(px: np.ndarray, py: np.ndarray, kp: np.ndarray, min_score: float) -> np.ndarray:
    """Distance of points (px, py) to the nearest skeleton segment of one person (inf without joints)."""
    ok = (kp[_SEG_A, 2] >= min_score) & (kp[_SEG_B, 2] >= min_score)
    if not ok.any():
        vis = kp[:, 2] >= min_score
        if not vis.any():
            return np.full(px.shape, np.inf)
        d2 = (px[:, None] - kp[vis, 0][None]) ** 2 + (py[:, None] - kp[vis, 1][None]) ** 2
        return np.sqrt(d2.min(axis=1))
    ax, ay = kp[_SEG_A[ok], 0], kp[_SEG_A[ok], 1]
    dx, dy = kp[_SEG_B[ok], 0] - ax, kp[_SEG_B[ok], 1] - ay
    len2 = np.maximum(dx * dx + dy * dy, 1e-9)
    rx = px[:, None] - ax[None]
    ry = py[:, None] - ay[None]
    t = np.clip((rx * dx + ry * dy) / len2, 0.0, 1.0)
    ox, oy = rx - t * dx, ry - t * dy
    return np.sqrt((ox * ox + oy * oy).min(axis=1))


def split_by_person(
    parts: np.ndarray,
    uv: np.ndarray,
    keypoints: np.ndarray,
    boxes: np.ndarray,
    *,
    min_keypoint_score: float = 0.05,
    margin: float = 0.15,
) -> list[PersonDense]:
    """Cut a window's part map (H, W) and UV (2, H, W) into one PersonDense per person.

    ``keypoints`` (K, 17, 3) x, y, score and ``boxes`` (K, 4) x0, y0, x1, y1, both in map cells. A box is
    grown by ``margin`` of its size (at least one cell) on each side before it claims cells.
    """
    parts = np.asarray(parts)
    uv = np.asarray(uv)
    kp = np.asarray(keypoints, np.float64).reshape(-1, 17, 3)
    bx = np.asarray(boxes, np.float64).reshape(-1, 4)
    n = len(kp)
    if n == 0:
        return []
    h, w = parts.shape
    ys, xs = np.nonzero(parts)
    if len(ys) == 0:
        return [_empty(uv.dtype) for _ in range(n)]
    px, py = xs.astype(np.float64), ys.astype(np.float64)
    dist = np.full((n, len(ys)), np.inf)
    for k in range(n):
        x0, y0, x1, y1 = bx[k]
        if not np.isfinite(bx[k]).all():
            continue
        mx = max(margin * (x1 - x0), 1.0)
        my = max(margin * (y1 - y0), 1.0)
        inside = (px >= x0 - mx) & (px <= x1 + mx) & (py >= y0 - my) & (py <= y1 + my)
        if inside.any():
            dist[k, inside] = _segment_distance(px[inside], py[inside], kp[k], min_keypoint_score)
    owner = dist.argmin(axis=0)
    owned = np.isfinite(dist[owner, np.arange(len(ys))])
    out = []
    for k in range(n):
        sel = owned & (owner == k)
        if not sel.any():
            out.append(_empty(uv.dtype))
            continue
        yk, xk = ys[sel], xs[sel]
        cx0, cy0 = int(xk.min()), int(yk.min())
        cw, ch = int(xk.max()) - cx0 + 1, int(yk.max()) - cy0 + 1
        crop = np.zeros((ch, cw), np.uint8)
        crop[yk - cy0, xk - cx0] = parts[yk, xk]
        cuv = np.zeros((2, ch, cw), uv.dtype)
        cuv[:, yk - cy0, xk - cx0] = uv[:, yk, xk]
        out.append(PersonDense((cx0, cy0, cw, ch), crop, cuv))
    assert all(0 <= p.box[0] and p.box[0] + p.box[2] <= w and p.box[1] + p.box[3] <= h for p in out)
    return out


def paste(person: PersonDense, map_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A PersonDense back on the full map: parts (H, W) uint8 and uv (2, H, W) float32."""
    h, w = map_hw
    parts = np.zeros((h, w), np.uint8)
    uv = np.zeros((2, h, w), np.float32)
    x, y, cw, ch = person.box
    if cw and ch:
        parts[y : y + ch, x : x + cw] = person.parts
        uv[:, y : y + ch, x : x + cw] = person.uv
    return parts, uv


def people_maps(
    parts: np.ndarray,
    uv: np.ndarray,
    keypoints_px: np.ndarray,
    boxes_px: np.ndarray,
    *,
    min_keypoint_score: float = 0.05,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """split_by_person for people in image pixels (keypoints (K, 17, 3), boxes (K, 4)), each person pasted
    back on the full map: [(parts (H, W), uv (2, H, W))] (what wdp.model.metrics.DenseAP takes)."""
    kp = np.array(keypoints_px, np.float64, copy=True).reshape(-1, 17, 3)
    kp[..., :2] = image_to_map(kp[..., :2])
    bx = image_to_map(np.asarray(boxes_px, np.float64).reshape(-1, 4))
    cut = split_by_person(parts, uv, kp, bx, min_keypoint_score=min_keypoint_score)
    return [paste(p, parts.shape) for p in cut]
