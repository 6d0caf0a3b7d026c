"""Datasets: simulated shards (write_dataset / ShardDataset) and MM-Fi's WiFi-CSI layout (MMFiDataset)."""

from __future__ import annotations

from wdp.csi.simulator.splits import SPLIT_ROOMS, SPLIT_SUBJECTS, SPLITS, scene_seed
from wdp.data.mmfi import MMFiDataset
from wdp.data.shards import ShardDataset, generate_scenes, write_dataset

__all__ = [
    "SPLITS",
    "SPLIT_ROOMS",
    "SPLIT_SUBJECTS",
    "MMFiDataset",
    "ShardDataset",
    "generate_scenes",
    "scene_seed",
    "write_dataset",
]
