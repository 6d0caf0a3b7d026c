"""An exported activity/fall model (model.onnx + card.json) run with onnxruntime on one thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from wdp.activity.card import CARD_FILE, MODEL_FILE, ActivityCard, load_card
from wdp.activity.preprocess import Windows, preprocess


class WindowResult(msgspec.Struct, kw_only=True):
    """One classified window: t = window end in seconds from capture start; activity = the most probable class
    (p_activity its probability); p_fall = the model's fall probability; fall = p_fall >= the card's threshold."""

    t: float
    activity: str
    p_activity: float
    p_fall: float
    fall: bool
    probs: dict[str, float]


class ActivityClassifier:
    """`ActivityClassifier.load(model_dir)`; `.classify(csi, timestamps)` for a capture, `.classify_window` for the
    latest window of a stream buffer, `.predict(x)` for ready windows."""

    def __init__(self, model_path: Path, card: ActivityCard) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # a per-window model: one thread is fast enough and leaves cores to the rest
        opts.inter_op_num_threads = 1
        self.path = model_path
        self.card = card
        self._session = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self._outputs = list(card.output_names)

    @classmethod
    def load(cls, model_dir: str | Path) -> ActivityClassifier:
        model_dir = Path(model_dir)
        model, card_file = model_dir / MODEL_FILE, model_dir / CARD_FILE
        for f in (model, card_file):
            if not f.is_file():
                raise FileNotFoundError(f"{model_dir} is not an activity model directory: {f.name} missing")
        return cls(model, load_card(card_file))

    def matches(self, shape: tuple[int, int, int]) -> bool:
        return self.card.matches(shape)

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, window samples, features) windows -> (class probabilities (n, classes), p_fall (n,))."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.shape[0] == 0:
            return np.zeros((0, len(self.card.classes)), np.float32), np.zeros(0, np.float32)
        probs, p_fall = self._session.run(self._outputs, {self._input: x})
        return np.asarray(probs), np.asarray(p_fall).reshape(-1)

    def results(self, windows: Windows) -> list[WindowResult]:
        probs, p_fall = self.predict(windows.x)
        return [self._result(float(t), p, float(f)) for t, p, f in zip(windows.t, probs, p_fall, strict=True)]

    def classify(self, csi: Any, timestamps: Any) -> list[WindowResult]:
        """Every window of a capture (card.hop_s apart; see wdp.activity.preprocess.window_ends)."""
        return self.results(preprocess(np.asarray(csi), np.asarray(timestamps), self.card))

    def classify_window(self, csi: Any, timestamps: Any, t: float | None = None) -> WindowResult | None:
        """The window ending at the last frame of `csi` (a stream buffer of at least card.window_s seconds, or
        less, then padded); t: what to report as its time (default: seconds from the buffer's first frame).
        None when the buffer holds fewer than two usable frames."""
        ts = np.asarray(timestamps, dtype=np.float64)
        if ts.size < 2:
            return None
        w = preprocess(np.asarray(csi), ts, self.card, ends=np.array([float(np.max(ts) - np.min(ts))]))
        if w.x.shape[0] == 0:
            return None
        res = self.results(w)[0]
        if t is not None:
            res = msgspec.structs.replace(res, t=float(t))
        return res

    def _result(self, t: float, probs: np.ndarray, p_fall: float) -> WindowResult:
        k = int(np.argmax(probs))
        return WindowResult(
            t=t,
            activity=self.card.classes[k],
            p_activity=float(probs[k]),
            p_fall=p_fall,
            fall=bool(p_fall >= self.card.fall_threshold),
            probs={c: float(p) for c, p in zip(self.card.classes, probs, strict=True)},
        )
