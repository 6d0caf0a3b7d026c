"""data=mmfi on a small synthetic tree in MM-Fi's published layout (MM-Fi itself is not on this machine):
protocols P1-P3 and settings S1-S3 as MM-Fi's toolbox defines them, the conversion to the sample contract,
and a training run on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from scipy.io import savemat
from wheel_layout import conf_dir, ensure_wheel_layout

from wdp import schemas_sample as S

ensure_wheel_layout()
from wdp.train.mmfi_data import ALL_SUBJECTS, MMFiDataModule, split_sequences, to_contract_window  # noqa: E402
from wdp.train.training import train  # noqa: E402

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")
FRAMES = 6


def _conf() -> dict:
    return yaml.safe_load((conf_dir() / "data" / "mmfi.yaml").read_text())


def make_tree(root: Path, seqs: list[tuple[str, str, str]], rgb_for: set[str]) -> Path:
    rng = np.random.default_rng(0)
    for env, subj, act in seqs:
        d = root / env / subj / act
        (d / "wifi-csi").mkdir(parents=True)
        gt = rng.normal(0, 0.3, (FRAMES, 17, 3)).astype(np.float32)
        np.save(d / "ground_truth.npy", gt)
        for k in range(1, FRAMES + 1):
            amp = rng.uniform(5, 20, (3, 114, 10))
            amp[0, 5, 2] = np.inf  # MM-Fi has infinite values: the toolbox's fill rule applies
            savemat(d / "wifi-csi" / f"frame{k:03d}.mat", {"CSIamp": amp, "CSIphase": rng.uniform(-3, 3, (3, 114, 10))})
            if subj in rgb_for:
                (d / "rgb").mkdir(exist_ok=True)
                np.save(d / "rgb" / f"frame{k:03d}.npy", np.tile([[320.0, 240.0]], (17, 1)).astype(np.float32))
        (d / "wifi-csi" / f"frame{FRAMES:03d}.mat").write_bytes(b"")  # MM-Fi has empty frame files: skipped
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    seqs = [("E01", "S01", "A02"), ("E01", "S05", "A02"), ("E01", "S05", "A01"), ("E04", "S31", "A02")]
    seqs += [("E02", "S12", "A02"), ("E03", "S23", "A02")]
    return make_tree(tmp_path_factory.mktemp("mmfi"), seqs, rgb_for={"S01"})


def test_protocols_and_settings_are_mmfis() -> None:
    c = _conf()
    assert len(c["protocols"]["P1"]) == 14 and len(c["protocols"]["P2"]) == 13 and len(c["protocols"]["P3"]) == 27
    assert not set(c["protocols"]["P1"]) & set(c["protocols"]["P2"])
    s1 = split_sequences(c["protocols"]["P1"], "S1", c["settings"])
    # MM-Fi's toolbox: np.random.seed(rs); permutation(40); first floor(0.8 * 40) train; rs += 1 per action
    for rs, action in enumerate(c["protocols"]["P1"]):
        np.random.seed(rs)
        idx = np.random.permutation(40)
        assert {s for s, a in s1["train"] if a == action} == {ALL_SUBJECTS[i] for i in idx[:32]}
    s2 = split_sequences(["A01"], "S2", c["settings"])
    assert [s for s, _ in s2["test"]] == ["S05", "S10", "S15", "S20", "S25", "S30", "S35", "S40"]
    s3 = split_sequences(["A01"], "S3", c["settings"])
    assert {s for s, _ in s3["test"]} == {f"S{i}" for i in range(31, 41)} and len(s3["train"]) == 30


def test_frame_to_contract_window() -> None:
    x = np.zeros((3, 114, 10), np.float32)
    x[1, :, 4] = np.linspace(0, 113, 114)  # rx 1, packet 4 (window frame 1): a ramp over the subcarriers
    w = to_contract_window(x)
    assert w.shape == (S.WINDOW, S.N_SUB, S.N_RX, S.N_TX)
    np.testing.assert_allclose(w[1, :, 1, 0], np.linspace(0, 113, 30), atol=1e-4)
    assert (w[..., 0] == w[..., 2]).all() and w[0].max() == 0


def test_mmfi_datamodule_p1_s3(tree, tmp_path) -> None:
    c = _conf()
    dm = MMFiDataModule(
        str(tree),
        protocol="P1",
        setting="S3",
        protocols=c["protocols"],
        settings=c["settings"],
        cache_dir=str(tmp_path),
        val_fraction=0.3,
        seed=0,
    )
    dm.prepare_data()
    dm.setup()

    def meta(split: str, key: str) -> np.ndarray:
        return np.concatenate([np.load(f)[key] for f in sorted((dm.root / split).glob("shard-*.npz"))])

    env = {s: {int(v) for v in meta(s, "room_id")} for s in ("train", "val", "test")}
    assert env["test"] == {4} and env["train"] | env["val"] <= {1, 2, 3}
    seeds = {int(v) for s in ("train", "val", "test") for v in meta(s, "seed")}
    assert all(v % 100 == 2 for v in seeds)  # P1 has A02, not A01
    n = sum(len(dm.split(s)) for s in ("train", "val", "test"))
    assert n == 5 * (FRAMES - 1)  # the empty frame file of each sequence is skipped
    tr = dm.split("test").arrays
    assert tr["amplitude"].shape[1:] == (5, 30, 3, 3) and torch.isfinite(tr["amplitude"]).all()
    assert (tr["num_people"] == 1).all()
    # S01 has MM-Fi's 2D keypoints (pixel 320, 240 of 640x480): the image centre in the model image
    for s in ("train", "val"):
        a = dm.split(s).arrays
        rows = torch.from_numpy(meta(s, "seed") == 102)
        if rows.any():
            np.testing.assert_allclose(a["keypoints"][rows][:, 0, :, :2].numpy(), 128.0)
    card = dm.describe()
    assert card["protocol"] == "P1" and card["setting"] == "S3" and card["subjects"]["test"][0] == "S31"


def test_train_on_mmfi(tree, tmp_path) -> None:
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "data=mmfi",
                f"data.root={tree}",
                "data.protocol=P3",
                "data.setting=S2",
                f"paths.output_dir={tmp_path}",
                f"data.cache_dir={tmp_path / 'cache'}",
                "data.batch_size=8",
                "model=wdpnet_tiny",
                "trainer=cpu",
                "trainer.max_epochs=1",
                "trainer.log_every_n_steps=1",
                "+trainer.enable_model_summary=false",
                "export.onnx_optimize=false",
                "plots.enabled=false",
            ],
        )
    metrics, objects = train(cfg)
    assert np.isfinite(metrics["test/loss"])
    import json

    card = json.loads((tmp_path / "export" / "model_card.json").read_text())
    assert card["training"]["data"]["kind"] == "mmfi" and card["training"]["data"]["setting"] == "S2"
