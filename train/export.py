"""Export the plain net (TorchScript, ONNX) with a model card JSON beside it."""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import hashlib
import json
import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from wdp.model.exported import FILES, MODEL_CARD, quiet_torchscript
from wdp.model.spec import (
    EXTRA_OUTPUT_CHANNELS,
    IMAGE_H,
    IMAGE_W,
    INPUT_SHAPE,
    KEYPOINT_NAMES,
    MAP_H,
    MAP_STRIDE,
    MAP_W,
    N_GEOMETRY,
    OKS_SIGMAS,
    OUTPUT_CHANNELS,
    OUTPUT_NAMES,
    PART_NAMES,
    SKELETON,
    net_input_names,
    output_names,
)

FRAME_RATE_HZ = 100  # the contract's window sampling rate


def config_hash(config: Mapping[str, Any]) -> str:
    """sha256 of a (resolved) training config as canonical JSON."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def input_shape_of(net: nn.Module) -> tuple[int, int, int, int]:
    """(window, subcarriers, rx, tx) the net reads: its ``input_shape`` (hardware presets), else the contract's."""
    return tuple(getattr(net, "input_shape", INPUT_SHAPE))  # type: ignore[return-value]


def _input_shapes(net: nn.Module) -> dict[str, tuple[int, ...]]:
    """Each input's shape without the batch axis (room inputs: one frame's reference, the geometry vector)."""
    shape = input_shape_of(net)
    room = {"ref_amplitude": shape[1:], "ref_phase": shape[1:], "geometry": (N_GEOMETRY,)}
    return {name: room.get(name, shape) for name in net_input_names(net)}


def _example_inputs(net: nn.Module, batch: int = 2) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    out = []
    for name, shape in _input_shapes(net).items():
        amplitude = "amplitude" in name
        out.append(
            torch.rand(batch, *shape, generator=g) + 0.5 if amplitude else torch.randn(batch, *shape, generator=g)
        )
    return tuple(out)


def net_output_names(net: nn.Module) -> tuple[str, ...]:
    """The output names of this net (the five dense maps, plus its optional heads)."""
    was_training = net.training
    net.eval()
    with torch.no_grad():
        n = len(net(*_example_inputs(net, batch=1)))
    net.train(was_training)
    return output_names(n)


def export_torchscript(net: nn.Module, path: Path) -> Path:
    with quiet_torchscript(), torch.no_grad():
        traced = torch.jit.trace(net, _example_inputs(net))
        traced.save(str(path))
    return path


@contextlib.contextmanager
def _quiet_loggers(*names: str) -> Iterator[None]:
    """The ONNX exporter logs every pass at INFO/WARNING (torchvision ops it skips, nodes it prunes)."""
    saved = [(lg, lg.level) for lg in map(logging.getLogger, names)]
    for lg, _ in saved:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in saved:
            lg.setLevel(level)


def export_onnx(net: nn.Module, path: Path, optimize: bool = True) -> Path:
    """torch.export-based ONNX export with a dynamic batch axis."""
    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings(), _quiet_loggers("torch.onnx", "onnx_ir", "onnxscript"):
        # the exporter's own internals raise Future/UserWarnings (pytree API churn, axis-name notes)
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            net,
            _example_inputs(net),
            input_names=list(net_input_names(net)),
            output_names=list(net_output_names(net)),
            dynamic_shapes=tuple({0: batch} for _ in net_input_names(net)),
            dynamo=True,
            optimize=optimize,
            verbose=False,
        )
        program.save(str(path))
    return path


