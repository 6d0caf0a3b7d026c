"""Training losses; `compute_losses` returns a dict with every term and the weighted total under "loss"."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from wdp.model.spec import N_KEYPOINTS


def focal_heatmap_loss(
    logits: torch.Tensor, target: torch.Tensor, alpha: float = 2.0, beta: float = 4.0
) -> torch.Tensor:
    """CenterNet's penalty-reduced pixel focal loss; positives are the cells where target == 1."""
    pos = target >= 1.0
    log_p = F.logsigmoid(logits)
    log_not_p = F.logsigmoid(-logits)
    p = torch.exp(log_p)
    pos_term = (log_p * (1 - p) ** alpha)[pos].sum()
    neg_term = (log_not_p * p**alpha * (1 - target) ** beta)[~pos].sum()
    return -(pos_term + neg_term) / pos.sum().clamp_min(1)


def mse_heatmap_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(torch.sigmoid(logits), target)


def offset_loss(offsets: torch.Tensor, target: dict[str, torch.Tensor]) -> torch.Tensor:
    """L1 between regressed joint offsets at each true center cell and the true offsets (visible joints)."""
    b, _, h, w = offsets.shape
    p = target["center_index"].shape[1]
    pred = offsets.reshape(b, N_KEYPOINTS * 2, h * w)
    pred = pred.gather(2, target["center_index"][:, None, :].expand(b, N_KEYPOINTS * 2, p))
    pred = pred.reshape(b, N_KEYPOINTS, 2, p).permute(0, 3, 1, 2)  # (B, P, 17, 2)
    mask = target["offset_mask"][..., None].to(pred.dtype)
    return (torch.abs(pred - target["offsets"]) * mask).sum() / (2 * mask.sum()).clamp_min(1)


def compute_losses(
    outputs: tuple[torch.Tensor, ...],
    target: dict[str, torch.Tensor],
    weights: dict[str, float] | None = None,
    heatmap_loss: str = "focal",
    background_weight: float = 1.0,
) -> dict[str, torch.Tensor]:
    center, offsets, keypoint_heatmaps, part_logits, uv = outputs[:5]
    heat = focal_heatmap_loss if heatmap_loss == "focal" else mse_heatmap_loss
    class_weight = torch.ones(part_logits.shape[1], device=part_logits.device, dtype=part_logits.dtype)
    class_weight[0] = background_weight
    body = (target["part_mask"] > 0).unsqueeze(1).to(uv.dtype)
    terms = {
        "center": heat(center, target["center_heatmap"]),
        "offsets": offset_loss(offsets, target),
        "keypoint_heatmaps": heat(keypoint_heatmaps, target["keypoint_heatmaps"]),
        "parts": F.cross_entropy(part_logits, target["part_mask"], weight=class_weight),
        "uv": (torch.abs(uv - target["uv"]) * body).sum() / (2 * body.sum()).clamp_min(1),
    }
    if len(outputs) > 5:  # the person-count head (WdpNet(count_head=True))
        terms["count"] = F.cross_entropy(outputs[5], target["num_people"])
    if len(outputs) > 6:  # the floor head (nets with room inputs): metres, windows with a person
        has = target["floor_mask"]
        err = F.smooth_l1_loss(outputs[6], torch.nan_to_num(target["floor_xy"]), reduction="none").sum(1)
        terms["floor"] = (err * has).sum() / has.sum().clamp_min(1)
    w = weights or {}
    terms["loss"] = sum(float(w.get(k, 1.0)) * v for k, v in terms.items())
    return terms
