"""wdpnet: a lighter CSI -> dense-map net.

Why not the paper's layout: flattening 5x30x3x3 into an MLP throws away the two axes that carry structure
(time and subcarrier frequency). Here each frame is a 1-D signal over subcarriers with 2 x 9 channels
(amplitude and phase per antenna pair), encoded by a small 1-D conv; the 5 frame embeddings then attend to
each other (a two-layer transformer over the window) and the flattened sequence seeds an 8x8 map that a cheap
depthwise-separable decoder upsamples to 64x64 for the shared heads.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wdp.model.heads import DenseHeads, normalize_amplitude
from wdp.model.spec import MAX_PEOPLE, N_GEOMETRY, N_RX, N_SUB, N_TX, WINDOW

_SEED_SIDE = 8


class _SelfAttentionBlock(nn.Module):
    """Pre-norm transformer block written out by hand so tracing/ONNX never meet a fused fast path."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        h = self.heads
        q, k, v = self.qkv(self.norm1(x)).reshape(b, t, 3, h, d // h).permute(2, 0, 3, 1, 4).unbind(0)
        attn = torch.softmax(q @ k.transpose(-2, -1) * (d // h) ** -0.5, dim=-1)
        y = (attn @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.drop(self.proj(y))
        return x + self.drop(self.mlp(self.norm2(x)))


class _UpBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)
        self.norm = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return F.relu(self.norm(self.pointwise(self.depthwise(x))))


class WdpNet(nn.Module):
    def __init__(
        self,
        width: int = 32,
        embed_dim: int = 128,
        attention_layers: int = 2,
        attention_heads: int = 4,
        dropout: float = 0.1,
        seed_channels: int = 64,
        head_channels: int = 32,
        phase_trig: bool = False,
        encoder_width: int | None = None,
        encoder: str = "conv",
        input_shape: tuple[int, int, int, int] | list[int] | None = None,
        count_head: bool = False,
        room_inputs: bool = False,
    ) -> None:
        """`phase_trig`: feed cos and sin of the phase instead of the phase itself: right for wrapped inputs
        such as the tx-difference phase (sanitize_phase(tx_difference=True)), where -pi and pi are the same.
        `encoder_width`: channels of the subcarrier encoder (default `width`, the decoder's): the encoder runs
        on 30 subcarriers and is cheap to widen; the decoder runs at 64 x 64 and is not.
        `encoder`: "conv" (1-D convs over the subcarriers, weights shared along them) or "mlp" (one hidden
        layer of `encoder_width` over the whole frame: every subcarrier and antenna pair keeps its own weights,
        which suits fingerprint-like inputs where subcarrier k of link l means something of its own).
        `input_shape`: (window, subcarriers, rx, tx) of the hardware it is trained for (wdp.csi.simulator.hardware;
        default the Intel 5300 contract, 5 x 30 x 3 x 3).
        `count_head`: a sixth output, "person_count": logits over 0..MAX_PEOPLE people in the window, read from
        the whole window's tokens (multi-task: presence and count beside the dense maps; the engine keeps that
        many of the decoded people when the card says so).
        `room_inputs`: the net also reads what an installer knows about the room (wdp.data.room_context): the
        empty-room reference (amplitude and sanitised phase per subcarrier and antenna pair: the window's
        amplitude is read relative to it and its phase rotated by it) and the room geometry in the receiver's
        frame (joined to the window's tokens), and adds a seventh output, "floor_xy": the floor position (m,
        receiver's frame) of the window's most prominent person. Needs `count_head` (outputs keep their order)."""
        super().__init__()
        shape = tuple(int(v) for v in (input_shape or (WINDOW, N_SUB, N_RX, N_TX)))
        if len(shape) != 4 or min(shape) < 1:
            raise ValueError(f"input_shape must be (window, subcarriers, rx, tx), not {input_shape}")
        self.input_shape = shape
        self.window, self.n_sub = shape[0], shape[1]
        self.links = shape[2] * shape[3]
        n_sub, window = self.n_sub, self.window
        self.seed_channels = seed_channels
        self.phase_trig = phase_trig
        enc = encoder_width or width
        channels = (3 if phase_trig else 2) * self.links
        if encoder == "conv":
            self.subcarrier_encoder = nn.Sequential(
                nn.Conv1d(channels, enc, 3, padding=1),
                nn.GELU(),
                nn.Conv1d(enc, enc, 3, stride=2, padding=1),
                nn.GELU(),
            )
            encoded = enc * ((n_sub + 1) // 2)
        elif encoder == "mlp":
            self.subcarrier_encoder = nn.Sequential(nn.Flatten(1), nn.Linear(channels * n_sub, enc), nn.GELU())
            encoded = enc
        else:
            raise ValueError(f"encoder must be 'conv' or 'mlp', not {encoder!r}")
        self.frame_embed = nn.Linear(encoded, embed_dim)
        self.time_embed = nn.Parameter(torch.zeros(1, window, embed_dim))
        self.blocks = nn.Sequential(
            *[_SelfAttentionBlock(embed_dim, attention_heads, dropout) for _ in range(attention_layers)]
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.seed = nn.Linear(window * embed_dim, seed_channels * _SEED_SIDE * _SEED_SIDE)
        c = seed_channels
        self.decoder = nn.Sequential(_UpBlock(c, c), _UpBlock(c, width), _UpBlock(width, width))
        self.heads = DenseHeads(width, head_channels)
        if room_inputs and not count_head:
            raise ValueError("room_inputs needs count_head (the floor output follows the count output)")
        self.room_inputs = room_inputs
        context = N_GEOMETRY if room_inputs else 0
        self.count = (
            nn.Sequential(nn.Linear(window * embed_dim + context, 64), nn.GELU(), nn.Linear(64, MAX_PEOPLE + 1))
            if count_head
            else None
        )
        self.floor = (
            nn.Sequential(nn.Linear(window * embed_dim + context, 128), nn.GELU(), nn.Linear(128, 2))
            if room_inputs
            else None
        )
        if room_inputs:  # the geometry also shapes the map the decoder paints
            self.seed = nn.Linear(window * embed_dim + context, seed_channels * _SEED_SIDE * _SEED_SIDE)
        nn.init.normal_(self.time_embed, std=0.02)

    def forward(
        self,
        amplitude: torch.Tensor,
        phase: torch.Tensor,
        ref_amplitude: torch.Tensor | None = None,
        ref_phase: torch.Tensor | None = None,
        geometry: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        b = amplitude.shape[0]
        w, k, links = self.window, self.n_sub, self.links
        amp = normalize_amplitude(amplitude).reshape(b, w, k, links)
        pha = phase.reshape(b, w, k, links)
        if self.room_inputs:
            if ref_amplitude is None or ref_phase is None or geometry is None:
                raise ValueError("this net reads the room's reference and geometry (room_inputs)")
            ref = normalize_amplitude(ref_amplitude.unsqueeze(1)).reshape(b, 1, k, links)
            amp = (amp + 1.0) / (ref + 1.0).clamp_min(1e-3) - 1.0
            pha = pha - ref_phase.reshape(b, 1, k, links)
        parts = [amp, torch.cos(pha), torch.sin(pha)] if self.phase_trig else [amp, pha]
        # (B*T, channels = 2 or 3 x links, subcarriers)
        frames = torch.cat(parts, dim=3).reshape(b * w, k, len(parts) * links).transpose(1, 2)
        tokens = self.frame_embed(self.subcarrier_encoder(frames).flatten(1)).reshape(b, w, -1)
        tokens = self.norm(self.blocks(tokens + self.time_embed))
        flat = tokens.flatten(1)
        if self.room_inputs:
            flat = torch.cat([flat, geometry], dim=1)
        seed = F.relu(self.seed(flat)).reshape(b, self.seed_channels, _SEED_SIDE, _SEED_SIDE)
        dense = self.heads(self.decoder(seed))
        if self.count is None:
            return dense
        if self.floor is None:
            return (*dense, self.count(flat))
        return (*dense, self.count(flat), self.floor(flat))
