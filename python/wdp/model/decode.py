"""Net outputs -> people (keypoints in 256x256 image pixels, box, confidence) and DensePose maps.

Coordinates: map cell (row i, col j) is centred on image point ((j + 0.5) * 4, (i + 0.5) * 4) as in the data
contract (spec.image_to_map / map_to_image). Training targets (wdp.train.targets) use the same convention, so
decoding perfect outputs reproduces the labels exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from wdp.model.spec import MAX_PEOPLE, N_KEYPOINTS, map_to_image

# the keyword arguments of decode_poses that a model card's "decode" section carries (besides thresholds)
DECODE_PARAMS = ("max_people", "refine_radius", "refine_threshold", "box_margin")


@dataclass(frozen=True)
class DecodedPoses:
    """Fixed-size batch result: the top `max_people` center peaks per window, best first.

    keypoints (B, K, 17, 3) x, y, score; boxes (B, K, 4) x0, y0, x1, y1; scores (B, K) person confidence.
    Filter with `scores >= threshold` (see `to_people`).
    """

    keypoints: torch.Tensor
    boxes: torch.Tensor
    scores: torch.Tensor


def _local_peaks(heat: torch.Tensor) -> torch.Tensor:
    """Keep only 3x3 local maxima (CenterNet's max-pool NMS)."""
    return heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat)


