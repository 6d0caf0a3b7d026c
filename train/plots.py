"""PNG plots of a run: loss/metric curves from the CSV log, predicted vs true skeletons on test windows.

Uses matplotlib's object API (Figure + Agg canvas), so nothing touches pyplot's global state or a display.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from wdp.model.spec import IMAGE_H, IMAGE_W, N_PART_CLASSES, SKELETON


def read_metrics_csv(path: str | Path) -> dict[str, list[tuple[float, float]]]:
    """Lightning CSVLogger metrics.csv -> {metric: [(epoch, value), ...]} (rows lacking it skipped)."""
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            epoch = row.get("epoch", "")
            if epoch == "":
                continue
            for key, value in row.items():
                if key in ("epoch", "step") or value in ("", None):
                    continue
                series[key].append((float(epoch), float(value)))
    return dict(series)


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def plot_loss_curves(metrics_csv: str | Path, out_path: str | Path) -> Path:
    """Train vs val loss per epoch (left) and val/test keypoint AP and PCK (right)."""
    series = read_metrics_csv(metrics_csv)
    fig = Figure(figsize=(11, 4))
    ax_loss, ax_ap = fig.subplots(1, 2)
    for key, label in (("train/loss_epoch", "train"), ("val/loss", "val")):
        if key in series:
            e, v = zip(*series[key], strict=True)
            ax_loss.plot(e, v, marker="o", label=label)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_loss.legend()
    for key in ("val/ap", "val/ap50", "val/pck@0.2", "val/part_miou"):
        if key in series:
            e, v = zip(*series[key], strict=True)
            ax_ap.plot(e, v, marker="o", label=key)
    ax_ap.set(xlabel="epoch", ylim=(0, 1), title="validation metrics")
    ax_ap.legend()
    return _save(fig, Path(out_path))


def _draw_skeleton(ax, keypoints: np.ndarray, color: str, min_v: float) -> None:
    for a, b in SKELETON:
        if keypoints[a, 2] > min_v and keypoints[b, 2] > min_v:
            ax.plot(keypoints[[a, b], 0], keypoints[[a, b], 1], color=color, linewidth=1.5)
    vis = keypoints[:, 2] > min_v
    ax.scatter(keypoints[vis, 0], keypoints[vis, 1], s=6, color=color)


def plot_skeleton_grid(
    gt_keypoints: np.ndarray,
    gt_num_people: np.ndarray,
    pred_keypoints: np.ndarray,
    pred_scores: np.ndarray,
    out_path: str | Path,
    pred_parts: np.ndarray | None = None,
    gt_parts: np.ndarray | None = None,
    min_score: float = 0.3,
    columns: int = 4,
) -> Path:
    """One panel per window: true skeletons (green) and predicted (red, people scoring >= min_score).

    With part maps given, each panel's background shows the predicted part labels (true labels faintly
    in a second row of panels).
    """
    n = len(gt_keypoints)
    rows = math.ceil(n / columns) * (2 if gt_parts is not None else 1)
    fig = Figure(figsize=(3 * columns, 3 * rows))
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False)).ravel()
    for ax in axes:
        ax.set_axis_off()
    extent = (0, IMAGE_W, IMAGE_H, 0)
    for i in range(n):
        row, col = divmod(i, columns)
        ax = axes[(row * (2 if gt_parts is not None else 1)) * columns + col]
        if pred_parts is not None:
            ax.imshow(
                np.ma.masked_equal(pred_parts[i], 0),
                cmap="tab20b",
                vmin=0,
                vmax=N_PART_CLASSES - 1,
                extent=extent,
                alpha=0.6,
            )
        for p in range(int(gt_num_people[i])):
            _draw_skeleton(ax, gt_keypoints[i, p], "tab:green", 0)
        for k in range(len(pred_scores[i])):
            if pred_scores[i, k] >= min_score:
                _draw_skeleton(ax, pred_keypoints[i, k], "tab:red", -1)
        ax.set(xlim=(0, IMAGE_W), ylim=(IMAGE_H, 0), title=f"window {i}")
        ax.set_axis_on()
        ax.set_xticks([])
        ax.set_yticks([])
        if gt_parts is not None:
            ax_gt = axes[(row * 2 + 1) * columns + col]
            ax_gt.imshow(
                np.ma.masked_equal(gt_parts[i], 0),
                cmap="tab20b",
                vmin=0,
                vmax=N_PART_CLASSES - 1,
                extent=extent,
            )
            ax_gt.set(title=f"window {i}: true parts")
            ax_gt.set_axis_on()
            ax_gt.set_xticks([])
            ax_gt.set_yticks([])
    fig.suptitle("true (green) vs predicted (red) skeletons")
    return _save(fig, Path(out_path))
