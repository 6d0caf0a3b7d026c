"""The activity/fall model card: the hardware shape a model expects, how its input is made, what it learned on.

One card (card.json) sits beside every exported activity model (model.onnx). Preprocessing reads only the card,
so a model is used live exactly as it was trained: same rate, window, subcarriers, features and scale.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

CARD_FILE = "card.json"
MODEL_FILE = "model.onnx"
CARD_VERSION = 1


class ActivityCard(msgspec.Struct, kw_only=True):
    """What an activity/fall model needs and what it was measured to do.

    Hardware shape: `subcarriers`, `rx`, `tx` (a capture's frame shape must equal it; see `matches`).
    Input: frames are resampled to `packet_rate_hz`; a window is the last `window_s` seconds (`hop_s` apart when
    a stream is classified); `subcarrier_index` picks the subcarriers used (e.g. the occupied 20 MHz band of an
    80 MHz nexmon capture), averaged into `bins` groups; `features` names the per-frame features
    (wdp.activity.preprocess.FEATURES), divided by `feature_scale` (the training windows' std per feature).
    `occupancy_filter`: drop frames whose energy outside the occupied band exceeds 5x the capture's median share.
    Output: `classes` (softmax order), `fall_class`; a window is a fall when p_fall >= `fall_threshold`
    (chosen on validation files of the training people/rooms only).
    """

    family: str
    subcarriers: int
    rx: int
    tx: int
    packet_rate_hz: float
    window_s: float
    hop_s: float
    classes: list[str]
    fall_class: str
    fall_threshold: float
    subcarrier_index: list[int]
    bins: int
    features: list[str]
    feature_scale: list[float]
    occupancy_filter: bool = False
    model: str = ""
    input_name: str = "x"
    output_names: list[str] = msgspec.field(default_factory=lambda: ["probs", "p_fall"])
    num_parameters: int = 0
    format_version: int = CARD_VERSION
    created: str = ""
    # data, protocol, folds and metrics for the model card (free-form, JSON-able)
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    protocol: dict[str, Any] = msgspec.field(default_factory=dict)
    folds: list[dict[str, Any]] = msgspec.field(default_factory=list)
    metrics: dict[str, Any] = msgspec.field(default_factory=dict)
    training: dict[str, Any] = msgspec.field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.subcarriers, self.rx, self.tx)

    @property
    def window_samples(self) -> int:
        return int(round(self.window_s * self.packet_rate_hz))

    @property
    def fall_index(self) -> int:
        return self.classes.index(self.fall_class)

    def matches(self, shape: tuple[int, int, int]) -> bool:
        """Whether frames of this (subcarriers, rx, tx) shape can be classified by the card's model."""
        return tuple(int(s) for s in shape) == self.shape

    def __post_init__(self) -> None:
        if self.fall_class not in self.classes:
            raise ValueError(f"fall_class {self.fall_class!r} is not one of classes {self.classes}")
        index = self.subcarrier_index
        if not index or max(index) >= self.subcarriers or min(index) < 0:
            raise ValueError("subcarrier_index must name subcarriers 0..subcarriers-1")
        if not 1 <= self.bins <= len(self.subcarrier_index):
            raise ValueError(f"bins must be 1..{len(self.subcarrier_index)}, not {self.bins}")
        if self.packet_rate_hz <= 0 or self.window_s <= 0 or self.hop_s <= 0:
            raise ValueError("packet_rate_hz, window_s and hop_s must be positive")


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(ActivityCard)


def save_card(card: ActivityCard, path: str | Path) -> Path:
    """Write card.json (a directory gets card.json inside it), pretty-printed for reading in review."""
    path = Path(path)
    if path.is_dir():
        path = path / CARD_FILE
    path.write_bytes(msgspec.json.format(_ENCODER.encode(card), indent=2) + b"\n")
    return path


def load_card(path: str | Path) -> ActivityCard:
    """Read card.json (or the card.json inside a model directory); a bad card is a clear ValueError."""
    path = Path(path)
    if path.is_dir():
        path = path / CARD_FILE
    try:
        return _DECODER.decode(path.read_bytes())
    except msgspec.ValidationError as exc:
        raise ValueError(f"{path}: not an activity model card: {exc}") from exc