def _subpixel(logheat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Parabola through log-heat at the peak and its neighbours; exact for a Gaussian peak.

    logheat (B, J, H, W); x, y (B, K, J) long. Returns (dx, dy) in cells, 0 at the map border.
    """
    b, j, h, w = logheat.shape
    flat = logheat.reshape(b, 1, j, h * w).expand(b, x.shape[1], j, h * w)

    def at(xx: torch.Tensor, yy: torch.Tensor) -> torch.Tensor:
        idx = (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)).unsqueeze(-1)
        return flat.gather(3, idx).squeeze(-1)

    c = at(x, y)
    out = []
    for lo, hi, pos, size in ((at(x - 1, y), at(x + 1, y), x, w), (at(x, y - 1), at(x, y + 1), y, h)):
        curv = lo - 2 * c + hi
        step = torch.where(
            curv < 0,
            0.5 * (lo - hi) / torch.where(curv < 0, curv, -torch.ones_like(curv)),
            torch.zeros_like(curv),
        )
        inside = (pos > 0) & (pos < size - 1)
        out.append(torch.where(inside, step.clamp(-0.5, 0.5), torch.zeros_like(step)))
    return out[0], out[1]


def decode_poses(
    center: torch.Tensor,
    offsets: torch.Tensor,
    keypoint_heatmaps: torch.Tensor,
    max_people: int = MAX_PEOPLE,
    refine_radius: float = 2.0,
    refine_threshold: float = 0.1,
    box_margin: float = 0.1,
) -> DecodedPoses:
    """Decode raw net outputs (logits for heatmaps) into people.

    A person is a center-heatmap peak; its joints are the peak cell plus the regressed offsets. A joint is
    then snapped to the strongest keypoint-heatmap peak within `refine_radius` cells if that peak scores above
    `refine_threshold` (sub-cell position from the log-parabola), which corrects small offset errors.
    Joint score = keypoint heatmap value there. Box = joints' extent grown by `box_margin` on each side.
    """
    b, _, h, w = center.shape
    heat = torch.sigmoid(center)
    scores, idx = _local_peaks(heat).reshape(b, h * w).topk(max_people, dim=1)
    cy = torch.div(idx, w, rounding_mode="floor").to(center.dtype)
    cx = (idx % w).to(center.dtype)

    off = offsets.reshape(b, N_KEYPOINTS, 2, h * w)
    gather_idx = idx[:, None, None, :].expand(b, N_KEYPOINTS, 2, max_people)
    off = off.gather(3, gather_idx).permute(0, 3, 1, 2)  # (B, K, J, 2)
    reg_x = cx[:, :, None] + off[..., 0]
    reg_y = cy[:, :, None] + off[..., 1]

    kheat = torch.sigmoid(keypoint_heatmaps)  # (B, J, H, W)
    kpeaks = _local_peaks(kheat)
    gx = torch.arange(w, dtype=center.dtype, device=center.device)
    gy = torch.arange(h, dtype=center.dtype, device=center.device)
    d2 = (gx[None, None, None, None, :] - reg_x[..., None, None]) ** 2 + (
        gy[None, None, None, :, None] - reg_y[..., None, None]
    ) ** 2  # (B, K, J, H, W)
    cand = torch.where(d2 <= refine_radius**2, kpeaks[:, None], torch.zeros_like(d2))
    best, best_idx = cand.reshape(b, max_people, N_KEYPOINTS, h * w).max(dim=3)
    px = best_idx % w
    py = torch.div(best_idx, w, rounding_mode="floor")
    dx, dy = _subpixel(torch.log(kheat.clamp_min(1e-6)), px, py)
    snap = best > refine_threshold
    x = torch.where(snap, px.to(center.dtype) + dx, reg_x)
    y = torch.where(snap, py.to(center.dtype) + dy, reg_y)

    return assemble_poses(x, y, kheat, scores, box_margin)


def assemble_poses(
    x: torch.Tensor, y: torch.Tensor, kheat: torch.Tensor, scores: torch.Tensor, box_margin: float
) -> DecodedPoses:
    """Joint positions (B, K, J) in map cells -> DecodedPoses in image pixels: each joint scored by the
    heatmap value at its final cell, boxes around the joints with a relative margin."""
    b, max_people = x.shape[:2]
    h, w = kheat.shape[-2:]
    xi = x.round().clamp(0, w - 1).long()
    yi = y.round().clamp(0, h - 1).long()
    kflat = kheat.reshape(b, 1, N_KEYPOINTS, h * w).expand(b, max_people, N_KEYPOINTS, h * w)
    kscore = kflat.gather(3, (yi * w + xi).unsqueeze(-1)).squeeze(-1)

    x = map_to_image(x)
    y = map_to_image(y)
    keypoints = torch.stack([x, y, kscore], dim=-1)
    x0, x1 = x.min(dim=2).values, x.max(dim=2).values
    y0, y1 = y.min(dim=2).values, y.max(dim=2).values
    mx, my = box_margin * (x1 - x0), box_margin * (y1 - y0)
    boxes = torch.stack([x0 - mx, y0 - my, x1 + mx, y1 + my], dim=-1)
    return DecodedPoses(keypoints=keypoints, boxes=boxes, scores=scores)


def decode_densepose(
    part_logits: torch.Tensor, uv: torch.Tensor, body_threshold: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 25, H, W) logits + (B, 2, H, W) uv -> part map (B, H, W) (0 = background), uv zeroed off-body.

    Coarse, then fine, as DensePose decodes (its coarse head says body or not, the fine head which part): a
    cell is body when P(body) = 1 - P(background) exceeds ``body_threshold``, and its part is the likeliest
    of the 24. A plain argmax over the 25 classes calls a cell background whenever the body's probability is
    spread over several parts: on the shipped model's test split it finds a third of the body IoU (0.09 vs
    0.27 at 0.5).
    """
    prob_bg = torch.softmax(part_logits, dim=1)[:, 0]
    body = prob_bg < 1.0 - body_threshold
    parts = torch.where(body, part_logits[:, 1:].argmax(dim=1) + 1, torch.zeros_like(prob_bg, dtype=torch.long))
    return parts, uv * body.unsqueeze(1).to(uv.dtype)


def to_people(decoded: DecodedPoses, min_score: float = 0.3) -> list[list[dict[str, np.ndarray | float]]]:
    """Per window, the people scoring >= min_score as dicts {keypoints (17, 3), box (4,), score}."""
    kp = decoded.keypoints.detach().cpu().numpy()
    bx = decoded.boxes.detach().cpu().numpy()
    sc = decoded.scores.detach().cpu().numpy()
    return [
        [
            {"keypoints": kp[i, k], "box": bx[i, k], "score": float(sc[i, k])}
            for k in range(sc.shape[1])
            if sc[i, k] >= min_score
        ]
        for i in range(sc.shape[0])
    ]
