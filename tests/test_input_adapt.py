"""Fitting real routers' frames to a model's input (wdp.engine.input_adapt), or refusing them with a reason:
ESP32 (64 FFT bins), nexmon (256 bins at 80 MHz) and Intel 5300 captures from ../shared/data/csi against the
cards of the hardware presets, through the windower and the real engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from engine_fixtures import TINY
from wheel_layout import ensure_wheel_layout

from wdp.csi import read_capture
from wdp.csi.simulator.hardware import HARDWARE_PRESETS
from wdp.csi.sources import ReplaySource
from wdp.engine import Engine, ModelRunner
from wdp.engine.input_adapt import plan_input, rate_check
from wdp.engine.windowing import RouterWindower, WindowSpec
from wdp.model import WdpNet

ESP32 = "esp32/esp32_csikit_100hz_pitraffic_one_bad_line.csv"
NEXMON80 = "nexmon/nexmon_bcm43455c0_80mhz_csikit_example.pcap"
INTEL_3X1 = "intel5300/intel5300_csiread_monitor_ch64_0x5_3000pkts.dat"
INTEL_MIXED = "intel5300/intel5300_csitool_sample_log.all_csi.6.7.6.dat"


def _spec(preset: str, **kw) -> WindowSpec:
    p = HARDWARE_PRESETS[preset]
    return WindowSpec(
        n_sub=len(p.band.subcarrier_index),
        n_rx=p.n_rx,
        n_tx=p.n_tx,
        subcarrier_index=tuple(float(v) for v in p.band.subcarrier_index),
        hardware=preset,
        **kw,
    )


def _plan(spec: WindowSpec, shape):
    return plan_input(
        shape,
        (spec.n_sub, spec.n_rx, spec.n_tx),
        spec.subcarrier_index,
        antenna_map=spec.antenna_map,
        tx_difference=spec.tx_difference,
        model_name=f"the model ({spec.hardware})",
    )


def test_esp32_capture_feeds_an_esp32_model_bin_for_bin(csi_dir: Path) -> None:
    cap = read_capture(csi_dir / ESP32)
    csi = np.stack(cap.csi[:40])  # (N, 64, 1, 1) in FFT order, guards at bins 27..37
    spec = _spec("esp32")
    plan = _plan(spec, csi.shape[1:])
    assert plan.ok and "52 taken, 0 interpolated" in plan.describe()
    out = plan.apply(csi[0])
    idx = np.asarray(HARDWARE_PRESETS["esp32"].band.subcarrier_index)
    np.testing.assert_array_equal(out[:, 0, 0], csi[0][np.where(idx > 0, idx, 64 + idx), 0, 0])
    assert np.all(np.abs(out) > 0)  # no guard or null bin among them
    wd = RouterWindower("esp", spec, float(cap.meta["timestamp"][0]))
    wins = [w for i in range(len(cap.csi)) for w in wd.push(float(cap.meta["timestamp"][i]), cap.csi[i], 0.0)]
    assert wins and wins[0].amplitude.shape == (5, 52, 1, 1)
    st = wd.status()
    assert st.state == "on" and st.shape == [64, 1, 1] and st.model_shape == [52, 1, 1]


def test_nexmon_80mhz_feeds_nexmon_and_narrower_models_esp32_is_refused_by_nexmon(csi_dir: Path) -> None:
    frame = read_capture(csi_dir / NEXMON80).csi[0]  # (256, 1, 1)
    nex = _plan(_spec("nexmon"), frame.shape)
    assert nex.ok and "242 taken" in nex.describe()
    # the central 20 MHz of the 80 MHz channel feeds a 20 MHz model
    esp_model = _plan(_spec("esp32"), frame.shape)
    assert esp_model.ok and esp_model.apply(frame).shape == (52, 1, 1)
    # a 20 MHz ESP32 cannot feed an 80 MHz model: refused, and the reason says why
    esp_frame = read_capture(csi_dir / ESP32).csi[0]
    refused = _plan(_spec("nexmon"), esp_frame.shape)
    assert not refused.ok and "too narrow" in refused.refusal and "-122..+122" in refused.refusal


def test_the_tx_difference_model_refuses_one_tx_routers_and_takes_3x3(csi_dir: Path) -> None:
    spec = WindowSpec.from_card(ModelRunner.load("default").model.card)  # the shipped Intel 5300 3x3 model
    assert spec.tx_difference and spec.antenna_map == "auto"
    esp = _plan(spec, read_capture(csi_dir / ESP32).csi[0].shape)
    assert not esp.ok and "phase difference between tx antennas" in esp.refusal
    intel = read_capture(csi_dir / INTEL_MIXED)
    shapes = {tuple(c.shape): _plan(spec, c.shape).ok for c in intel.csi}
    assert shapes == {(30, 3, 1): False, (30, 3, 2): False, (30, 3, 3): True}
    # asked for, the old behaviour (repeat the antennas) is still there
    assert _plan(WindowSpec(tx_difference=True, antenna_map="cyclic"), (30, 3, 1)).ok
    # a 3x3 Atheros frame feeds a 1x1 model with its first link
    sub = _plan(_spec("esp32"), (56, 3, 3))
    assert sub.ok and sub.apply(np.ones((56, 3, 3), np.complex64)).shape == (52, 1, 1)


def test_rate_check_refuses_routers_too_slow_to_fill_a_window() -> None:
    refusal, note = rate_check(np.arange(20) / 5.0, 100.0, 0.1, 5)  # 5 packets/s
    assert refusal is not None and "~5.0 packets/s" in refusal and note is None
    refusal, note = rate_check(np.arange(20) / 40.0, 100.0, 0.1, 5)  # 40/s: usable, packets repeated
    assert refusal is None and "repeated" in note
    assert rate_check(np.arange(20) / 100.0, 100.0, 0.1, 5) == (None, None)
    wd = RouterWindower("slow", _spec("esp32"), 0.0)
    frame = np.ones((64, 1, 1), np.complex64)
    for i in range(30):
        wd.push(i / 5.0, frame, 0.0)
    assert wd.refused and wd.status().state == "off" and wd.stats.windows == 0
    for i in range(40):  # the router speeds up: taken again
        wd.push(6.0 + i / 100.0, frame, 0.0)
    assert not wd.refused and wd.stats.windows > 0


@pytest.fixture(scope="module")
def esp32_model(tmp_path_factory) -> Path:
    """A tiny 1x1 x 52 net exported as training exports an ESP32-preset model (card: hardware esp32)."""
    ensure_wheel_layout()
    from wdp.train.export import export_net

    p = HARDWARE_PRESETS["esp32"]
    torch.manual_seed(0)
    net = WdpNet(**TINY, input_shape=(5, 52, 1, 1)).eval()
    out = tmp_path_factory.mktemp("esp32-model")
    export_net(
        net,
        out,
        net_name="wdpnet",
        formats=("torchscript",),
        net_params=TINY,
        onnx_optimize=False,
        sanitization={"method": "endpoints", "subcarrier_index": list(p.band.subcarrier_index)},
        hardware=p.describe(),
    )
    return out


def test_engine_runs_an_esp32_capture_on_the_esp32_model_and_refuses_it_on_the_3x3_one(
    csi_dir: Path, esp32_model: Path
) -> None:
    from wdp.serve.engine_adapter import pose_input_health

    runner = ModelRunner.load(esp32_model)
    assert runner.spec.hardware == "esp32" and runner.spec.shape == (5, 52, 1, 1)
    assert runner.model.card["input_spec"]["band"]["bandwidth_mhz"] == 20
    with Engine([ReplaySource(csi_dir / ESP32, router_id="esp", realtime=False)], model=runner) as engine:
        assert engine.wait(60)
    m = engine.metrics()
    (st,) = m.pose_input
    assert st.state == "on" and st.windows > 0 and m.frames > 0 and st.rejected == 0
    assert pose_input_health(m.pose_input).status == "ok"

    default = ModelRunner.load("default")
    with Engine([ReplaySource(csi_dir / ESP32, router_id="esp", realtime=False)], model=default) as engine:
        assert engine.wait(60)  # a refused router does not hold the engine up
    m = engine.metrics()
    (st,) = m.pose_input
    assert st.state == "off" and st.windows == 0 and st.rejected == st.packets > 0 and m.frames == 0
    health = pose_input_health(m.pose_input)
    assert health.status == "degraded" and "esp: refused" in health.detail and "tx antennas" in health.detail


@pytest.mark.parametrize(
    ("name", "shape", "capture"), [("esp32", (5, 52, 1, 1), ESP32), ("nexmon", (5, 242, 1, 1), NEXMON80)]
)
def test_shipped_hardware_models_take_their_hardware_captures(csi_dir: Path, name, shape, capture) -> None:
    """The shipped 1x1 models (python/wdp/models/esp32, nexmon) declare their hardware and run a real capture
    of it through the engine."""
    runner = ModelRunner.load(name, threads=1)
    assert runner.spec.shape == shape and runner.spec.hardware == name
    with Engine([ReplaySource(csi_dir / capture, router_id="r", realtime=False)], model=runner) as engine:
        assert engine.wait(60)
    (st,) = engine.metrics().pose_input
    assert st.state == "on" and st.windows > 0 and st.model_hardware == name, st



def test_shipped_site_long_model_runs_in_the_engine() -> None:
    """The shipped 1-s model (python/wdp/models/site_long: 21 frames on a 20 Hz grid, count head) declares its
    window and rate; the engine takes a 100 Hz router's packets nearest each 20 Hz grid instant, makes 20
    windows/s, and publishes as many people as the count head says (one person walks in room 101)."""
    from wdp import schemas
    from wdp.csi.simulator import SimConfig, random_scene, scene_seed
    from wdp.csi.sources import SimulatorSource
    from wdp.engine import EngineConfig, Topic

    runner = ModelRunner.load("site_long", threads=1)
    assert runner.spec.shape == (21, 30, 3, 3) and runner.spec.rate_hz == 20 and runner.spec.hop == 1
    assert runner.count_gate and runner.model.card["input_spec"]["window_s"] == 21 / 20
    cfg = SimConfig.from_dict({"scene_duration_s": 4.0})
    scene = random_scene(101, scene_seed("test", 0, 0), cfg, n_people=1)
    src = SimulatorSource(routers=1, scene=scene, loop=False, realtime=False, config=cfg)
    engine = Engine([src], model=runner, config=EngineConfig(detector="model"))
    sub = engine.bus.subscribe({Topic.POSE}, maxsize=100_000)
    with engine:
        assert engine.wait(120)
    (st,) = engine.metrics().pose_input
    frames = [m.payload for m in sub.drain() if isinstance(m.payload, schemas.PoseFrame)]
    # 4 s at 20 windows/s, the first after 1 s of packets
    assert st.state == "on" and 50 <= st.windows <= 61, st
    assert len(frames) > 0 and sum(len(f.persons) > 0 for f in frames) >= len(frames) // 2
