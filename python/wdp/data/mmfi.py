"""Loader for MM-Fi's WiFi-CSI modality in its published directory layout.

    root/E01/S01/A01/wifi-csi/frame001.mat ... frame297.mat   (MATLAB: CSIamp, CSIphase, 3 x 114 x 10)
    root/E01/S01/A01/ground_truth.npy                         (297 x 17 x 3 keypoints)

Per frame: 3 receive antennas x 114 subcarriers (Atheros, 40 MHz) x 10 packets, already processed by
the dataset authors. Frame NNN (1-based) pairs with ground_truth[NNN - 1]. As MM-Fi's own toolbox
does, infinite values become NaN and every NaN is replaced by the mean of the finite values of its
packet (the [:, :, p] slice); empty (0-byte) frame files are skipped, and a window never spans a
missing frame. Nothing here is normalised.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FRAME_RE = re.compile(r"frame(\d+)\.mat$")
CSI_SHAPE = (3, 114, 10)


@dataclass(frozen=True)
class MMFiSequence:
    environment: str
    subject: str
    action: str
    gt_path: Path
    frames: dict[int, Path]  # 0-based ground-truth index -> frame file


def _pick(names: Sequence[str] | None, value: str) -> bool:
    return names is None or value in names


def fill_nonfinite(x: np.ndarray) -> np.ndarray:
    """MM-Fi toolbox rule: inf -> NaN, NaN -> mean of the finite values of the same packet (last axis)."""
    x = np.array(x, np.float64)
    x[~np.isfinite(x)] = np.nan
    for p in range(x.shape[-1]):
        col = x[..., p]
        bad = np.isnan(col)
        if bad.any():
            good = col[~bad]
            col[bad] = good.mean() if good.size else 0.0
    return x


class MMFiDataset:
    """Windows of `window` consecutive frames (every `stride` frames) of each MM-Fi sequence.

    ``ds[i]`` -> {"amplitude": float32 (window, 3, 114, 10), "phase": same or absent,
    "keypoints": float32 (window, 17, 3), "environment", "subject", "action": str, "frame": int
    (0-based index of the first frame)}. Filter with environments=("E01",), subjects=("S01", ...),
    actions=("A01", ...)."""

    def __init__(
        self,
        root: str | Path,
        *,
        environments: Sequence[str] | None = None,
        subjects: Sequence[str] | None = None,
        actions: Sequence[str] | None = None,
        window: int = 1,
        stride: int = 1,
        with_phase: bool = True,
        fill: bool = True,
    ):
        if window < 1 or stride < 1:
            raise ValueError("window and stride must be positive")
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root} is not a directory")
        self.window, self.stride, self.with_phase, self.fill = window, stride, with_phase, fill
        self.sequences: list[MMFiSequence] = []
        self.index: list[tuple[int, int]] = []  # (sequence, first gt index)
        for env in sorted(p for p in self.root.iterdir() if p.is_dir() and re.fullmatch(r"E\d+", p.name)):
            if not _pick(environments, env.name):
                continue
            for subj in sorted(p for p in env.iterdir() if p.is_dir() and re.fullmatch(r"S\d+", p.name)):
                if not _pick(subjects, subj.name):
                    continue
                for act in sorted(p for p in subj.iterdir() if p.is_dir() and re.fullmatch(r"A\d+", p.name)):
                    if _pick(actions, act.name):
                        self._add_sequence(env.name, subj.name, act)

    def _add_sequence(self, env: str, subj: str, act_dir: Path) -> None:
        gt_path = act_dir / "ground_truth.npy"
        csi_dir = act_dir / "wifi-csi"
        if not gt_path.is_file() or not csi_dir.is_dir():
            return
        n_gt = int(np.load(gt_path, mmap_mode="r").shape[0])
        frames = {}
        for f in csi_dir.iterdir():
            m = FRAME_RE.fullmatch(f.name)
            if m and f.stat().st_size > 0 and 0 < int(m.group(1)) <= n_gt:
                frames[int(m.group(1)) - 1] = f
        seq = MMFiSequence(env, subj, act_dir.name, gt_path, frames)
        si = len(self.sequences)
        self.sequences.append(seq)
        for start in range(0, n_gt - self.window + 1, self.stride):
            if all(k in frames for k in range(start, start + self.window)):
                self.index.append((si, start))

    def __len__(self) -> int:
        return len(self.index)

    def _frame(self, path: Path) -> tuple[np.ndarray, np.ndarray | None]:
        from scipy.io import loadmat  # scipy is a dependency; imported lazily like MM-Fi's toolbox

        mat = loadmat(path)
        amp = np.asarray(mat["CSIamp"])
        phase = np.asarray(mat["CSIphase"]) if self.with_phase else None
        if amp.shape != CSI_SHAPE or (phase is not None and phase.shape != CSI_SHAPE):
            raise ValueError(f"{path}: CSIamp/CSIphase shape {amp.shape}, expected {CSI_SHAPE}")
        if self.fill:
            amp = fill_nonfinite(amp)
            phase = fill_nonfinite(phase) if phase is not None else None
        return amp.astype(np.float32), None if phase is None else phase.astype(np.float32)

    def __getitem__(self, i: int) -> dict[str, Any]:
        si, start = self.index[i]
        seq = self.sequences[si]
        amps, phases = [], []
        for k in range(start, start + self.window):
            a, p = self._frame(seq.frames[k])
            amps.append(a)
            phases.append(p)
        gt = np.load(seq.gt_path, mmap_mode="r")
        out: dict[str, Any] = {
            "amplitude": np.stack(amps),
            "keypoints": np.asarray(gt[start : start + self.window], np.float32),
            "environment": seq.environment,
            "subject": seq.subject,
            "action": seq.action,
            "frame": start,
        }
        if self.with_phase:
            out["phase"] = np.stack(phases)
        return out

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(len(self)):
            yield self[i]

    @staticmethod
    def as_wdp_layout(x: np.ndarray) -> np.ndarray:
        """(frames, 3, 114, 10) -> (frames * 10 packets, 114 subcarriers, 3 rx, 1 tx): the wdp CSI axis
        order (time, subcarrier, rx, tx), packets in time order."""
        x = np.asarray(x)
        f = x.shape[0]
        return np.ascontiguousarray(x.transpose(0, 3, 2, 1).reshape(f * x.shape[3], x.shape[2], x.shape[1], 1))
