"""Per-person DensePose maps from the nets' single part/UV map of a window.

The nets predict one part map (background + 24 parts) and one U/V map per window, not one per person. A
person's share of it is the body cells inside the person's (slightly grown) box; a cell inside several boxes
goes to the person whose limb segments (COCO skeleton between joints scoring >= ``min_keypoint_score``) pass
closest to it, and a cell inside no box belongs to nobody. The same split
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


def _skeleton_distance(px: np.ndarray, py: np.ndarray, kp: np.ndarray, min_score: float) -> np.ndarray:
    """(K, P) distance of points (px, py) to each person's nearest skeleton segment between joints scoring
    >= min_score; a person with no such segment uses its nearest such joint (inf without any)."""
    ok = (kp[:, _SEG_A, 2] >= min_score) & (kp[:, _SEG_B, 2] >= min_score)  # (K, S)
    ax, ay = kp[:, _SEG_A, 0], kp[:, _SEG_A, 1]
    dx, dy = kp[:, _SEG_B, 0] - ax, kp[:, _SEG_B, 1] - ay
    len2 = np.maximum(dx * dx + dy * dy, 1e-9)
    rx = px[None, :, None] - ax[:, None, :]  # (K, P, S)
    ry = py[None, :, None] - ay[:, None, :]
    t = np.clip((rx * dx[:, None] + ry * dy[:, None]) / len2[:, None], 0.0, 1.0)
    ox, oy = rx - t * dx[:, None], ry - t * dy[:, None]
    d2 = np.where(ok[:, None, :], ox * ox + oy * oy, np.inf).min(axis=2)
    for k in np.flatnonzero(~ok.any(axis=1)):  # no limb: the nearest visible joint, if any
        vis = kp[k, :, 2] >= min_score
        if vis.any():
            d2[k] = ((px[:, None] - kp[k, vis, 0]) ** 2 + (py[:, None] - kp[k, vis, 1]) ** 2).min(axis=1)
    return np.sqrt(d2)


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
    finite = np.isfinite(bx).all(axis=1)
    bx = np.where(finite[:, None], bx, 0.0)
    mx = np.maximum(margin * (bx[:, 2] - bx[:, 0]), 1.0)[:, None]
    my = np.maximum(margin * (bx[:, 3] - bx[:, 1]), 1.0)[:, None]
    inside = (
        finite[:, None]
        & (px[None] >= bx[:, :1] - mx)
        & (px[None] <= bx[:, 2:3] + mx)
        & (py[None] >= bx[:, 1:2] - my)
        & (py[None] <= bx[:, 3:4] + my)
    )  # (K, P)
    claims = inside.sum(axis=0)
    owner = inside.argmax(axis=0)  # the only claimant where there is one
    owned = claims > 0
    contested = claims > 1  # inside several boxes: the nearest skeleton wins (only these need distances)
    if contested.any():
        d = _skeleton_distance(px[contested], py[contested], kp, min_keypoint_score)
        d = np.where(inside[:, contested], d, np.inf)
        owner[contested] = d.argmin(axis=0)
        owned[contested] = np.isfinite(d.min(axis=0))
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
