"""Contract-layout CSI window datasets (shard-*.npz + meta.json per split) as Lightning data.

Reads the shard layout directly with numpy (no dependency on wdp.data); only generating a missing dataset
needs the simulator (`wdp.data.write_dataset`, imported lazily).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from wdp.csi.sanitize_numpy import sanitize_phase
from wdp.model.spec import MAX_PEOPLE

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
# arrays a training sample needs, with the dtype the model side uses
_FIELDS = {
    "amplitude": np.float32,
    "phase": np.float32,
    "keypoints": np.float32,
    "boxes": np.float32,
    "num_people": np.int64,
    "part_mask": np.uint8,
    "uv": np.float32,
    "activity": np.int64,
    "fall": np.bool_,
    "person_area": np.float32,
}


_META_FIELDS = {"room_id": np.int64, "seed": np.int64, "t": np.float64}  # optional: which scene, when


def read_split(path: str | Path, with_meta: bool = False) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """All shards of one split directory concatenated: (arrays keyed as in the contract, meta.json).
    ``with_meta``: also each window's room_id, scene seed and time (simulated datasets)."""
    path = Path(path)
    meta_file = path / "meta.json"
    if not meta_file.is_file():
        raise FileNotFoundError(f"{path} is not a dataset split (no meta.json)")
    meta = json.loads(meta_file.read_text())
    shards = sorted(path.glob("shard-*.npz"))
    if not shards:
        raise FileNotFoundError(f"{path} has no shard-*.npz files")
    fields = {**_FIELDS, **(_META_FIELDS if with_meta else {})}
    parts: dict[str, list[np.ndarray]] = {k: [] for k in fields}
    for shard in shards:
        with np.load(shard) as z:
            for key, dtype in fields.items():
                if key not in z:
                    raise KeyError(f"{shard} lacks array {key!r}")
                parts[key].append(np.asarray(z[key], dtype=dtype))
    arrays = {k: np.concatenate(v, axis=0) for k, v in parts.items()}
    n = len(arrays["amplitude"])
    if meta.get("num_samples", n) != n:
        raise ValueError(f"{path}: meta.json says {meta['num_samples']} samples, shards hold {n}")
    return arrays, meta


class CsiWindows(Dataset):
    """One split in memory; phase sanitised once on load (`sanitize_phase(phase, axis=-3, **sanitize)`).

    ``room_inputs``: each window also carries its room's empty-room reference and geometry and its people's
    floor positions (wdp.data.room_context, re-derived from the simulated scene of its room and seed)."""

    def __init__(self, path: str | Path, sanitize: Mapping[str, Any] | None = None, room_inputs: bool = False) -> None:
        arrays, self.meta = read_split(path, with_meta=room_inputs)
        if room_inputs:
            from wdp.data.room_context import RoomContext  # the simulator: only for room inputs

            context = RoomContext(self.meta["config"], sanitize)
            arrays.update(context.arrays(arrays.pop("room_id"), arrays.pop("seed"), arrays.pop("t")))
        arrays["phase"] = sanitize_phase(arrays["phase"], axis=-3, **dict(sanitize or {}))
        self.arrays = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}

    def __len__(self) -> int:
        return len(self.arrays["amplitude"])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.arrays.items()}


