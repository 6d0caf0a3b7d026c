"""LightningModule for activity/fall nets: class-balanced cross-entropy on the activities plus a weighted binary
loss on the fall head (when the net has one); keeps the weights of the best validation epoch."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F

from wdp.model.activity_net import ActivityExport


def balanced_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """n / (k * count) per class (sklearn's 'balanced'); a class absent from training weighs 0."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    present = counts > 0
    w = np.zeros(num_classes)
    w[present] = counts.sum() / (present.sum() * counts[present])
    return torch.as_tensor(w, dtype=torch.float32)


def macro_f1(y: np.ndarray, pred: np.ndarray, num_classes: int) -> float:
    f1 = []
    for c in range(num_classes):
        tp = np.sum((pred == c) & (y == c))
        fp = np.sum((pred == c) & (y != c))
        fn = np.sum((pred != c) & (y == c))
        if tp + fp + fn:
            f1.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1)) if f1 else 0.0


class ActivityLitModule(pl.LightningModule):
    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        fall_index: int,
        class_weights: torch.Tensor,
        fall_pos_weight: float,
        optimizer: Callable[..., torch.optim.Optimizer],
        label_smoothing: float = 0.05,
        fall_loss_weight: float = 1.0,
        noise_std: float = 0.0,
        channel_dropout: float = 0.0,
        gain_jitter: float = 0.0,
    ) -> None:
        """Augmentations (training batches only): noise_std: Gaussian noise; channel_dropout: share of feature
        channels zeroed per window (no single subcarrier can carry a class: people and rooms move different
        ones); gain_jitter: each channel scaled by exp(N(0, gain_jitter)) (motion strength varies with distance)."""
        super().__init__()
        self.net = net
        self.num_classes = num_classes
        self.fall_index = fall_index
        self.register_buffer("class_weights", class_weights)
        self.fall_pos_weight = float(fall_pos_weight)
        self.optimizer_factory = optimizer
        self.label_smoothing = label_smoothing
        self.fall_loss_weight = fall_loss_weight
        self.noise_std = noise_std
        self.channel_dropout = channel_dropout
        self.gain_jitter = gain_jitter
        self.best_score = -1.0
        self.best_epoch = -1
        self.best_state: dict[str, Any] | None = None
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.net(x)

    def losses(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        logits, fall = self.net(x)
        out = {"activity": F.cross_entropy(logits, y, weight=self.class_weights, label_smoothing=self.label_smoothing)}
        if fall is not None:
            target = (y == self.fall_index).float()
            pos = torch.tensor(self.fall_pos_weight, device=x.device)
            out["fall"] = self.fall_loss_weight * F.binary_cross_entropy_with_logits(fall, target, pos_weight=pos)
        out["loss"] = sum(out.values())
        return out

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        if self.gain_jitter > 0:
            x = x * torch.exp(self.gain_jitter * torch.randn(x.shape[0], 1, x.shape[2], device=x.device))
        if self.channel_dropout > 0:
            keep = torch.rand(x.shape[0], 1, x.shape[2], device=x.device) >= self.channel_dropout
            x = x * keep
        if self.noise_std > 0:
            x = x + self.noise_std * torch.randn_like(x)
        losses = self.losses(x, y)
        self.log("train/loss", losses["loss"], prog_bar=False, on_epoch=True, on_step=False, batch_size=len(y))
        return losses["loss"]

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits, _ = self.net(x)
        self._val.append((logits.argmax(1).cpu(), y.cpu()))

    def on_validation_epoch_end(self) -> None:
        if not self._val or self.trainer.sanity_checking:
            self._val.clear()
            return
        pred = torch.cat([p for p, _ in self._val]).numpy()
        y = torch.cat([t for _, t in self._val]).numpy()
        self._val.clear()
        score = macro_f1(y, pred, self.num_classes)
        self.log("val/macro_f1", score)
        if score > self.best_score:  # first best wins ties: the earlier epoch
            self.best_score, self.best_epoch = score, int(self.current_epoch)
            self.best_state = copy.deepcopy(self.net.state_dict())

    def configure_optimizers(self) -> Any:
        opt = self.optimizer_factory(self.net.parameters())
        epochs = max(int(self.trainer.max_epochs or 1), 1)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}

    def restore_best(self) -> None:
        if self.best_state is not None:
            self.net.load_state_dict(self.best_state)

    def exportable(self) -> nn.Module:
        return ActivityExport(self.net, self.fall_index)
