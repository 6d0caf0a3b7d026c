"""Datasets: simulated shards (write_dataset / ShardDataset), MM-Fi's WiFi-CSI layout (MMFiDataset) and the
real labelled recordings of ../shared/data/real (Recording, iter_recordings, PROTOCOLS)."""

from __future__ import annotations

from wdp.csi.simulator.splits import SPLIT_ROOMS, SPLIT_SUBJECTS, SPLITS, scene_seed
from wdp.data.mmfi import MMFiDataset
from wdp.data.real import (
    PROTOCOLS,
    FileRow,
    Fold,
    Recording,
    Truth,
    available_recordings,
    default_root,
    files_tsv,
    fixtures_dir,
    iter_recordings,
    load_recording,
    read_files_tsv,
    split,
)
from wdp.data.shards import ShardDataset, generate_scenes, write_dataset

__all__ = [
    "PROTOCOLS",
    "SPLITS",
    "SPLIT_ROOMS",
    "SPLIT_SUBJECTS",
    "FileRow",
    "Fold",
    "MMFiDataset",
    "Recording",
    "ShardDataset",
    "Truth",
    "available_recordings",
    "default_root",
    "files_tsv",
    "fixtures_dir",
    "generate_scenes",
    "iter_recordings",
    "load_recording",
    "read_files_tsv",
    "scene_seed",
    "split",
    "write_dataset",
]
