"""Small activity/fall models and CSI streams for the tests of the engine's activity stage and `wdp classify`.

``motion_model`` writes a real model directory (model.onnx + card.json, loaded by wdp.activity like a trained
one) whose net is written out by hand with onnx.helper: its fall logit is ``gain * (E - 1)`` where E is the
window's mean squared feature value (the card's features are window-mean removed, so E is how much the
channel moved within the window), and its two classes are "still" (logit -z) and "fall" (z). A still link
gives p_fall near 0, an amplitude swinging by half gives p_fall near 1; nothing about a test's answer is
written into it, and it costs milliseconds to build (exporting a torch net takes seconds).

``link_stream`` makes one link's CSI: a fixed random channel with 1 % noise, its amplitude swinging by
``depth`` at 1.5 Hz inside the ``moving`` intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from wdp.activity.card import MODEL_FILE, ActivityCard, save_card
from wdp.activity.preprocess import default_features, feature_count


def motion_model(
    out_dir: Path,
    shape: tuple[int, int, int] = (30, 3, 1),
    *,
    rate_hz: float = 20.0,
    window_s: float = 2.0,
    hop_s: float = 1.0,
    bins: int = 3,
    fall_threshold: float = 0.5,
    gain: float = 4.0,
    family: str = "test",
) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    features = default_features(shape[1])
    card = ActivityCard(
        family=family,
        subcarriers=shape[0],
        rx=shape[1],
        tx=shape[2],
        packet_rate_hz=rate_hz,
        window_s=window_s,
        hop_s=hop_s,
        classes=["still", "fall"],
        fall_class="fall",
        fall_threshold=fall_threshold,
        subcarrier_index=list(range(shape[0])),
        bins=bins,
        features=features,
        feature_scale=[1.0] * feature_count(shape, bins, features),
        model="motion_energy_test_net",
    )
    consts = [
        helper.make_tensor("axes_tw", TensorProto.INT64, [2], [1, 2]),
        helper.make_tensor("axis_c", TensorProto.INT64, [1], [1]),
        helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
        helper.make_tensor("gain", TensorProto.FLOAT, [], [gain]),
    ]
    nodes = [
        helper.make_node("Mul", ["x", "x"], ["sq"]),
        helper.make_node("ReduceMean", ["sq", "axes_tw"], ["energy"], keepdims=0),
        helper.make_node("Sub", ["energy", "one"], ["centred"]),
        helper.make_node("Mul", ["centred", "gain"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["p_fall"]),
        helper.make_node("Unsqueeze", ["z", "axis_c"], ["z1"]),
        helper.make_node("Neg", ["z1"], ["neg"]),
        helper.make_node("Concat", ["neg", "z1"], ["logits"], axis=1),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "motion_energy",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", card.window_samples, len(card.feature_scale)])],
        [
            helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["n", 2]),
            helper.make_tensor_value_info("p_fall", TensorProto.FLOAT, ["n"]),
        ],
        initializer=consts,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(out_dir / MODEL_FILE))
    save_card(card, out_dir)
    return out_dir


def link_stream(
    duration_s: float,
    *,
    shape: tuple[int, int, int] = (30, 3, 1),
    rate_hz: float = 20.0,
    moving: Sequence[tuple[float, float]] = (),
    depth: float = 0.5,
    seed: int = 0,
    start: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(times (n,) from ``start``, csi (n, *shape) complex64)."""
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * rate_hz))
    t = start + np.arange(n) / rate_hz
    base = (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)
    gain = np.ones(n)
    for lo, hi in moving:
        inside = (t >= start + lo) & (t < start + hi)
        gain[inside] = 1.0 + depth * np.sin(2 * np.pi * 1.5 * (t[inside] - start))
    noise = 0.01 * (rng.normal(size=(n, *shape)) + 1j * rng.normal(size=(n, *shape)))
    csi = (base[None] * gain[:, None, None, None] + noise * np.abs(base)[None]).astype(np.complex64)
    return t, csi
