"""Targets, losses and the datamodule on contract-layout data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from contract_data import random_sample, write_split
from wheel_layout import ensure_wheel_layout

from wdp.csi.sanitize_numpy import sanitize_phase
from wdp.model import WdpNet
from wdp.model.spec import MAP_H, MAP_W, image_to_map

ensure_wheel_layout()
from wdp.train.datamodule import CsiDataModule, CsiWindows, people_probs, read_split  # noqa: E402
from wdp.train.losses import compute_losses  # noqa: E402
from wdp.train.targets import encode_targets  # noqa: E402

torch.set_num_threads(1)


def _batch(n: int, seed: int) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    samples = [random_sample(rng, 3) for _ in range(n)]
    return {k: torch.from_numpy(np.stack([s[k] for s in samples])) for k in samples[0]}


def test_targets_agree_with_labels() -> None:
    batch = _batch(12, 0)
    t = encode_targets(batch)
    assert t["center_heatmap"].shape == (12, 1, MAP_H, MAP_W)
    assert t["keypoint_heatmaps"].shape == (12, 17, MAP_H, MAP_W)
    assert float(t["center_heatmap"].max()) <= 1.0
    for i in range(12):
        n = int(batch["num_people"][i])
        assert int(t["person_mask"][i].sum()) == n
        assert int((t["center_heatmap"][i] == 1).sum()) >= n  # one positive cell per person (ties: two)
        for p in range(n):
            cell = int(t["center_index"][i, p])
            assert float(t["center_heatmap"][i, 0].flatten()[cell]) == 1.0
            cx, cy = cell % MAP_W, cell // MAP_W
            vis = batch["keypoints"][i, p, :, 2] > 0
            joints = image_to_map(batch["keypoints"][i, p, :, :2])
            recon = torch.tensor([cx, cy], dtype=torch.float32) + t["offsets"][i, p]
            torch.testing.assert_close(recon[vis], joints[vis])
            assert torch.equal(t["offset_mask"][i, p], vis)


def test_losses_dict_and_overfit_one_batch() -> None:
    torch.manual_seed(0)
    batch = _batch(4, 1)
    net = WdpNet(width=8, embed_dim=32, seed_channels=16, head_channels=8, dropout=0.0)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    target = encode_targets(batch)
    first = None
    for _ in range(60):
        losses = compute_losses(net(batch["amplitude"], batch["phase"]), target)
        assert set(losses) == {"center", "offsets", "keypoint_heatmaps", "parts", "uv", "loss"}
        if first is None:
            first = {k: float(v.detach()) for k, v in losses.items()}
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
    last = {k: float(v.detach()) for k, v in losses.items()}
    assert last["loss"] < 0.5 * first["loss"]
    assert last["center"] < first["center"] and last["parts"] < first["parts"]


def test_datamodule_reads_contract_layout(tmp_path: Path) -> None:
    for split, n in (("train", 20), ("val", 6), ("test", 6)):
        write_split(tmp_path / split, split, n, seed=len(split))
    arrays, meta = read_split(tmp_path / "train")
    assert len(arrays["amplitude"]) == 20 and meta["split"] == "train"  # 2 shards of 16 + 4
    dm = CsiDataModule(root=str(tmp_path), batch_size=8, sanitize={"method": "lstsq"})
    dm.prepare_data()  # data exists: nothing to generate
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["amplitude"].shape == (8, 5, 30, 3, 3) and batch["amplitude"].dtype == torch.float32
    assert batch["part_mask"].dtype == torch.uint8 and batch["num_people"].dtype == torch.int64
    ds = dm.split("val")
    np.testing.assert_allclose(
        ds.arrays["phase"].numpy(),
        sanitize_phase(read_split(tmp_path / "val")[0]["phase"], method="lstsq"),
        atol=1e-6,
    )
    assert dm.describe()["splits"]["train"]["num_samples"] == 20


def test_missing_or_broken_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dm = CsiDataModule(root=str(tmp_path / "none"), generate=False)
    with pytest.raises(FileNotFoundError, match="generate is false"):
        dm.prepare_data()
    # without the simulator a missing dataset is a clear error, not an ImportError deep in Lightning
    monkeypatch.setitem(__import__("sys").modules, "wdp.data", None)
    with pytest.raises(FileNotFoundError, match="simulator"):
        CsiDataModule(root=str(tmp_path / "none")).prepare_data()
    bad = write_split(tmp_path / "bad", "train", 4, seed=0)
    meta = json.loads((bad / "meta.json").read_text())
    (bad / "meta.json").write_text(json.dumps({**meta, "num_samples": 5}))
    with pytest.raises(ValueError, match="5 samples"):
        CsiWindows(bad)


def test_generation_is_delegated_to_the_simulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_write_dataset(out_dir, split, num_samples, seed, sim_config, shard_size=256, rooms=None):
        assert Path(out_dir).parent == dm.root and Path(out_dir).name.startswith(f".{split}-")  # renamed later
        calls.append((split, split, num_samples, seed, sim_config, shard_size, rooms))
        write_split(out_dir, split, num_samples, seed)

    import types

    monkeypatch.setitem(__import__("sys").modules, "wdp.data", types.SimpleNamespace(write_dataset=fake_write_dataset))
    dm = CsiDataModule(cache_dir=str(tmp_path), num_people=3, num_train=5, num_val=3, num_test=2, seed=7, shard_size=4)
    dm.prepare_data()
    assert [c[:4] for c in calls] == [("train", "train", 5, 7), ("val", "val", 3, 8), ("test", "test", 2, 9)]
    assert calls[0][4] == {"people_probs": people_probs(3)} and calls[0][5] == 4
    assert dm.root.parent == tmp_path and dm.root.name.startswith("p3-")
    assert all(c[6] is None for c in calls)  # the splits' own rooms
    assert all((dm.root / s / "meta.json").is_file() for s in ("train", "val", "test"))
    assert not list(dm.root.glob(".*"))  # no temporary directories left
    dm.prepare_data()  # second time: cached
    assert len(calls) == 3
    assert people_probs(2) == pytest.approx([0.05, 0.475, 0.475])


def test_simulator_data_round_trip(tmp_path: Path) -> None:
    """With the simulator merged: its windows load, and labels -> targets -> decode reproduces them (AP 1)."""
    pytest.importorskip("wdp.data", reason="simulator (sim branch) not merged yet")
    from test_model_decode import _images, perfect_outputs

    from wdp.model.decode import decode_poses
    from wdp.model.metrics import keypoint_ap

    dm = CsiDataModule(cache_dir=str(tmp_path), num_people=2, num_train=8, num_val=8, num_test=48, shard_size=16)
    dm.prepare_data()
    test = dm.split("test")
    batch = dict(test.arrays)
    assert int(batch["num_people"].sum()) > 20
    decoded = decode_poses(*perfect_outputs(batch), refine_threshold=2.0)
    assert keypoint_ap(_images(batch, decoded))["ap"] == pytest.approx(1.0)


def test_site_rooms_reach_the_writer_and_name_their_own_cache(tmp_path: Path) -> None:
    """data.rooms: one free room for every split (a site dataset) is generated there, with the splits still
    disjoint in people and seeds; the cache key differs from the default rooms'; unknown splits are refused."""
    pytest.importorskip("wdp.data")
    site = {"train": [101], "val": [101], "test": [101]}
    kw = dict(cache_dir=str(tmp_path), num_people=1, num_train=16, num_val=16, num_test=16, shard_size=16)
    dm = CsiDataModule(rooms=site, **kw)
    assert dm.root != CsiDataModule(**kw).root
    assert CsiDataModule(rooms={"train": None}, **kw).root == CsiDataModule(**kw).root
    dm.prepare_data()
    metas = {s: json.loads((dm.root / s / "meta.json").read_text()) for s in ("train", "val", "test")}
    assert all(m["rooms"] == [101] for m in metas.values())
    from wdp.data import ShardDataset

    meta = {s: ShardDataset(dm.root / s).stacked(["room_id", "seed"]) for s in metas}
    assert all(set(m["room_id"].tolist()) == {101} for m in meta.values())
    seeds = {s: set(m["seed"].tolist()) for s, m in meta.items()}
    assert not seeds["train"] & seeds["test"] and not seeds["train"] & seeds["val"]
    assert dm.describe()["rooms"] == site
    with pytest.raises(ValueError, match="unknown splits"):
        CsiDataModule(rooms={"trian": [101]}, **kw)


