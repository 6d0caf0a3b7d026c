"""Labels of a batch -> dense training targets at the 64x64 map resolution (torch, batched).

Map convention as in wdp.model.decode: cell j is centred on image x = (j + 0.5) * 4 (spec.image_to_map).
Gaussians are centred at the continuous position and scaled so the nearest cell is exactly 1: that cell is the
focal loss's positive, and the (scale-invariant) log-parabola in the decoder recovers the sub-cell position.
"""

from __future__ import annotations

import torch

from wdp.model.spec import MAP_H, MAP_W, MAX_PEOPLE, image_to_map


def gaussian_peaks(
    points: torch.Tensor, valid: torch.Tensor, sigma: float, h: int = MAP_H, w: int = MAP_W
) -> torch.Tensor:
    """points (..., 2) in map cells, valid (...) -> (..., h, w) peaks: 1 at the nearest cell, 0 if invalid."""
    gx = torch.arange(w, dtype=points.dtype, device=points.device)
    gy = torch.arange(h, dtype=points.dtype, device=points.device)
    px, py = points[..., 0, None], points[..., 1, None]
    ex = (gx - px) ** 2  # (..., w)
    ey = (gy - py) ** 2  # (..., h)
    nx = (px.round().clamp(0, w - 1) - px) ** 2
    ny = (py.round().clamp(0, h - 1) - py) ** 2
    ex = ex - nx  # dividing by the nearest cell's value == subtracting its exponent
    ey = ey - ny
    g = torch.exp(-(ey[..., :, None] + ex[..., None, :]) / (2 * sigma**2)).clamp(max=1.0)
    return g * valid[..., None, None].to(g.dtype)


def person_centers(keypoints: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Box centre in image pixels (B, P, 2); the mean of visible joints when the box is empty."""
    box_c = torch.stack([(boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2], dim=-1)
    vis = (keypoints[..., 2] > 0).to(keypoints.dtype)
    kp_c = (keypoints[..., :2] * vis[..., None]).sum(-2) / vis.sum(-1, keepdim=True).clamp_min(1)
    empty = ((boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1]) <= 0)[..., None]
    return torch.where(empty, kp_c, box_c)


def encode_targets(
    batch: dict[str, torch.Tensor], center_sigma: float = 2.0, keypoint_sigma: float = 1.5
) -> dict[str, torch.Tensor]:
    keypoints = batch["keypoints"].float()  # (B, P, 17, 3)
    boxes = batch["boxes"].float()
    b, p = keypoints.shape[:2]
    slot = torch.arange(p, device=keypoints.device)[None, :]
    visible = keypoints[..., 2] > 0
    has_box = (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])
    person = (slot < batch["num_people"].reshape(b, 1)) & (has_box | visible.any(-1))

    center = image_to_map(person_centers(keypoints, boxes))  # map cells
    center_cell = center.round()
    center_cell[..., 0] = center_cell[..., 0].clamp(0, MAP_W - 1)
    center_cell[..., 1] = center_cell[..., 1].clamp(0, MAP_H - 1)
    center_index = (center_cell[..., 1] * MAP_W + center_cell[..., 0]).long()

    center_map = gaussian_peaks(center, person, center_sigma).amax(dim=1, keepdim=True)  # (B, 1, H, W)
    joint_valid = visible & person[..., None]
    joints = image_to_map(keypoints[..., :2])
    keypoint_maps = gaussian_peaks(joints, joint_valid, keypoint_sigma).amax(dim=1)  # (B, 17, H, W)

    return {
        "center_heatmap": center_map,
        "keypoint_heatmaps": keypoint_maps,
        "center_index": center_index,  # (B, P) flat cell index of each person's center
        "person_mask": person,
        "offsets": joints - center_cell[..., None, :],  # (B, P, 17, 2) in cells
        "offset_mask": joint_valid,
        "part_mask": batch["part_mask"].long(),
        "uv": batch["uv"].float(),
        "num_people": batch["num_people"].long().reshape(b).clamp(0, MAX_PEOPLE),  # the count head's class
        **_floor_targets(batch, b),
    }


def _floor_targets(batch: dict[str, torch.Tensor], b: int) -> dict[str, torch.Tensor]:
    """The first person's floor position (m, receiver's frame) for the floor head, when the batch has it."""
    if "floor_xy" not in batch:
        return {}
    xy = batch["floor_xy"][:, 0].float()
    has = (batch["num_people"].reshape(b) > 0) & torch.isfinite(xy).all(1)
    return {"floor_xy": xy, "floor_mask": has.to(xy.dtype)}
