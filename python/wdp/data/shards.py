"""Simulated datasets on disk: ``shard-00000.npz`` ... plus ``meta.json`` (see wdp.schemas_sample).

Each shard holds the stacked sample arrays (leading axis N) and the metadata arrays room_id, seed, t.
Scenes are generated in order; scene i of a split uses room ``rooms[i % len(rooms)]`` and seed
``scene_seed(split, seed, i)`` and contributes ``config.windows_per_scene`` windows.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wdp import schemas_sample as S
from wdp.csi.simulator.config import SimConfig
from wdp.csi.simulator.scene import random_scene
from wdp.csi.simulator.simulate import SceneSimulator
from wdp.csi.simulator.splits import SPLIT_ROOMS, check_split, scene_seed, split_of_room

FORMAT_VERSION = 1
META_FILE = "meta.json"
ALL_KEYS = (*S.SAMPLE_FIELDS, *S.META_FIELDS)


def shard_name(i: int) -> str:
    return f"shard-{i:05d}.npz"


def generate_scenes(
    split: str, num_samples: int, seed: int, config: SimConfig, rooms: Sequence[int] | None = None
) -> Iterator[dict[str, np.ndarray]]:
    """Stacked windows scene by scene until num_samples windows were produced (last one truncated)."""
    check_split(split)
    rooms = list(SPLIT_ROOMS[split] if rooms is None else rooms)
    produced, i = 0, 0
    while produced < num_samples:
        scene = random_scene(rooms[i % len(rooms)], scene_seed(split, seed, i), config)
        batch = SceneSimulator(scene, config).sample()
        take = min(len(batch["t"]), num_samples - produced)
        if take < len(batch["t"]):
            batch = {k: v[:take] for k, v in batch.items()}
        produced += take
        i += 1
        yield batch


def write_dataset(
    out_dir: str | Path,
    split: str,
    num_samples: int,
    seed: int = 0,
    sim_config: SimConfig | dict[str, Any] | None = None,
    shard_size: int = 1000,
    *,
    rooms: Sequence[int] | None = None,
    progress: bool = True,
    compress: bool = True,
) -> Path:
    """Generate `num_samples` simulated windows of `split` into `out_dir` (created; existing shards and
    meta.json there are replaced). `rooms` restricts the split's rooms (they must belong to it) or names
    free rooms (ids >= 100, no split): a site dataset whose splits share the room but not people or seeds."""
    check_split(split)
    cfg = SimConfig.coerce(sim_config)
    fields = S.sample_fields(cfg.csi_shape)  # the contract's labels with the config's CSI shape
    if num_samples < 1 or shard_size < 1:
        raise ValueError("num_samples and shard_size must be positive")
    if rooms is not None:
        if not rooms:
            raise ValueError("rooms is empty")
        foreign = [r for r in rooms if r not in SPLIT_ROOMS[split] and split_of_room(r) is not None]
        if foreign:
            raise ValueError(f"rooms {foreign} belong to another split than {split}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("shard-*.npz"):
        old.unlink()
    save = np.savez_compressed if compress else np.savez

    shards: list[dict[str, Any]] = []
    pending: list[dict[str, np.ndarray]] = []
    n_pending = 0
    rooms_used: set[int] = set()

    def flush(n: int) -> None:
        nonlocal pending, n_pending
        merged = {k: np.concatenate([b[k] for b in pending]) for k in ALL_KEYS}
        head = {k: v[:n] for k, v in merged.items()}
        rest = {k: v[n:] for k, v in merged.items()}
        name = shard_name(len(shards))
        save(out / name, **head)
        shards.append({"file": name, "num_samples": int(n)})
        pending = [rest] if len(rest["t"]) else []
        n_pending = len(rest["t"])

    with _progress(progress, num_samples, f"simulating {split}") as advance:
        for batch in generate_scenes(split, num_samples, seed, cfg, rooms):
            rooms_used.update(int(r) for r in np.unique(batch["room_id"]))
            pending.append(batch)
            n_pending += len(batch["t"])
            while n_pending >= shard_size:
                flush(shard_size)
            advance(len(batch["t"]))
        if n_pending:
            flush(n_pending)

    meta = {
        "version": FORMAT_VERSION,
        "split": split,
        "num_samples": int(num_samples),
        "rooms": sorted(rooms_used),
        "seed": int(seed),
        "config": cfg.to_dict(),
        "shards": shards,
        "fields": {k: {"dtype": str(d), "shape": list(s)} for k, (d, s) in {**fields, **S.META_FIELDS}.items()},
        "generator": "wdp.csi.simulator",
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2))
    return out


class _progress:
    """Rich progress bar (or nothing) yielding an `advance(n)` callable."""

    def __init__(self, enabled: bool, total: int, label: str):
        self.enabled, self.total, self.label = enabled, total, label
        self._bar: Any = None

    def __enter__(self) -> Callable[[int], None]:
        if not self.enabled:
            return lambda n: None
        # imported here: only the writer's progress bar needs rich
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("windows"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        self._bar.__enter__()
        task = self._bar.add_task(self.label, total=self.total)
        return lambda n: self._bar.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


class ShardDataset:
    """Indexable view of a dataset directory: ``ds[i]`` is a dict of numpy arrays (the sample fields
    of wdp.schemas_sample plus room_id, seed, t), fresh copies the caller may modify. Torch-free.

    Shards are loaded whole on first touch and kept (at most `cache_shards` of them when given,
    least recently used dropped); for shuffled training keep them all (the default) or read
    shard-aligned blocks (``shard_bounds``)."""

    def __init__(self, path: str | Path, *, cache_shards: int | None = None, keys: Sequence[str] | None = None):
        self.path = Path(path)
        meta_path = self.path / META_FILE
        if not meta_path.is_file():
            raise FileNotFoundError(f"{meta_path} not found")
        self.meta: dict[str, Any] = json.loads(meta_path.read_text())
        if self.meta.get("version") != FORMAT_VERSION:
            raise ValueError(f"unsupported dataset version {self.meta.get('version')!r}")
        entries = self.meta.get("shards") or [
            {"file": p.name, "num_samples": None} for p in sorted(self.path.glob("shard-*.npz"))
        ]
        self.files = [self.path / e["file"] for e in entries]
        sizes = [
            e["num_samples"] if e["num_samples"] is not None else self._count(f)
            for e, f in zip(entries, self.files, strict=True)
        ]
        self.shard_bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        if int(self.shard_bounds[-1]) != int(self.meta["num_samples"]):
            raise ValueError("shard sizes do not add up to meta.json num_samples")
        self.keys = tuple(keys) if keys is not None else ALL_KEYS
        unknown = set(self.keys) - set(ALL_KEYS)
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}")
        self.cache_shards = cache_shards
        cfg = self.meta.get("config")
        self._fields = {**S.sample_fields(SimConfig.from_dict(cfg).csi_shape if cfg else None), **S.META_FIELDS}
        self._cache: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()

    @staticmethod
    def _count(f: Path) -> int:
        with np.load(f) as z:
            return int(len(z["t"]))

    @property
    def split(self) -> str:
        return str(self.meta["split"])

    @property
    def config(self) -> SimConfig:
        return SimConfig.from_dict(self.meta["config"])

    def __len__(self) -> int:
        return int(self.shard_bounds[-1])

    def shard(self, i: int) -> dict[str, np.ndarray]:
        """All arrays of shard i (cached; do not modify)."""
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        with np.load(self.files[i]) as z:
            data = {k: z[k] for k in self.keys}
        for k, v in data.items():
            dtype, shape = self._fields[k]
            if v.dtype != dtype or v.shape[1:] != shape:
                raise ValueError(f"{self.files[i].name}: {k} is {v.dtype}{v.shape}, expected {dtype}(N, {shape})")
        self._cache[i] = data
        if self.cache_shards is not None:
            while len(self._cache) > max(self.cache_shards, 1):
                self._cache.popitem(last=False)
        return data

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        n = len(self)
        i = int(index)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {index} out of range for {n} samples")
        s = int(np.searchsorted(self.shard_bounds, i, side="right") - 1)
        data = self.shard(s)
        j = i - int(self.shard_bounds[s])
        return {k: np.array(v[j]) for k, v in data.items()}

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        for i in range(len(self)):
            yield self[i]

    def stacked(self, keys: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Every sample of the dataset concatenated (one array per key)."""
        keys = self.keys if keys is None else tuple(keys)
        return {k: np.concatenate([self.shard(i)[k] for i in range(len(self.files))]) for k in keys}
