"""Activity/fall models shipped in the package: wdp/models/activity/<family>/{model.onnx, card.json}."""

from __future__ import annotations

from pathlib import Path

from wdp.activity.card import CARD_FILE, MODEL_FILE, load_card


def shipped_root() -> Path:
    return Path(__file__).resolve().parent.parent / "models" / "activity"


def shipped_models(root: Path | None = None) -> list[Path]:
    """Model directories (holding model.onnx and card.json), sorted by family name."""
    root = shipped_root() if root is None else Path(root)
    if not root.is_dir():
        return []
    return sorted(d for d in root.iterdir() if (d / MODEL_FILE).is_file() and (d / CARD_FILE).is_file())


def find_shipped(shape: tuple[int, int, int], root: Path | None = None) -> Path | None:
    """The first shipped model whose card matches frames of shape (subcarriers, rx, tx); None when none does."""
    for d in shipped_models(root):
        if load_card(d).matches(shape):
            return d
    return None