def dataset_key(**settings: Any) -> str:
    """Short stable hash of what a generated dataset depends on (names its cache directory)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:10]


def people_probs(max_people: int, empty: float = 0.05) -> list[float]:
    """Simulator `people_probs` for "up to max_people per scene": P(0) = empty, else uniform over 1..max."""
    if max_people < 0 or max_people > MAX_PEOPLE:
        raise ValueError(f"num_people must be in 0..{MAX_PEOPLE}, got {max_people}")
    if max_people == 0:
        return [1.0]
    return [empty] + [(1.0 - empty) / max_people] * max_people


class CsiDataModule(pl.LightningDataModule):
    """Train/val/test windows from `root`/{train,val,test}.

    `num_people` N sets the simulator's people_probs to "0 people with p = 0.05, else 1..N uniformly" (unless
    `sim` sets people_probs itself; None keeps the simulator's default).

    With `root` unset the dataset lives in `cache_dir`/p<num_people>-<hash of the settings> and is generated
    by the simulator on first use (`generate=True`); seeds differ per split (seed, seed + 1, seed + 2).

    `rooms` maps a split to the room ids it is generated in (None: the split's own rooms, e.g. 80-99 for
    test). Naming one free room (>= 100) for every split gives a site dataset: one room, with people and
    seeds still disjoint between the splits (the paper's same-layout protocol).
    """

    def __init__(
        self,
        root: str | None = None,
        cache_dir: str = "data/sim",
        num_people: int | None = 2,
        num_train: int = 1024,
        num_val: int = 256,
        num_test: int = 256,
        seed: int = 0,
        shard_size: int = 256,
        sim: Mapping[str, Any] | None = None,
        generate: bool = True,
        batch_size: int = 32,
        num_workers: int = 0,
        sanitize: Mapping[str, Any] | None = None,
        rooms: Mapping[str, Sequence[int] | None] | None = None,
        room_inputs: bool = False,
    ) -> None:
        super().__init__()
        self.room_inputs = bool(room_inputs)
        self.rooms = {s: (None if r is None else [int(x) for x in r]) for s, r in dict(rooms or {}).items()}
        unknown = set(self.rooms) - set(SPLITS)
        if unknown:
            raise ValueError(f"rooms names unknown splits {sorted(unknown)}")
        self.sim_config = dict(sim or {})
        if num_people is not None and "people_probs" not in self.sim_config:
            self.sim_config["people_probs"] = people_probs(int(num_people))
        self.sizes = {"train": int(num_train), "val": int(num_val), "test": int(num_test)}
        self.seed = int(seed)
        self.shard_size = int(shard_size)
        self.generate = generate
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.sanitize = dict(sanitize or {})
        if root is None:
            settings: dict[str, Any] = {"sim": self.sim_config, "sizes": self.sizes, "seed": self.seed}
            if any(r is not None for r in self.rooms.values()):
                settings["rooms"] = self.rooms  # default rooms keep the keys of existing caches
            key = dataset_key(**settings)
            root = str(Path(cache_dir) / f"p{num_people if num_people is not None else 'sim'}-{key}")
        self.root = Path(root)
        self.splits: dict[str, CsiWindows] = {}

    def prepare_data(self) -> None:
        for offset, split in enumerate(SPLITS):
            out = self.root / split
            if (out / "meta.json").is_file():
                continue
            if not self.generate:
                raise FileNotFoundError(f"no dataset at {out} and data.generate is false")
            if out.exists() and not (out / "meta.json").is_file():  # an old writer died there: make room
                shutil.rmtree(out)
            self.root.mkdir(parents=True, exist_ok=True)
            try:
                from wdp.data import write_dataset
            except ImportError as exc:
                raise FileNotFoundError(
                    f"no dataset at {out}, and the simulator (wdp.data.write_dataset) is not there to make it"
                ) from exc
            log.info("generating %s split (%d windows) in %s", split, self.sizes[split], out)
            # Written beside the target and renamed into place: two runs generating the same cache at once
            # (or a run killed halfway) never leave a split that another run half-reads.
            tmp = Path(tempfile.mkdtemp(prefix=f".{split}-", dir=self.root))
            try:
                write_dataset(
                    tmp,
                    split,
                    self.sizes[split],
                    self.seed + offset,
                    self.sim_config,
                    shard_size=self.shard_size,
                    rooms=self.rooms.get(split),
                )
                try:
                    tmp.rename(out)
                except OSError:
                    if not (out / "meta.json").is_file():  # not a concurrent writer that finished first
                        raise
            finally:
                shutil.rmtree(tmp, ignore_errors=True)

    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for split in wanted.get(stage or "", SPLITS):
            if split not in self.splits:
                self.splits[split] = CsiWindows(self.root / split, self.sanitize, self.room_inputs)

    def split(self, name: str) -> CsiWindows:
        if name not in self.splits:
            self.splits[name] = CsiWindows(self.root / name, self.sanitize, self.room_inputs)
        return self.splits[name]

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.split(split),
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            drop_last=shuffle and len(self.split(split)) > self.batch_size,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def describe(self) -> dict[str, Any]:
        """What the model card records about the data."""
        meta = {s: ds.meta for s, ds in self.splits.items()}
        return {
            "root": str(self.root),
            "sim_config": self.sim_config,
            "sizes": self.sizes,
            "seed": self.seed,
            "rooms": self.rooms,
            "sanitize": {"axis": "subcarriers", "method": "endpoints", **self.sanitize},
            "splits": {s: {k: m.get(k) for k in ("split", "num_samples", "rooms", "version")} for s, m in meta.items()},
        }
