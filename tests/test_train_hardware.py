"""`python -m wdp.train hardware=<preset>`: simulated data, net input and model card of a hardware preset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from wheel_layout import compose_train, ensure_wheel_layout

from wdp.csi.simulator.hardware import HARDWARE_PRESETS

ensure_wheel_layout()
from wdp.engine import ModelRunner  # noqa: E402
from wdp.train.training import train  # noqa: E402

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")


def test_default_hardware_changes_nothing_in_the_intel_config() -> None:
    cfg = compose_train()
    assert dict(cfg.data.sim) == {} and "input_shape" not in cfg.model.net  # dataset cache keys unchanged
    nexmon = compose_train("hardware=nexmon", "model=paper")
    assert nexmon.data.sim.hardware == "nexmon" and list(nexmon.model.net.input_shape) == [5, 242, 1, 1]
    assert list(nexmon.data.sanitize.subcarrier_index) == list(HARDWARE_PRESETS["nexmon"].band.subcarrier_index)


def test_esp32_run_trains_on_esp32_windows_and_exports_an_esp32_card(tmp_path: Path) -> None:
    cfg = compose_train(
        "experiment=smoke",
        "hardware=esp32",
        f"paths.output_dir={tmp_path}",
        f"data.cache_dir={tmp_path / 'sim'}",
        "data.num_people=1",
        "export.formats=[torchscript]",
        "plots.enabled=false",
    )
    metrics, objects = train(cfg)
    assert objects["datamodule"].split("test").arrays["amplitude"].shape[1:] == (5, 52, 1, 1)
    card = json.loads(objects["exported"]["card"].read_text())
    spec = card["input_spec"]
    assert (spec["window"], spec["subcarriers"], spec["rx_antennas"], spec["tx_antennas"]) == (5, 52, 1, 1)
    assert spec["hardware"] == "esp32" and spec["frame_rate_hz"] == 100 and spec["band"]["bandwidth_mhz"] == 20
    assert card["hardware"]["card"].startswith("ESP32") and card["hardware"]["iq_bits"] == 8
    runner = ModelRunner.load(objects["exported"]["card"].parent)
    assert runner.spec.shape == (5, 52, 1, 1) and runner.spec.hardware == "esp32"
    assert len(runner.infer(torch.rand(2, 5, 52, 1, 1).numpy() + 1, torch.zeros(2, 5, 52, 1, 1).numpy())) == 2
