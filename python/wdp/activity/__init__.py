"""Activity and fall classification from CSI windows: model card, preprocessing, ONNX runtime, shipped models.

Training lives in wdp.train (task=activity); this package is what inference needs (numpy + onnxruntime)."""

from __future__ import annotations

from wdp.activity.card import ActivityCard, load_card, save_card
from wdp.activity.classifier import ActivityClassifier, WindowResult
from wdp.activity.preprocess import Windows, preprocess, window_ends
from wdp.activity.shipped import find_shipped, shipped_models

__all__ = [
    "ActivityCard",
    "ActivityClassifier",
    "WindowResult",
    "Windows",
    "find_shipped",
    "load_card",
    "preprocess",
    "save_card",
    "shipped_models",
    "window_ends",
]
