"""End-to-end training through train(cfg) on tiny contract-layout data (seconds per run)."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from contract_data import write_dataset_dirs
from hydra import compose, initialize_config_dir
from wheel_layout import conf_dir, ensure_wheel_layout

from wdp.model import load_exported
from wdp.model.spec import INPUT_SHAPE, OUTPUT_NAMES

ensure_wheel_layout()
from wdp.train.training import train  # noqa: E402

torch.set_num_threads(1)
# pytorch-lightning 2.6 calls torch's deprecated pytree LeafSpec on every loop start (not our code)
pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset_dirs(tmp_path_factory.mktemp("data"), {"train": 16, "val": 8, "test": 8}, max_people=2)


def _cfg(data_root: Path, out: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose(
            "train",
            overrides=["experiment=smoke", f"data.root={data_root}", f"paths.output_dir={out}", *overrides],
        )


def test_paper_run_logs_checkpoints_exports_and_plots(
    data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics, objects = train(_cfg(data_root, tmp_path, "model=paper"))
    for key in (
        "train/loss_epoch",
        "val/loss",
        "val/ap",
        "val/ap50",
        "val/ap75",
        "val/pck@0.2",
        "val/mpjpe",
        "val/joint_error/left_wrist",
        "val/part_miou",
        "val/body_iou",
        "val/dp_ap",
        "test/ap",
        "test/pck@0.2",
    ):
        assert key in metrics and np.isfinite(metrics[key]), key
    assert 0.0 <= metrics["test/ap"] <= 1.0
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file() and objects["best_ckpt"]
    header = (tmp_path / "csv" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/loss_epoch", "val/loss", "val/ap"} <= set(header)
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    for png in objects["plots"].values():
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    card = json.loads((tmp_path / "export" / "model_card.json").read_text())
    assert card["net"]["name"] == "paper" and card["input_spec"]["window"] == INPUT_SHAPE[0]
    assert card["input_spec"]["sanitization"]["method"] == "endpoints"
    assert len(card["training"]["config_hash"]) == 64
    assert card["training"]["best_checkpoint"] == objects["best_ckpt"] and card["training"]["checkpoint_epoch"] == 0
    assert card["metrics"]["test/ap"] == pytest.approx(metrics["test/ap"])
    assert 0.0 < card["decode"]["min_score"] < 1.0  # calibrated on the val split, used by `wdp serve`
    assert 0.0 < card["decode"]["keypoint_score_ref"] < 1.0 and 0.0 < card["decode"]["score_ref"] < 1.0
    assert {"test/center_error", "test/center_error_const", "test/top1_mpjpe"} <= set(card["metrics"])
    assert {"test/part_miou", "test/dp_ap", "test/dp_ap50", "test/dp_gps_mean"} <= set(card["metrics"])  # dense
    assert len(card["keypoint_names"]) == 17 and card["part_classes"][0] == "background"
    # the exported files are the trained net: same outputs as the eager net (ONNX and TorchScript)
    net = objects["model"].net.eval()
    amp, phase = torch.rand(3, *INPUT_SHAPE) + 0.5, torch.randn(3, *INPUT_SHAPE)
    with torch.no_grad():
        eager = dict(zip(OUTPUT_NAMES, net(amp, phase), strict=True))
    for backend in ("torchscript", "onnx"):
        outs = load_exported(tmp_path / "export", backend=backend)(amp, phase)
        for name in OUTPUT_NAMES:
            torch.testing.assert_close(outs[name], eager[name], atol=1e-5, rtol=1e-5)

    # bench/compare_nets.py scores the export on the test split exactly as training did (then a net against
    # itself differs by nothing in every resample)
    export = str(tmp_path / "export")
    argv = [export, export, "--split", str(data_root / "test"), "--resamples", "5", "--json"]
    report = json.loads(_run_script("compare_nets.py", argv, capsys))
    for m in ("ap", "ap50", "pck@0.2", "center_error"):
        assert report[m]["A"] == pytest.approx(card["metrics"][f"test/{m}"], rel=1e-5, abs=1e-6), m
        assert report[m]["A_minus_B"] == 0.0 and report[m]["ci95"] == [0.0, 0.0] and report[m]["p_A_better"] == 0.0
    assert report["windows"] == 8 and report["A"] == report["B"] == "paper"


def _run_script(name: str, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    script = Path(__file__).resolve().parents[1] / "bench" / name
    capsys.readouterr()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", [str(script), *argv])
        runpy.run_path(str(script), run_name="__main__")
    return capsys.readouterr().out


# resuming into a fresh output dir (as a new Hydra run does): Lightning notes it cannot reload top-k state
@pytest.mark.filterwarnings("ignore:The dirpath has changed:UserWarning")
def test_wdpnet_run_resume_and_seed(data_root: Path, tmp_path: Path) -> None:
    fast = ("model=wdpnet", "export.enabled=false", "plots.enabled=false", "logger=csv")
    first, objs = train(_cfg(data_root, tmp_path / "a", *fast))
    steps_per_epoch = objs["trainer"].global_step
    assert objs["trainer"].current_epoch == 1 and steps_per_epoch == 2  # 16 windows / batch 8

    again, _ = train(_cfg(data_root, tmp_path / "b", *fast))  # same seed -> same run
    assert again["train/loss_epoch"] == pytest.approx(first["train/loss_epoch"], rel=1e-5)
    assert again["val/loss"] == pytest.approx(first["val/loss"], rel=1e-5)

    last = tmp_path / "a" / "checkpoints" / "last.ckpt"
    resumed, objs = train(_cfg(data_root, tmp_path / "c", *fast, f"ckpt_path={last}", "trainer.max_epochs=2"))
    assert objs["trainer"].current_epoch == 2
    assert objs["trainer"].global_step == 2 * steps_per_epoch  # continued, not restarted