def test_concurrent_generation_of_one_cache_is_safe(tmp_path: Path) -> None:
    """Two runs preparing the same dataset at once (two training commands started together) both end with
    complete, identical splits."""
    pytest.importorskip("wdp.data")
    import threading

    kw = dict(cache_dir=str(tmp_path), num_people=1, num_train=24, num_val=8, num_test=8, shard_size=8)
    dms = [CsiDataModule(**kw), CsiDataModule(**kw)]
    errors: list[BaseException] = []

    def prep(dm: CsiDataModule) -> None:
        try:
            dm.prepare_data()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=prep, args=(dm,)) for dm in dms]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    a, _ = read_split(dms[0].root / "train")
    assert len(a["amplitude"]) == 24
    assert not list(dms[0].root.glob(".*"))


def test_smoke_experiment_is_tiny_and_keeps_its_data_out_of_the_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from wheel_layout import conf_dir

    repo = Path(__file__).resolve().parents[1]

    def smoke(*overrides: str):
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            return compose("train", overrides=["experiment=smoke", f"paths.output_dir={tmp_path / 'run'}", *overrides])

    monkeypatch.delenv("WDP_DATA_DIR", raising=False)
    monkeypatch.chdir(repo)  # where a user runs it: a relative data dir would land in the checkout
    cfg = smoke()
    cache = Path(cfg.data.cache_dir).resolve()
    assert cache.is_relative_to(tmp_path / "run"), cache
    net = instantiate(cfg.model.net)
    assert isinstance(net, WdpNet) and cfg.model.name == "wdpnet"
    assert sum(p.numel() for p in net.parameters()) < 100_000  # the shipped model has 1.37 M
    monkeypatch.setenv("WDP_DATA_DIR", str(tmp_path / "cache"))
    assert Path(smoke().data.cache_dir) == tmp_path / "cache" / "sim"
    assert smoke("model=paper").model.net.width == 8  # the other net keeps the shared smoke sizes