def model_card(
    net: nn.Module,
    net_name: str,
    net_params: Mapping[str, Any],
    sanitization: Mapping[str, Any],
    decode: Mapping[str, Any],
    training: Mapping[str, Any],
    metrics: Mapping[str, float],
    files: Mapping[str, str],
    hardware: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``hardware``: the simulator preset the net was trained for (HardwarePreset.describe(): card, band,
    subcarrier indices, antennas, packet rate); the engine adapts a router's frames to it or refuses it."""
    window, n_sub, n_rx, n_tx = input_shape_of(net)
    rate = float((hardware or {}).get("packet_rate_hz", FRAME_RATE_HZ))
    hw = dict(hardware or {})
    return {
        "format_version": 1,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "net": {
            "name": net_name,
            "class": f"{type(net).__module__}.{type(net).__qualname__}",
            "params": dict(net_params),
            "num_parameters": int(sum(p.numel() for p in net.parameters())),
        },
        "input_spec": {
            "window": window,
            "frame_rate_hz": rate if rate != int(rate) else int(rate),
            "subcarriers": n_sub,
            "rx_antennas": n_rx,
            "tx_antennas": n_tx,
            "window_s": window / rate,
            **({"hardware": hw["preset"], "band": hw.get("band", {})} if hw.get("preset") else {}),
            "sanitization": {
                "function": "wdp.csi.sanitize_numpy.sanitize_phase",
                "axis": "subcarriers (-3)",
                **dict(sanitization),
            },
            "amplitude": (
                "raw |CSI|; normalised inside the net (each frame and receive chain divided by its mean over "
                "subcarriers and tx antennas)"
            ),
        },
        "inputs": {
            name: {"shape": ["batch", *shape], "dtype": "float32"} for name, shape in _input_shapes(net).items()
        },
        **({"hardware": hw} if hw else {}),
        "outputs": {
            **{
                name: {"shape": ["batch", OUTPUT_CHANNELS[name], MAP_H, MAP_W], "dtype": "float32"}
                for name in OUTPUT_NAMES
            },
            **{
                name: {"shape": ["batch", EXTRA_OUTPUT_CHANNELS[name]], "dtype": "float32"}
                for name in net_output_names(net)[len(OUTPUT_NAMES) :]
            },
        },
        "output_notes": {
            "center": "person-center heatmap logits",
            "offsets": "(dx, dy) per joint from the center cell, in cells",
            "keypoint_heatmaps": "joint heatmap logits",
            "part_logits": "class 0 = background, 1..24 = parts",
            "uv": "DensePose U, V in [0, 1]",
            "person_count": "(when present) logits over 0..MAX_PEOPLE people in the window",
            "map_to_image": f"map cell (r, c) is centred on image point ((c + 0.5) * {MAP_STRIDE}, "
            f"(r + 0.5) * {MAP_STRIDE})",
            "scores": "decode.min_score: raw person-score threshold that finds 95% of the people in the val "
            "split; decode.score_ref / keypoint_score_ref: median person / joint score there; the engine "
            "publishes scores as min(1, raw * 0.5 / ref)",
        },
        "image_size": [IMAGE_H, IMAGE_W],
        "decode": {"function": "wdp.model.decode_poses", **dict(decode)},
        "keypoint_names": list(KEYPOINT_NAMES),
        "skeleton": [list(e) for e in SKELETON],
        "oks_sigmas": list(OKS_SIGMAS),
        "part_classes": ["background", *PART_NAMES],
        "training": dict(training),
        "metrics": {k: float(v) for k, v in metrics.items()},
        "files": dict(files),
    }


def export_net(
    net: nn.Module,
    out_dir: str | Path,
    net_name: str,
    formats: Sequence[str] = ("torchscript", "onnx"),
    net_params: Mapping[str, Any] | None = None,
    sanitization: Mapping[str, Any] | None = None,
    decode: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    onnx_optimize: bool = True,
    hardware: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """Write the requested formats and model_card.json into out_dir; returns {format or "card": path}."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plain = copy.deepcopy(net).cpu().eval()
    paths: dict[str, Path] = {}
    for fmt in formats:
        if fmt == "torchscript":
            paths[fmt] = export_torchscript(plain, out / FILES[fmt])
        elif fmt == "onnx":
            paths[fmt] = export_onnx(plain, out / FILES[fmt], optimize=onnx_optimize)
        else:
            raise ValueError(f"unknown export format {fmt!r}")
    card = model_card(
        plain,
        net_name,
        net_params or {},
        sanitization or {"method": "endpoints"},
        decode or {},
        training or {},
        metrics or {},
        {k: p.name for k, p in paths.items()},
        hardware,
    )
    paths["card"] = out / MODEL_CARD
    paths["card"].write_text(json.dumps(card, indent=2))
    return paths
