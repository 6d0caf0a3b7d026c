"""The modality translation network of "DensePose From WiFi" (Geng, Huang, De la Torre, 2022).

Amplitude and sanitised phase (each 5 x 30 x 3 x 3, i.e. 150 x 3 x 3) are flattened and encoded by two MLPs,
fused into a 24 x 24 map, passed through a conv encoder (24 -> 6) and a deconv decoder into a 3-channel
image-like map; the paper feeds that to DensePose-RCNN, here a small U-Net at 64 x 64 with the shared dense
heads stands in for the ResNet-FPN + RoI heads (one stage, multi-person through person centers).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wdp.model.heads import DenseHeads, conv_bn_relu, normalize_amplitude
from wdp.model.spec import MAP_H, MAP_W, N_RX, N_SUB, N_TX, WINDOW

_FUSED_SIDE = 24


def _mlp(cin: int, hidden: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cin, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, cout), nn.ReLU(inplace=True))


class PaperNet(nn.Module):
    def __init__(
        self,
        width: int = 32,
        mlp_hidden: int = 512,
        head_channels: int = 32,
        input_shape: tuple[int, int, int, int] | list[int] | None = None,
    ) -> None:
        """`input_shape`: (window, subcarriers, rx, tx), default the paper's 5 x 30 x 3 x 3 (1350 = 150 x 3 x 3)."""
        super().__init__()
        shape = tuple(int(v) for v in (input_shape or (WINDOW, N_SUB, N_RX, N_TX)))
        if len(shape) != 4 or min(shape) < 1:
            raise ValueError(f"input_shape must be (window, subcarriers, rx, tx), not {input_shape}")
        self.input_shape = shape
        self.flat = shape[0] * shape[1] * shape[2] * shape[3]
        w = width
        self.amplitude_encoder = _mlp(self.flat, mlp_hidden, mlp_hidden // 2)
        self.phase_encoder = _mlp(self.flat, mlp_hidden, mlp_hidden // 2)
        self.fuse = nn.Sequential(nn.Linear(mlp_hidden, _FUSED_SIDE * _FUSED_SIDE), nn.ReLU(inplace=True))
        # modality translation: 1x24x24 -> encoder -> 6x6 -> decoder -> 3-channel "image" map
        self.translate_encoder = nn.Sequential(
            conv_bn_relu(1, w), conv_bn_relu(w, w, 2), conv_bn_relu(w, 2 * w, 2), conv_bn_relu(2 * w, 2 * w)
        )
        self.translate_decoder = nn.Sequential(
            nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(w, w, 4, stride=2, padding=1),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(w, 3, 4, stride=2, padding=1),
        )
        # stand-in for the paper's ResNet-FPN: a two-level U-Net at the 64x64 label resolution
        self.stem = nn.Sequential(conv_bn_relu(3, w), conv_bn_relu(w, w))
        self.down1 = nn.Sequential(conv_bn_relu(w, 2 * w, 2), conv_bn_relu(2 * w, 2 * w))
        self.down2 = nn.Sequential(conv_bn_relu(2 * w, 4 * w, 2), conv_bn_relu(4 * w, 4 * w))
        self.up2 = conv_bn_relu(4 * w + 2 * w, 2 * w)
        self.up1 = conv_bn_relu(2 * w + w, w)
        self.heads = DenseHeads(w, head_channels)

    def forward(self, amplitude: torch.Tensor, phase: torch.Tensor) -> tuple[torch.Tensor, ...]:
        b = amplitude.shape[0]
        a = self.amplitude_encoder(normalize_amplitude(amplitude).reshape(b, self.flat))
        p = self.phase_encoder(phase.reshape(b, self.flat))
        fused = self.fuse(torch.cat([a, p], dim=1)).reshape(b, 1, _FUSED_SIDE, _FUSED_SIDE)
        image = self.translate_decoder(self.translate_encoder(fused))  # (B, 3, 48, 48)
        image = F.interpolate(image, size=(MAP_H, MAP_W), mode="bilinear", align_corners=False)
        x1 = self.stem(image)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        y2 = self.up2(torch.cat([F.interpolate(x3, scale_factor=2.0, mode="nearest"), x2], dim=1))
        y1 = self.up1(torch.cat([F.interpolate(y2, scale_factor=2.0, mode="nearest"), x1], dim=1))
        return self.heads(y1)
