"""Datasets: shard writer/loader round trip, split disjointness, MM-Fi layout loader."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.io import savemat

from wdp import schemas_sample as S
from wdp.csi.simulator import SceneSimulator, SimConfig, random_scene
from wdp.csi.simulator.splits import (
    FREE_SUBJECTS,
    SITE_SUBJECTS,
    SPLIT_ROOMS,
    SPLIT_SUBJECTS,
    SPLITS,
    scene_seed,
    split_of_room,
    split_of_seed,
    subjects_of_room,
)
from wdp.data import MMFiDataset, ShardDataset, write_dataset

SMALL = SimConfig(windows_per_scene=6, scene_duration_s=4.0)


# ---- splits ---------------------------------------------------------------------------------------------


def test_split_rooms_subjects_and_seeds_are_disjoint():
    for a in SPLITS:
        for b in SPLITS:
            if a < b:
                assert not set(SPLIT_ROOMS[a]) & set(SPLIT_ROOMS[b])
                assert not set(SPLIT_SUBJECTS[a]) & set(SPLIT_SUBJECTS[b])
    assert SPLIT_ROOMS["train"] == range(0, 64) and SPLIT_ROOMS["test"] == range(80, 100)
    seeds = {s: {scene_seed(s, base, i) for base in range(4) for i in range(300)} for s in SPLITS}
    assert all(len(v) == 4 * 300 for v in seeds.values())
    assert not seeds["train"] & seeds["val"] and not seeds["train"] & seeds["test"] and not seeds["val"] & seeds["test"]
    assert all(split_of_seed(x) == s for s in SPLITS for x in seeds[s])
    assert split_of_room(70) == "val" and split_of_room(123) is None


def test_random_scene_people_come_from_their_rooms_split():
    for room in (3, 70, 90):
        pool = subjects_of_room(room)
        for seed in range(4):
            for p in random_scene(room, seed, n_people=4).people:
                assert p.shape.subject_id in pool
    assert subjects_of_room(90) == SPLIT_SUBJECTS["test"]


def test_site_scenes_share_the_room_but_not_people():
    """Random scenes in a free room (a site) draw people by their seed's split: a site's test windows show
    people never trained on; scripted scenes there keep the free pool."""
    people = {
        s: {p.shape.subject_id for i in range(6) for p in random_scene(101, scene_seed(s, 0, i), n_people=4).people}
        for s in SPLITS
    }
    for s in SPLITS:
        assert people[s] and people[s] <= set(SITE_SUBJECTS[s]), s
    assert not people["train"] & people["test"] and not people["train"] & people["val"]
    assert subjects_of_room(101) == FREE_SUBJECTS
    assert all(set(SITE_SUBJECTS[s]) <= set(FREE_SUBJECTS) for s in SPLITS)


def test_write_dataset_rooms_may_name_a_site_but_not_another_split(tmp_path):
    out = write_dataset(tmp_path / "t", "test", 6, seed=0, sim_config=SMALL, rooms=[101], progress=False)
    assert json.loads((out / "meta.json").read_text())["rooms"] == [101]
    with pytest.raises(ValueError, match="another split"):
        write_dataset(tmp_path / "u", "test", 6, seed=0, sim_config=SMALL, rooms=[3], progress=False)


# ---- shards ---------------------------------------------------------------------------------------------


def test_write_dataset_and_shard_dataset_round_trip(tmp_path):
    out = write_dataset(tmp_path / "val", "val", num_samples=20, seed=3, sim_config=SMALL, shard_size=8, progress=False)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["version"] == 1 and meta["split"] == "val" and meta["num_samples"] == 20
    assert set(meta["rooms"]) <= set(SPLIT_ROOMS["val"]) and meta["rooms"]
    assert sorted(p.name for p in out.glob("shard-*.npz")) == [
        "shard-00000.npz",
        "shard-00001.npz",
        "shard-00002.npz",
    ]
    assert SimConfig.from_dict(meta["config"]) == SMALL

    ds = ShardDataset(out)
    assert len(ds) == 20 and ds.split == "val" and ds.config == SMALL
    first = ds[0]
    S.validate_sample(first)
    assert set(first) == set(S.SAMPLE_FIELDS) | set(S.META_FIELDS)
    for k, (dtype, shape) in S.META_FIELDS.items():
        assert first[k].dtype == dtype and first[k].shape == shape
    # values equal a direct simulation of the first scene
    direct = SceneSimulator(random_scene(64, scene_seed("val", 3, 0), SMALL), SMALL).sample()
    for k in direct:
        np.testing.assert_array_equal(first[k], direct[k][0], err_msg=k)
        np.testing.assert_array_equal(ds[5][k], direct[k][5], err_msg=k)
    assert int(ds[6]["room_id"]) == 65  # second scene: next room of the split
    assert all(int(ds[i]["seed"]) % 3 == 1 for i in range(len(ds)))
    np.testing.assert_array_equal(ds[-1]["t"], ds[19]["t"])
    with pytest.raises(IndexError):
        ds[20]
    stacked = ds.stacked()
    S.validate_sample({k: stacked[k] for k in S.SAMPLE_FIELDS}, batched=True)
    assert len(stacked["t"]) == 20
    # items are copies: editing one does not change the dataset
    first["amplitude"][:] = -1
    assert ds[0]["amplitude"].min() >= 0


def test_write_dataset_is_deterministic_and_lru_cache_works(tmp_path):
    a = write_dataset(tmp_path / "a", "test", 10, seed=1, sim_config=SMALL, shard_size=4, progress=False)
    b = write_dataset(tmp_path / "b", "test", 10, seed=1, sim_config=SMALL, shard_size=4, progress=False)
    da, db = ShardDataset(a, cache_shards=1), ShardDataset(b)
    for i in (0, 9, 4, 0):
        for k in S.SAMPLE_FIELDS:
            np.testing.assert_array_equal(da[i][k], db[i][k])
    assert len(da._cache) == 1
    c = write_dataset(tmp_path / "c", "test", 10, seed=2, sim_config=SMALL, shard_size=4, progress=False)
    assert not np.array_equal(ShardDataset(c)[0]["amplitude"], da[0]["amplitude"])


def test_write_dataset_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        write_dataset(tmp_path, "holdout", 4, progress=False)
    with pytest.raises(ValueError):
        write_dataset(tmp_path, "train", 4, rooms=[70], progress=False)
    with pytest.raises(ValueError):
        write_dataset(tmp_path, "train", 0, progress=False)
    with pytest.raises(ValueError, match="unknown hardware preset"):
        write_dataset(tmp_path, "train", 4, sim_config={"hardware": "wifi9000"}, progress=False)
    with pytest.raises(FileNotFoundError):
        ShardDataset(tmp_path / "nothing")


@pytest.mark.parametrize(("hardware", "shape"), [("esp32", (5, 52, 1, 1)), ("nexmon", (5, 242, 1, 1))])
def test_hardware_preset_datasets_keep_their_csi_shape(tmp_path, hardware, shape):
    """A hardware preset writes windows of its own CSI shape (labels unchanged); the reader checks them
    against the shape its meta.json config gives, and the meta records the preset."""
    out = write_dataset(tmp_path / hardware, "train", 6, sim_config={"hardware": hardware}, progress=False)
    ds = ShardDataset(out)
    assert ds.config.hardware == hardware and ds.meta["fields"]["amplitude"]["shape"] == list(shape)
    sample = ds[0]
    assert sample["amplitude"].shape == shape and sample["phase"].shape == shape
    assert sample["keypoints"].shape == (S.MAX_PEOPLE, S.N_KEYPOINTS, 3)
    S.validate_sample({k: sample[k] for k in S.SAMPLE_FIELDS}, csi_shape=shape)
    with pytest.raises(ValueError, match="amplitude"):
        S.validate_sample({k: sample[k] for k in S.SAMPLE_FIELDS})  # not the default contract's shape


# ---- MM-Fi ----------------------------------------------------------------------------------------------


def _mmfi_tree(root, n_frames=6):
    """Two sequences in MM-Fi's layout with recognisable values; S02's frame 3 is an empty file."""
    rng = np.random.default_rng(0)
    truth = {}
    for env, subj, act in (("E01", "S01", "A01"), ("E01", "S02", "A03")):
        seq = root / env / subj / act
        (seq / "wifi-csi").mkdir(parents=True)
        gt = rng.normal(size=(n_frames, 17, 3)).astype(np.float64)
        np.save(seq / "ground_truth.npy", gt)
        amps, phases = [], []
        for n in range(1, n_frames + 1):
            amp = rng.uniform(5, 30, (3, 114, 10)) + 100 * n
            phase = rng.uniform(-np.pi, np.pi, (3, 114, 10))
            if n == 2:
                amp[1, 7, 4] = np.inf  # filled with the packet's finite mean
                phase[0, 0, 9] = np.nan
            savemat(seq / "wifi-csi" / f"frame{n:03d}.mat", {"CSIamp": amp, "CSIphase": phase})
            amps.append(amp)
            phases.append(phase)
        truth[(subj, act)] = (gt, amps, phases)
    (root / "E01" / "S02" / "A03" / "wifi-csi" / "frame003.mat").write_bytes(b"")
    (root / "E01" / "notes.txt").write_text("not a subject")
    return truth


def test_mmfi_layout_windows(tmp_path):
    truth = _mmfi_tree(tmp_path)
    ds = MMFiDataset(tmp_path)
    assert len(ds) == 6 + 5  # S02 lost its (empty) frame 3
    item = ds[0]
    assert (item["environment"], item["subject"], item["action"], item["frame"]) == ("E01", "S01", "A01", 0)
    assert item["amplitude"].shape == (1, 3, 114, 10) and item["amplitude"].dtype == np.float32
    assert item["phase"].shape == (1, 3, 114, 10) and item["keypoints"].shape == (1, 17, 3)
    gt, amps, phases = truth[("S01", "A01")]
    np.testing.assert_allclose(item["amplitude"][0], amps[0], rtol=1e-6)
    np.testing.assert_allclose(item["keypoints"][0], gt[0], rtol=1e-6)
    # the inf in frame 2 became the mean of its packet's finite values (MM-Fi toolbox rule)
    a2 = ds[1]["amplitude"][0]
    col = amps[1][:, :, 4]
    assert a2[1, 7, 4] == pytest.approx(col[np.isfinite(col)].mean(), rel=1e-5)
    p2 = ds[1]["phase"][0]
    pcol = phases[1][:, :, 9]
    assert p2[0, 0, 9] == pytest.approx(pcol[np.isfinite(pcol)].mean(), rel=1e-5, abs=1e-6)
    assert np.all(np.isfinite(a2))


def test_mmfi_windows_skip_missing_frames_and_filter(tmp_path):
    truth = _mmfi_tree(tmp_path)
    ds = MMFiDataset(tmp_path, subjects=["S02"], window=3, stride=1, with_phase=False)
    # S02 frames 0..5 with index 2 missing: only the window starting at 3 is complete
    assert [ds[i]["frame"] for i in range(len(ds))] == [3]
    item = ds[0]
    assert "phase" not in item and item["amplitude"].shape == (3, 3, 114, 10)
    gt, amps, _ = truth[("S02", "A03")]
    np.testing.assert_allclose(item["keypoints"], gt[3:6], rtol=1e-6)
    np.testing.assert_allclose(item["amplitude"][2], amps[5], rtol=1e-6)
    two = MMFiDataset(tmp_path, actions=["A01"], window=2, stride=2)
    assert [x["frame"] for x in two] == [0, 2, 4]
    assert len(MMFiDataset(tmp_path, environments=["E02"])) == 0
    wdp_layout = MMFiDataset.as_wdp_layout(item["amplitude"])
    assert wdp_layout.shape == (30, 114, 3, 1)
    np.testing.assert_array_equal(wdp_layout[10 + 4, :, 1, 0], item["amplitude"][1, 1, :, 4])
