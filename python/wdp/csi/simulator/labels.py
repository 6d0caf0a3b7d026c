"""Camera labels: COCO keypoints, boxes and a DensePose-like part / U / V map rendered from 3D poses.

Approximations (documented, not DensePose's SMPL charts):
* Every body segment is a capsule (a projected line with a radius: limb radius times focal / depth);
  the torso's radius depends on the view (its elliptic cross-section, wide across the shoulders,
  thinner front to back). Pixels take the part of the nearest capsule surface (z-buffer over all
  people), so nearer people and limbs occlude farther ones.
* Part ids follow DENSEPOSE_PARTS: torso and legs show their front id when the chest faces the camera
  and their back id otherwise; arm pixels on the side of the limb axis that faces the torso get the
  inside id, the others the outside id; head pixels on the person's right get head_right.
* U runs along the limb axis from the proximal joint (0) to the distal joint (1) (torso: hips ->
  neck; head: chin -> crown); V runs across it from one silhouette edge (0) to the other (1).
* Keypoints are visible (v=2) when in front of the camera and inside the image, else (0, 0, 0);
  self-occlusion is not modelled. Boxes span the projected capsules, clipped to the image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from wdp import schemas_sample as S
from wdp.csi.simulator.body import (
    HEAD_HIGH,
    HEAD_LOW,
    NECK,
    PELVIS,
    SEG_A,
    SEG_B,
    SEGMENTS,
    BodyShape,
)
from wdp.csi.simulator.camera import MIN_DEPTH_M, Camera

_KIND = [s[5] for s in SEGMENTS]
_IDS = np.array([s[6] for s in SEGMENTS])  # (n_seg, 2)
_FRONT = np.array([k == "front" for k in _KIND])
_ARM = np.array([k == "arm" for k in _KIND])
_HEAD = _KIND.index("head")
_TORSO = 0


@dataclass(frozen=True, eq=False)
class PersonView:
    """One person at one instant, as the renderer needs it."""

    shape: BodyShape
    joints: np.ndarray  # (N_JOINTS, 3) world
    forward: np.ndarray  # (3,)
    left: np.ndarray  # (3,)
    activity: int


def _segment_radii(view: PersonView, camera: Camera) -> np.ndarray:
    r = view.shape.seg_radius.copy()
    j = view.joints
    axis = j[NECK] - j[PELVIS]
    mid = 0.5 * (j[NECK] + j[PELVIS])
    e = _cross(axis, mid - camera.position)  # across the torso as seen from the camera
    ne = np.linalg.norm(e)
    if ne > 1e-9:
        e /= ne
        r[_TORSO] = np.hypot(view.shape.torso_lateral * (e @ view.left), r[_TORSO] * (e @ view.forward))
    return r


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product of two 3-vectors (np.cross costs ~50x more for single vectors)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def render_labels(
    camera: Camera, people: Sequence[PersonView], map_hw: tuple[int, int] = (S.MAP_H, S.MAP_W)
) -> tuple[dict[str, np.ndarray], list[int]]:
    """Labels of one instant (sample arrays except amplitude/phase/fall) and the scene indices of the
    people that got a slot."""
    out = _empty_labels(map_hw)
    mh, mw = map_hw
    zbuf = np.full((mh, mw), np.inf)
    sx, sy = mw / camera.width, mh / camera.height
    listed: list[int] = []
    for pi, view in enumerate(people):
        xy, z = camera.project(view.joints)
        kp_vis = camera.in_image(xy[: S.N_KEYPOINTS], z[: S.N_KEYPOINTS])
        r3 = _segment_radii(view, camera)
        za, zb = z[SEG_A], z[SEG_B]
        valid = (za > MIN_DEPTH_M) & (zb > MIN_DEPTH_M)
        if not valid.any():
            continue
        r_px = camera.focal * r3 / np.maximum(0.5 * (za + zb), MIN_DEPTH_M)
        a_px, b_px = xy[SEG_A], xy[SEG_B]

        if kp_vis.any() and len(listed) < S.MAX_PEOPLE:
            slot = len(listed)
            listed.append(pi)
            kp = out["keypoints"][slot]
            kp[kp_vis, :2] = xy[: S.N_KEYPOINTS][kp_vis]
            kp[kp_vis, 2] = S.VIS_VISIBLE
            lo = np.minimum(a_px, b_px)[valid] - r_px[valid, None]
            hi = np.maximum(a_px, b_px)[valid] + r_px[valid, None]
            x0, y0 = np.clip(lo.min(0), 0, [camera.width, camera.height])
            x1, y1 = np.clip(hi.max(0), 0, [camera.width, camera.height])
            out["boxes"][slot] = (x0, y0, x1, y1)
            out["person_area"][slot] = (x1 - x0) * (y1 - y0)
            out["activity"][slot] = view.activity

        # ---- part map (map pixel units) ----
        a = a_px * (sx, sy)
        b = b_px * (sx, sy)
        rad = r_px * sx
        lo = np.floor((np.minimum(a, b) - rad[:, None])[valid].min(0)).astype(int)
        hi = np.ceil((np.maximum(a, b) + rad[:, None])[valid].max(0)).astype(int)
        x_lo, y_lo = np.maximum(lo, 0)
        x_hi, y_hi = min(hi[0], mw), min(hi[1], mh)
        if x_lo >= x_hi or y_lo >= y_hi:
            continue
        gx = np.arange(x_lo, x_hi, dtype=np.float32) + 0.5
        gy = np.arange(y_lo, y_hi, dtype=np.float32) + 0.5
        px = np.tile(gx, len(gy))
        py = np.repeat(gy, len(gx))
        a32, d32 = a.astype(np.float32), (b - a).astype(np.float32)
        len2 = np.sum(d32 * d32, axis=1) + np.float32(1e-9)
        rad2 = np.maximum(rad * rad, 1e-12).astype(np.float32)[:, None]
        rel_x = px[None, :] - a32[:, 0, None]  # (n_seg, M)
        rel_y = py[None, :] - a32[:, 1, None]
        dx, dy = d32[:, 0, None], d32[:, 1, None]
        u = np.clip((rel_x * dx + rel_y * dy) / len2[:, None], 0.0, 1.0)
        ox = rel_x - u * dx
        oy = rel_y - u * dy
        dist2 = ox * ox + oy * oy
        inside = (dist2 <= rad2) & valid[:, None]
        cols = np.flatnonzero(inside.any(axis=0))  # pixels covered by some segment of this person
        if len(cols) == 0:
            continue
        inside, u, dist2 = inside[:, cols], u[:, cols], dist2[:, cols]
        rel_x, rel_y = rel_x[:, cols], rel_y[:, cols]
        depth = (za[:, None] + u * (zb - za)[:, None]).astype(np.float32) - r3[:, None].astype(np.float32) * np.sqrt(
            np.maximum(1 - dist2 / rad2, 0)
        )
        depth = np.where(inside, depth, np.inf)
        best = np.argmin(depth, axis=0)
        k = np.arange(len(cols))
        bd = depth[best, k]
        xs = (px[cols] - 0.5).astype(np.intp)
        ys = (py[cols] - 0.5).astype(np.intp)
        win = bd < zbuf[ys, xs]
        if not win.any():
            continue
        best, k, xs, ys = best[win], k[win], xs[win], ys[win]
        across = (dx[best, 0] * rel_y[best, k] - dy[best, 0] * rel_x[best, k]) / np.sqrt(len2[best])
        id_pos, id_neg = _part_ids(view, camera, a, b - a)
        zbuf[ys, xs] = bd[win]
        out["part_mask"][ys, xs] = np.where(across >= 0, id_pos[best], id_neg[best])
        out["uv"][0, ys, xs] = u[best, k]
        out["uv"][1, ys, xs] = 0.5 + 0.5 * np.clip(across / np.sqrt(rad2[best, 0]), -1, 1)
    out["num_people"] = np.int64(len(listed))
    return out, listed


def _part_ids(view: PersonView, camera: Camera, a: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Part id per segment for pixels on the positive / negative side of the segment axis."""
    j = view.joints
    mid3 = 0.5 * (j[SEG_A] + j[SEG_B])
    facing = (camera.position[None, :] - mid3) @ view.forward > 0
    id_pos = np.where(facing, _IDS[:, 0], _IDS[:, 1])
    id_neg = id_pos.copy()
    # Arms: the inside half is the one on the torso's side of the arm axis.
    torso_c = a[_TORSO] + 0.5 * d[_TORSO]
    rel = torso_c[None, :] - a
    inside_pos = (d[:, 0] * rel[:, 1] - d[:, 1] * rel[:, 0]) >= 0
    id_pos = np.where(_ARM, np.where(inside_pos, _IDS[:, 0], _IDS[:, 1]), id_pos)
    id_neg = np.where(_ARM, np.where(inside_pos, _IDS[:, 1], _IDS[:, 0]), id_neg)
    # Head: the half towards the person's right is head_right.
    hc = 0.5 * (j[HEAD_LOW] + j[HEAD_HIGH])
    (p0, p1), _ = camera.project(np.stack([hc, hc - 0.1 * view.left]))
    right = p1 - p0
    dh = d[_HEAD]
    right_pos = dh[0] * right[1] - dh[1] * right[0] >= 0
    id_pos[_HEAD] = _IDS[_HEAD, 0] if right_pos else _IDS[_HEAD, 1]
    id_neg[_HEAD] = _IDS[_HEAD, 1] if right_pos else _IDS[_HEAD, 0]
    return id_pos, id_neg


def _empty_labels(map_hw: tuple[int, int]) -> dict[str, np.ndarray]:
    mh, mw = map_hw
    return {
        "keypoints": np.zeros((S.MAX_PEOPLE, S.N_KEYPOINTS, 3), np.float32),
        "boxes": np.zeros((S.MAX_PEOPLE, 4), np.float32),
        "num_people": np.int64(0),
        "part_mask": np.zeros((mh, mw), np.uint8),
        "uv": np.zeros((2, mh, mw), np.float32),
        "activity": np.full(S.MAX_PEOPLE, -1, np.int64),
        "person_area": np.zeros(S.MAX_PEOPLE, np.float32),
    }
