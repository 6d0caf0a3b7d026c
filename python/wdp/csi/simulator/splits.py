"""Train / val / test splits with disjoint rooms, people (body parameters) and scene seeds.

* Rooms: room geometry, antenna and camera placement derive from room_id alone; ids 0-63 train,
  64-79 val, 80-99 test. Ids >= 100 are free for scripted / realtime scenes (split None).
* People: a body is derived from a subject id; each split draws its people from its own id range,
  and a random scene picks subjects from the range of its room's split.
* Seeds: the scene seeds of a split are the integers congruent to its code modulo 3, so two splits
  never share a scene seed whatever base seed they were written with.
"""

from __future__ import annotations

SPLITS = ("train", "val", "test")
SPLIT_ROOMS: dict[str, range] = {"train": range(0, 64), "val": range(64, 80), "test": range(80, 100)}
SPLIT_SUBJECTS: dict[str, range] = {
    "train": range(0, 1000),
    "val": range(1000, 1200),
    "test": range(1200, 1500),
}
FREE_SUBJECTS = range(1500, 3000)  # people of scenes in rooms outside the three splits
# Random scenes in a free room (a "site": one room trained and tested on, as in the paper's same-layout
# protocol) draw their people by the split of the scene seed, so a site's train/val/test windows share the
# room but never a person or a seed.
SITE_SUBJECTS: dict[str, range] = {
    "train": range(1500, 2500),
    "val": range(2500, 2700),
    "test": range(2700, 3000),
}
SPLIT_CODE: dict[str, int] = {"train": 0, "val": 1, "test": 2}
MAX_BASE_SEED = 1 << 28
MAX_SCENES = 1 << 32


def check_split(split: str) -> str:
    if split not in SPLIT_CODE:
        raise ValueError(f"unknown split {split!r} (expected one of {SPLITS})")
    return split


def split_of_room(room_id: int) -> str | None:
    for name, rooms in SPLIT_ROOMS.items():
        if room_id in rooms:
            return name
    if room_id < 0:
        raise ValueError("room_id must be >= 0")
    return None


def subjects_of_room(room_id: int, seed: int | None = None) -> range:
    """People a scene in this room draws from: its split's range; in a free room, FREE_SUBJECTS, or with
    a scene seed the SITE_SUBJECTS range of the seed's split."""
    split = split_of_room(room_id)
    if split is not None:
        return SPLIT_SUBJECTS[split]
    return FREE_SUBJECTS if seed is None else SITE_SUBJECTS[split_of_seed(seed)]


def scene_seed(split: str, base_seed: int, index: int) -> int:
    """Seed of the index-th scene of a split written with base_seed; disjoint across splits."""
    check_split(split)
    if not 0 <= base_seed < MAX_BASE_SEED or not 0 <= index < MAX_SCENES:
        raise ValueError("base_seed or scene index out of range")
    return 3 * (base_seed * MAX_SCENES + index) + SPLIT_CODE[split]


def split_of_seed(seed: int) -> str:
    return SPLITS[seed % 3]
