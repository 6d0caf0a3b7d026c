"""Classical baseline: per-window statistics of every feature (amplitude dB and phase per subcarrier bin and
antenna) into a random forest (scikit-learn), class-balanced. Its fall probability is the fall class's
probability."""

from __future__ import annotations

from typing import Any

import numpy as np

BANDS_HZ = ((0.2, 1.0), (1.0, 2.5), (2.5, 5.0), (5.0, 10.0))


def window_stats(x: np.ndarray, rate_hz: float) -> np.ndarray:
    """(n, T, F) scaled windows -> (n, 8F): std, p90-p10, mean |first difference|, max |x|, log energy in four
    Doppler bands (BANDS_HZ) of each feature."""
    x = np.asarray(x, dtype=np.float32)
    std = x.std(axis=1)
    p10, p90 = np.percentile(x, [10, 90], axis=1)
    mad = np.abs(np.diff(x, axis=1)).mean(axis=1)
    peak = np.abs(x).max(axis=1)
    spec = np.abs(np.fft.rfft(x, axis=1)) ** 2
    freqs = np.fft.rfftfreq(x.shape[1], d=1.0 / rate_hz)
    bands = [
        np.log1p(spec[:, (freqs >= lo) & (freqs < hi)].sum(axis=1))
        if np.any((freqs >= lo) & (freqs < hi))
        else np.zeros_like(std)
        for lo, hi in BANDS_HZ
    ]
    return np.concatenate([std, p90 - p10, mad, peak, *bands], axis=1)


class ForestBaseline:
    """fit(x, y) / predict(x) -> (probs over all classes, p_fall) on scaled windows."""

    def __init__(
        self,
        num_classes: int,
        fall_index: int,
        rate_hz: float,
        n_estimators: int = 300,
        min_samples_leaf: int = 1,
        max_features: Any = "sqrt",
        seed: int = 0,
        n_jobs: int = 1,
    ) -> None:
        from sklearn.ensemble import RandomForestClassifier

        self.num_classes = num_classes
        self.fall_index = fall_index
        self.rate_hz = rate_hz
        self.model = RandomForestClassifier(
            n_estimators=n_estimators,
            min_samples_leaf=min_samples_leaf,
            max_features=max_features,
            class_weight="balanced_subsample",
            random_state=seed,
            n_jobs=n_jobs,
        )

    def fit(self, x: np.ndarray, y: np.ndarray) -> ForestBaseline:
        self.model.fit(window_stats(x, self.rate_hz), y)
        return self

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probs = np.zeros((len(x), self.num_classes))
        if len(x):
            probs[:, self.model.classes_] = self.model.predict_proba(window_stats(x, self.rate_hz))
        return probs, probs[:, self.fall_index]
