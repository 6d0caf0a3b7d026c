"""LightningModule around a plain pose net (the net is what gets exported, never this wrapper)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from wdp.model.decode import decode_densepose, decode_poses
from wdp.model.dense import people_maps
from wdp.model.metrics import (
    DenseAP,
    ImagePoses,
    PartConfusion,
    image_poses,
    keypoint_ap,
    localization_errors,
    pose_errors,
)
from wdp.model.spec import net_input_names
from wdp.train.losses import compute_losses
from wdp.train.targets import encode_targets


class PoseEvaluator:
    """Accumulates decoded predictions and labels of one stage and computes all metrics at the end.

    AP uses every decoded person with its score (as COCO does); PCK and joint errors only count people scoring
    >= `min_score`, so a missed person fails its joints instead of borrowing a low-confidence guess. The dense
    metric (dpAP over GPS) scores the people >= `min_score` with their scores: the window's one part map is
    split among them (wdp.model.dense), and a low-scoring duplicate would take cells from the real person.
    """

    def __init__(self, min_score: float = 0.3) -> None:
        self.min_score = min_score
        self.images: list[ImagePoses] = []
        self.parts = PartConfusion()
        self.dense = DenseAP()
        self.count_hits = np.zeros(2, np.int64)  # (count right, presence right) over windows
        self.count_windows = 0
        self.floor_pred: list[np.ndarray] = []
        self.floor_true: list[np.ndarray] = []

    def add_count(self, logits: torch.Tensor, num_people: torch.Tensor) -> None:
        """The person-count head against the label: exact count and presence (count > 0) accuracy."""
        pred = logits.detach().argmax(1).cpu().numpy()
        true = num_people.cpu().numpy().reshape(-1)
        self.count_hits += ((pred == true).sum(), ((pred > 0) == (true > 0)).sum())
        self.count_windows += len(true)

    def add_floor(self, pred: torch.Tensor, floor_xy: torch.Tensor, num_people: torch.Tensor) -> None:
        """The floor head against the first person's true floor position (windows with a person)."""
        has = (num_people.reshape(-1) > 0).cpu().numpy()
        self.floor_pred.append(pred.detach().cpu().double().numpy()[has])
        self.floor_true.append(floor_xy[:, 0].cpu().double().numpy()[has])

    def add(self, decoded, parts: torch.Tensor, uv: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> None:
        self.images += image_poses(
            decoded.keypoints.detach().cpu().double().numpy(),
            decoded.scores.detach().cpu().double().numpy(),
            batch["keypoints"].cpu().double().numpy(),
            batch["person_area"].cpu().double().numpy(),
            batch["boxes"].cpu().double().numpy(),
            batch["num_people"].cpu().numpy(),
        )
        self.parts.add(
            parts.cpu().numpy(),
            batch["part_mask"].cpu().numpy(),
            uv.detach().cpu().numpy(),
            batch["uv"].cpu().numpy(),
        )
        self.add_dense(
            decoded.keypoints.detach().cpu().double().numpy(),
            decoded.boxes.detach().cpu().double().numpy(),
            decoded.scores.detach().cpu().double().numpy(),
            parts.cpu().numpy(),
            uv.detach().cpu().numpy(),
            batch,
        )

    def add_dense(self, keypoints, boxes, scores, parts, uv, batch: Mapping[str, torch.Tensor]) -> None:
        """Per window: the detections >= min_score and the labelled people, each with its share of the map."""
        gt_parts, gt_uv = batch["part_mask"].cpu().numpy(), batch["uv"].cpu().numpy()
        gt_kp, gt_boxes = batch["keypoints"].cpu().double().numpy(), batch["boxes"].cpu().double().numpy()
        for i, n in enumerate(int(k) for k in batch["num_people"].cpu().numpy()):
            keep = scores[i] >= self.min_score
            dt = people_maps(parts[i], uv[i], keypoints[i][keep], boxes[i][keep])
            gt = people_maps(gt_parts[i], gt_uv[i], gt_kp[i, :n], gt_boxes[i, :n])
            self.dense.add(dt, scores[i][keep], gt)

    def _floor(self) -> dict[str, float]:
        """Median floor error (m) and that of the best constant in hindsight (the labels' mean)."""
        if not self.floor_true:
            return {}
        pred, true = np.concatenate(self.floor_pred), np.concatenate(self.floor_true)
        if not len(true):
            return {}
        const = true.mean(axis=0, keepdims=True)
        return {
            "floor_error": float(np.median(np.linalg.norm(pred - true, axis=1))),
            "floor_error_constant": float(np.median(np.linalg.norm(const - true, axis=1))),
        }

    def compute(self) -> dict[str, float]:
        if not self.images:
            return {}
        errors = pose_errors(self.images, min_score=self.min_score)
        count = (
            {
                "count_accuracy": self.count_hits[0] / self.count_windows,
                "presence_accuracy": self.count_hits[1] / self.count_windows,
            }
            if self.count_windows
            else {}
        )
        return {
            **count,
            **self._floor(),
            **keypoint_ap(self.images),
            **errors,
            **localization_errors(self.images),
            **self.parts.compute(),
            **self.dense.compute(),
        }


class PoseLitModule(pl.LightningModule):
    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        loss_weights: Mapping[str, float] | None = None,
        heatmap_loss: str = "focal",
        background_weight: float = 1.0,
        targets: Mapping[str, float] | None = None,
        decode: Mapping[str, float] | None = None,
        name: str = "net",
        metric_min_score: float = 0.3,
    ) -> None:
        """`name` is the net's config name (paper, wdpnet): recorded in hparams and the model card.
        `metric_min_score`: person score a detection needs to count for PCK / joint error (not for AP)."""
        super().__init__()
        # the net is a constructor argument (Hydra instantiates it), not a hyperparameter
        self.save_hyperparameters(logger=False, ignore=["net"])
        self.net = net
        self.loss_weights = dict(loss_weights or {})
        self.target_cfg = dict(targets or {})
        self.decode_cfg = dict(decode or {})
        self.evaluators: dict[str, PoseEvaluator] = {}

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The net on its inputs (amplitude, phase, and the room inputs for nets that read them)."""
        return self.net(*inputs)

    def _losses(self, batch: Mapping[str, torch.Tensor]) -> tuple[tuple[torch.Tensor, ...], dict[str, torch.Tensor]]:
        # losses and decoding in float32 also under bf16/16-bit mixed precision
        outputs = tuple(o.float() for o in self.net(*(batch[k] for k in net_input_names(self.net))))
        target = encode_targets(batch, **self.target_cfg)
        losses = compute_losses(
            outputs, target, self.loss_weights, self.hparams.heatmap_loss, self.hparams.background_weight
        )
        return outputs, losses

    def training_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        _, losses = self._losses(batch)
        n = len(batch["amplitude"])
        self.log("train/loss", losses["loss"], on_step=True, on_epoch=True, prog_bar=True, batch_size=n)
        self.log_dict(
            {f"train/{k}": v for k, v in losses.items() if k != "loss"},
            on_step=False,
            on_epoch=True,
            batch_size=n,
        )
        return losses["loss"]

    def _eval_step(self, stage: str, batch: Mapping[str, torch.Tensor]) -> None:
        outputs, losses = self._losses(batch)
        n = len(batch["amplitude"])
        self.log(f"{stage}/loss", losses["loss"], on_epoch=True, prog_bar=True, batch_size=n)
        self.log_dict({f"{stage}/{k}": v for k, v in losses.items() if k != "loss"}, on_epoch=True, batch_size=n)
        center, offsets, keypoint_heatmaps, part_logits, uv = outputs[:5]
        if len(outputs) > 5:
            self.evaluators[stage].add_count(outputs[5], batch["num_people"])
        if len(outputs) > 6:
            self.evaluators[stage].add_floor(outputs[6], batch["floor_xy"], batch["num_people"])
        decoded = decode_poses(center, offsets, keypoint_heatmaps, **self.decode_cfg)
        parts, uv_on_body = decode_densepose(part_logits, uv)
        self.evaluators[stage].add(decoded, parts, uv_on_body, batch)

    def _eval_epoch_end(self, stage: str) -> None:
        metrics = self.evaluators.pop(stage).compute()
        if metrics:
            self.log(f"{stage}/ap", float(metrics.pop("ap")), prog_bar=True)
            self.log_dict({f"{stage}/{k}": float(v) for k, v in metrics.items()})

    def on_validation_epoch_start(self) -> None:
        self.evaluators["val"] = PoseEvaluator(self.hparams.metric_min_score)

    def validation_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step("val", batch)

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def on_test_epoch_start(self) -> None:
        self.evaluators["test"] = PoseEvaluator(self.hparams.metric_min_score)

    def test_step(self, batch: Mapping[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step("test", batch)

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    def configure_optimizers(self) -> Any:
        optimizer = self.hparams.optimizer(params=self.parameters())
        if self.hparams.scheduler is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": self.hparams.scheduler(optimizer=optimizer),
                "monitor": "val/loss",
                "interval": "epoch",
                "frequency": 1,
            },
        }


def predictions_numpy(net: nn.Module, batch: Mapping[str, torch.Tensor], decode: Mapping[str, float] | None = None):
    """Eval-mode forward + decode of a batch -> keypoints (B,K,17,3), scores (B,K), parts (B,H,W) (numpy)."""
    was_training = net.training
    net.eval()
    with torch.no_grad():
        center, offsets, kh, part_logits, uv = net(*(batch[k] for k in net_input_names(net)))[:5]
        decoded = decode_poses(center, offsets, kh, **dict(decode or {}))
        parts, _ = decode_densepose(part_logits, uv)
    net.train(was_training)
    return decoded.keypoints.cpu().numpy(), decoded.scores.cpu().numpy(), parts.cpu().numpy().astype(np.int64)
