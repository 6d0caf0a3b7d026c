"""Activity/fall metrics: macro-F1, per-class F1, fall precision/recall, false falls per hour of non-fall stream,
validation-only fall threshold, paired bootstrap over test recordings, confusion-matrix PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def per_class_f1(y: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """F1 per class (NaN for a class with no true and no predicted window)."""
    out = np.full(num_classes, np.nan)
    for c in range(num_classes):
        tp = np.sum((pred == c) & (y == c))
        fp = np.sum((pred == c) & (y != c))
        fn = np.sum((pred != c) & (y == c))
        if tp + fp + fn:
            out[c] = 2 * tp / (2 * tp + fp + fn)
    return out


def macro_f1_present(y: np.ndarray, pred: np.ndarray, num_classes: int) -> float:
    """Mean F1 over the classes present in y (a class only predicted still costs through the others' precision)."""
    f1 = per_class_f1(y, pred, num_classes)
    present = np.bincount(y, minlength=num_classes) > 0
    return float(np.nanmean(np.where(present, np.nan_to_num(f1), np.nan))) if present.any() else 0.0


def binary_prf(truth: np.ndarray, decision: np.ndarray) -> dict[str, float]:
    tp = int(np.sum(truth & decision))
    fp = int(np.sum(~truth & decision))
    fn = int(np.sum(truth & ~decision))
    p = tp / (tp + fp) if tp + fp else float("nan")
    r = tp / (tp + fn) if tp + fn else float("nan")
    f = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    return {"precision": p, "recall": r, "f1": f, "tp": tp, "fp": fp, "fn": fn}


def choose_threshold(p_fall: np.ndarray, is_fall: np.ndarray) -> float:
    """The fall threshold with the best F1 on validation windows (ties: the higher threshold, fewer false
    alarms); 0.5 when the validation windows hold no fall."""
    if not is_fall.any():
        return 0.5
    cands = np.unique(np.concatenate([p_fall, [0.5]]))
    best, best_t = -1.0, 0.5
    for t in cands:
        f = binary_prf(is_fall, p_fall >= t)["f1"]
        f = 0.0 if np.isnan(f) else f
        if f >= best:
            best, best_t = f, float(t)
    return best_t


def false_falls_per_hour(fall: np.ndarray, recording: np.ndarray, durations_s: Sequence[float]) -> dict[str, float]:
    """Fall alarms (runs of consecutive windows flagged fall count once) in stream windows of non-fall recordings,
    per hour of those recordings. recording: each window's recording index (windows in time order per recording)."""
    events = 0
    for r in np.unique(recording):
        f = fall[recording == r].astype(int)
        events += int(np.sum(np.diff(np.concatenate([[0], f])) == 1))
    hours = float(np.sum(durations_s)) / 3600.0
    return {"events": events, "hours": hours, "per_hour": events / hours if hours > 0 else float("nan")}


def confusion(y: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    m = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(m, (y, pred), 1)
    return m


def paired_bootstrap(
    y: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    group: np.ndarray,
    num_classes: int,
    n: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """Macro-F1(a) - macro-F1(b) with a 95 % CI from resampling test recordings (windows of one recording move
    together) with replacement; p = share of resamples where a is not ahead."""
    rng = np.random.default_rng(seed)
    groups = np.unique(group)
    members = [np.flatnonzero(group == g) for g in groups]
    diff = macro_f1_present(y, pred_a, num_classes) - macro_f1_present(y, pred_b, num_classes)
    boots = np.empty(n)
    for i in range(n):
        pick = np.concatenate([members[j] for j in rng.integers(0, len(groups), len(groups))])
        boots[i] = macro_f1_present(y[pick], pred_a[pick], num_classes) - macro_f1_present(
            y[pick], pred_b[pick], num_classes
        )
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return {"diff": float(diff), "ci_low": float(lo), "ci_high": float(hi), "p_not_ahead": float(np.mean(boots <= 0))}


def plot_confusion(matrix: np.ndarray, classes: Sequence[str], title: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = matrix.sum(axis=1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros(matrix.shape, dtype=float), where=rows > 0)
    size = 1.0 + 0.55 * len(classes)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    for i in range(len(classes)):
        for j in range(len(classes)):
            if matrix[i, j]:
                ax.text(
                    j,
                    i,
                    str(matrix[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black",
                )
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
