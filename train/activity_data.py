"""Real labelled recordings (wdp.data.real) as activity/fall windows, per protocol fold.

Every recording is parsed once with wdp's own parsers (wdp.data.real applies the link MAC filter, the D2
occupancy rule and the Intel 5300 timestamp unwrap) and turned into a feature grid with the same code as
inference (wdp.activity.preprocess.feature_grid). Windows are then cut per fold:

* action takes (one activity per file, the movement "in the middle"): evaluation uses the window centred in
  the file; training adds windows shifted by `train_offsets_s` (augmentation within the same file);
* long static recordings (D1 lying/sitting, 6-9 min): the authors' cut (OwnData_cut.m: 20 windows starting at
  packet 600, one every 300 packets at 20 Hz = from 30 s, every 15 s) for both training and evaluation;
* stream windows (every hop_s over the whole file) of the test recordings, for false falls per hour.

Windows of one file stay in one split: folds split recordings (wdp.data.real.split), validation takes whole
training files (stratified by class), never a test person's or room's file.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from wdp.activity.card import ActivityCard
from wdp.activity.preprocess import Grid, cut_windows, default_features, feature_count, feature_grid, window_ends
from wdp.data.real import OCCUPANCY_BAND_DB, PROTOCOLS, FileRow, Fold, available_recordings, load_recording, split

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActivityDataSpec:
    """A data group (conf/data/har_*.yaml) as plain values."""

    dataset: str
    family: str
    shape: tuple[int, int, int]
    classes: tuple[str, ...]
    fall_class: str
    packet_rate_hz: float
    window_s: float
    hop_s: float
    bins: int
    subcarriers: str = "all"  # or "occupied": the band occupied in the training recordings
    occupancy_filter: bool = False
    features: tuple[str, ...] | None = None
    train_offsets_s: tuple[float, ...] = (0.0,)
    long_static: dict[str, float] | None = None  # {start_s, step_s, count}
    long_static_kinds: tuple[str, ...] = ("long_static_6min",)
    protocols: dict[str, tuple[str, ...]] = field(default_factory=dict)
    val_fraction: float = 0.2
    limit_per_class: int | None = None  # quick runs: at most this many recordings per class and person

    @classmethod
    def from_config(cls, cfg: Any) -> ActivityDataSpec:
        c = dict(cfg)
        c.pop("_target_", None)
        c.pop("root", None)
        c.pop("targets", None)
        c["shape"] = tuple(int(v) for v in c["shape"])
        c["classes"] = tuple(c["classes"])
        c["train_offsets_s"] = tuple(float(v) for v in c.get("train_offsets_s", (0.0,)))
        c["long_static_kinds"] = tuple(c.get("long_static_kinds", ("long_static_6min",)))
        c["features"] = None if c.get("features") is None else tuple(c["features"])
        c["long_static"] = None if c.get("long_static") is None else dict(c["long_static"])
        c["protocols"] = {k: tuple(v) for k, v in dict(c.get("protocols") or {}).items()}
        return cls(**c)

    @property
    def feature_names(self) -> list[str]:
        return list(self.features) if self.features else default_features(self.shape[1])

    def folds(self, protocol: str) -> list[Fold]:
        if protocol not in self.protocols:
            raise ValueError(f"protocol {protocol!r} is not one of {sorted(self.protocols)} for {self.dataset}")
        by_name = {f.name: f for f in PROTOCOLS[self.dataset]}
        return [by_name[name] for name in self.protocols[protocol]]


@dataclass
class Item:
    """One recording with its feature grid (for one subcarrier selection)."""

    row: FileRow
    label: int
    kind: str
    grid: Grid
    duration_s: float

    # what wdp.data.real.split needs (the Labelled protocol)
    @property
    def dataset(self) -> str:
        return self.row.dataset

    @property
    def path(self) -> str:
        return self.row.path

    @property
    def labels(self) -> dict[str, str]:
        return self.row.labels

    @property
    def person(self) -> str | None:
        return self.row.person

    @property
    def environment(self) -> str:
        return self.row.environment


def occupied_band(medians: Sequence[np.ndarray], min_share: float = 0.9) -> list[int]:
    """Subcarriers in the occupied band of at least `min_share` of the recordings (median power within
    OCCUPANCY_BAND_DB of the strong subcarriers, as wdp.data.real's occupancy rule), without isolated ones."""
    bands = []
    for med in medians:
        strong = np.percentile(med, 95)
        bands.append(med >= strong * 10.0 ** (-OCCUPANCY_BAND_DB / 10.0))
    common = np.mean(bands, axis=0) >= min_share
    idx = np.flatnonzero(common)
    # an isolated subcarrier (e.g. a DC or edge artefact) has no neighbour in the band within 2 subcarriers
    keep = [int(i) for i in idx if np.sum(np.abs(idx - i) <= 2) > 1]
    return keep or [int(i) for i in idx]


class Corpus:
    """Loaded recordings of one data group: rows, labels, per-recording subcarrier medians, and feature grids
    per subcarrier selection (cached: folds of one protocol usually share it)."""

    def __init__(self, spec: ActivityDataSpec, root: str | Path) -> None:
        self.spec = spec
        self.root = Path(root)
        rows = available_recordings(self.root, [spec.dataset], where=lambda r: r.labels.get("activity") in spec.classes)
        if spec.limit_per_class:
            seen: dict[tuple[str, str | None, str], int] = {}
            kept = []
            for r in rows:
                key = (r.labels["activity"], r.person, r.environment)
                seen[key] = seen.get(key, 0) + 1
                if seen[key] <= spec.limit_per_class:
                    kept.append(r)
            rows = kept
        if not rows:
            raise FileNotFoundError(f"no {spec.dataset} recordings of {spec.classes} under {self.root}")
        self.rows = rows
        self._csi: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.medians: dict[str, np.ndarray] = {}
        self.dropped: dict[str, int] = {}
        for r in rows:
            rec = load_recording(self.root, r)
            if len(rec) < 2:
                log.warning("%s/%s: %d frames, skipped", r.dataset, r.path, len(rec))
                continue
            if tuple(rec.csi.shape[1:]) != spec.shape:
                log.warning("%s/%s: frame shape %s, skipped", r.dataset, r.path, rec.csi.shape[1:])
                continue
            self._csi[r.path] = (rec.csi, rec.times)
            self.medians[r.path] = np.median((np.abs(rec.csi) ** 2).sum(axis=(2, 3)), axis=0)
            for k, v in rec.dropped.items():
                self.dropped[k] = self.dropped.get(k, 0) + int(v)
        self.rows = [r for r in rows if r.path in self._csi]
        self._items: dict[tuple[int, ...], list[Item]] = {}

    def subcarriers_for(self, rows: Sequence[FileRow]) -> list[int]:
        if self.spec.subcarriers == "all":
            return list(range(self.spec.shape[0]))
        if self.spec.subcarriers == "occupied":
            return occupied_band([self.medians[r.path] for r in rows])
        raise ValueError(f"subcarriers must be 'all' or 'occupied', not {self.spec.subcarriers!r}")

    def card(self, subcarrier_index: list[int], feature_scale: Sequence[float] | None = None) -> ActivityCard:
        s = self.spec
        bins = min(s.bins, len(subcarrier_index))
        n_feat = feature_count(s.shape, bins, s.feature_names)
        return ActivityCard(
            family=s.family,
            subcarriers=s.shape[0],
            rx=s.shape[1],
            tx=s.shape[2],
            packet_rate_hz=s.packet_rate_hz,
            window_s=s.window_s,
            hop_s=s.hop_s,
            classes=list(s.classes),
            fall_class=s.fall_class,
            fall_threshold=0.5,
            subcarrier_index=list(subcarrier_index),
            bins=bins,
            features=s.feature_names,
            feature_scale=list(feature_scale) if feature_scale is not None else [1.0] * n_feat,
            occupancy_filter=s.occupancy_filter,
        )

    def items(self, subcarrier_index: list[int]) -> list[Item]:
        key = tuple(subcarrier_index)
        if key not in self._items:
            card = self.card(subcarrier_index)
            out = []
            for r in self.rows:
                csi, times = self._csi[r.path]
                grid = feature_grid(csi, times, card)
                out.append(
                    Item(
                        row=r,
                        label=self.spec.classes.index(r.labels["activity"]),
                        kind=r.labels.get("kind", "action"),
                        grid=grid,
                        duration_s=grid.duration_s,
                    )
                )
            self._items[key] = out
        return self._items[key]

    # ------------------------------------------------------------------------------------------ windows

    def eval_ends(self, item: Item) -> np.ndarray:
        s = self.spec
        if item.kind in s.long_static_kinds and s.long_static:
            ls = s.long_static
            ends = float(ls["start_s"]) + float(ls["step_s"]) * np.arange(int(ls["count"])) + s.window_s
            ends = ends[ends <= item.duration_s]
            if ends.size:
                return ends
        return np.array([self._centred_end(item, 0.0)])

    def train_ends(self, item: Item) -> np.ndarray:
        if item.kind in self.spec.long_static_kinds and self.spec.long_static:
            return self.eval_ends(item)
        return np.unique([self._centred_end(item, off) for off in self.spec.train_offsets_s])

    def stream_ends(self, item: Item) -> np.ndarray:
        return window_ends(item.duration_s, self.spec.window_s, self.spec.hop_s)

    def _centred_end(self, item: Item, offset: float) -> float:
        w, d = self.spec.window_s, item.duration_s
        end = d / 2.0 + w / 2.0 + offset
        return float(min(max(end, min(w, d)), d))


def windows(
    corpus: Corpus, items: Sequence[Item], which: str, card: ActivityCard
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw (unscaled) windows of items: (x (n, T, F) float32, labels (n,), item index (n,)). which: train, eval,
    stream."""
    ends_of = {"train": corpus.train_ends, "eval": corpus.eval_ends, "stream": corpus.stream_ends}[which]
    xs, ys, gs = [], [], []
    for i, it in enumerate(items):
        ends = ends_of(it)
        x = cut_windows(it.grid, ends, card)
        xs.append(x.astype(np.float32))
        ys.append(np.full(len(x), it.label))
        gs.append(np.full(len(x), i))
    if not xs:
        n_feat = feature_count(card, card.bins, card.features)
        return np.zeros((0, card.window_samples, n_feat), np.float32), np.zeros(0, int), np.zeros(0, int)
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(gs)


def validation_split(items: Sequence[Item], fraction: float, seed: int) -> tuple[list[Item], list[Item]]:
    """(fit, val): `fraction` of the recordings of each class (at least one when a class has two or more) go to
    validation; whole files, deterministic for a seed."""
    rng = np.random.default_rng(seed)
    fit, val = [], []
    by_class: dict[int, list[Item]] = {}
    for it in items:
        by_class.setdefault(it.label, []).append(it)
    for label in sorted(by_class):
        group = by_class[label]
        order = rng.permutation(len(group))
        n_val = int(round(fraction * len(group)))
        if len(group) >= 2:
            n_val = max(1, min(n_val, len(group) - 1))
        else:
            n_val = 0
        val += [group[i] for i in order[:n_val]]
        fit += [group[i] for i in order[n_val:]]
    return fit, val


def fold_items(corpus: Corpus, fold: Fold) -> tuple[list[int], list[Item], list[Item]]:
    """(subcarrier index chosen on the fold's training recordings, train items, test items)."""
    train_rows, _ = split(corpus.rows, fold)
    index = corpus.subcarriers_for(train_rows)
    train, test = split(corpus.items(index), fold)
    return index, train, test
