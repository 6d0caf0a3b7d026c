"""Activity/fall nets over CSI windows (B, T, F): T resampled frames of F per-frame features (see
wdp.activity.preprocess). Each returns (class logits (B, C), fall logit (B,) or None).

* ActivityNet: the model. A 1x1 convolution mixes the features of one frame (subcarrier bins x antennas, whatever
  the card's hardware shape gives), strided temporal convolutions see 0.25-2 s motion patterns, mean+max pooling
  over the window, and two heads: the activities and a separate fall logit (trained with its own weighted loss so
  its threshold can be set for fall recall without moving the activity decision). With `stats` the heads also
  see per-feature window statistics (std, mean |first difference|, max |x|) through a small linear layer: how
  much the channel moves at all, which separates still postures from small motions on few training people.
* GruBaseline: SenseFi-style CNN+GRU (Yang et al., "SenseFi", Patterns 2023): a strided temporal convolution
  embeds the frames (half the steps), a GRU runs over time, its last hidden state -> classes; its fall
  probability is the fall class's softmax probability.
"""

from __future__ import annotations

import torch
from torch import nn


class ActivityNet(nn.Module):
    def __init__(
        self,
        in_features: int,
        num_classes: int,
        width: int = 64,
        depth: int = 3,
        kernel: int = 5,
        dropout: float = 0.2,
        stats: bool = False,
    ) -> None:
        super().__init__()
        self.stats = nn.Sequential(nn.Linear(3 * in_features, width), nn.GELU(), nn.Dropout(dropout)) if stats else None
        self.stem = nn.Sequential(
            nn.Conv1d(in_features, width, 1), nn.BatchNorm1d(width), nn.GELU(), nn.Dropout(dropout)
        )
        blocks = []
        for _ in range(depth):
            blocks += [
                nn.Conv1d(width, width, kernel, stride=2, padding=kernel // 2),
                nn.BatchNorm1d(width),
                nn.GELU(),
                nn.Dropout(dropout),
            ]
        self.temporal = nn.Sequential(*blocks)
        pooled = (3 if stats else 2) * width
        self.activity_head = nn.Linear(pooled, num_classes)
        self.fall_head = nn.Linear(pooled, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.temporal(self.stem(x.transpose(1, 2)))
        parts = [h.mean(dim=2), h.amax(dim=2)]
        if self.stats is not None:
            moves = (x[:, 1:] - x[:, :-1]).abs().mean(dim=1)
            parts.append(self.stats(torch.cat([x.std(dim=1), moves, x.abs().amax(dim=1)], dim=1)))
        pooled = torch.cat(parts, dim=1)
        return self.activity_head(pooled), self.fall_head(pooled).squeeze(1)


class GruBaseline(nn.Module):
    def __init__(self, in_features: int, num_classes: int, width: int = 64, dropout: float = 0.2) -> None:
        super().__init__()
        self.embed = nn.Sequential(
            nn.Conv1d(in_features, width, 5, stride=2, padding=2), nn.ReLU(), nn.Dropout(dropout)
        )
        self.gru = nn.GRU(width, width, batch_first=True)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        _, h = self.gru(self.embed(x.transpose(1, 2)).transpose(1, 2))
        return self.head(h[-1]), None


class ActivityExport(nn.Module):
    """What gets exported: windows -> (class probabilities, p_fall). Nets without a fall head use the fall
    class's probability."""

    def __init__(self, net: nn.Module, fall_index: int) -> None:
        super().__init__()
        self.net = net
        self.fall_index = fall_index

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, fall = self.net(x)
        probs = torch.softmax(logits, dim=1)
        p_fall = probs[:, self.fall_index] if fall is None else torch.sigmoid(fall)
        return probs, p_fall


ACTIVITY_NETS = {"activity_net": ActivityNet, "gru_baseline": GruBaseline}
