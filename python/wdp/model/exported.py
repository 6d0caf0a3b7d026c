"""Loading an exported pose net (TorchScript or ONNX) as a plain callable, with its model card."""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wdp.model.spec import INPUT_NAMES, INPUT_SHAPE, ROOM_INPUT_NAMES, output_names

MODEL_CARD = "model_card.json"
FILES = {"torchscript": "model.ts", "onnx": "model.onnx"}


@contextlib.contextmanager
def quiet_torchscript() -> Iterator[None]:
    """torch >= 2.10 flags TorchScript as deprecated; it still works, and export/load use it on purpose."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*torch\.jit\.")
        yield


def card_input_shape(card: dict[str, Any] | None) -> tuple[int, int, int, int]:
    """(window, subcarriers, rx, tx) a model card's input_spec declares (the contract's when it says nothing)."""
    spec = (card or {}).get("input_spec", {})
    keys = ("window", "subcarriers", "rx_antennas", "tx_antennas")
    return tuple(int(spec.get(k, d)) for k, d in zip(keys, INPUT_SHAPE, strict=True))  # type: ignore[return-value]


class ExportedPoseNet:
    """`net(amplitude, phase) -> {output name: tensor}` for (B, window, subcarriers, rx, tx) (or unbatched)
    float inputs, the shape its card declares (5 x 30 x 3 x 3 for the Intel 5300 contract).

    amplitude is raw |CSI|; phase must be sanitised as `card["input_spec"]["sanitization"]` says.
    """

    def __init__(self, path: Path, backend: str, card: dict[str, Any]) -> None:
        self.path = path
        self.backend = backend
        self.card = card
        self.input_shape = card_input_shape(card)
        if backend == "torchscript":
            with quiet_torchscript():
                self._module = torch.jit.load(str(path), map_location="cpu")
            self._module.eval()
        elif backend == "onnx":
            import onnxruntime as ort  # optional dependency, only for .onnx

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = max(1, torch.get_num_threads())
            self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            self._input_names = [i.name for i in self._session.get_inputs()]
        else:
            raise ValueError(f"unknown backend {backend!r}")

    @property
    def room_inputs(self) -> bool:
        """Whether the net also reads the room's empty-room reference and geometry (wdp.data.room_context)."""
        return any(name in self.card.get("inputs", {}) for name in ROOM_INPUT_NAMES)

    def __call__(
        self, amplitude: np.ndarray | torch.Tensor, phase: np.ndarray | torch.Tensor, *room: np.ndarray | torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """``room``: ref_amplitude, ref_phase, geometry for a net with room inputs (batched like the window)."""
        amp = torch.as_tensor(amplitude, dtype=torch.float32)
        pha = torch.as_tensor(phase, dtype=torch.float32)
        extra = [torch.as_tensor(r, dtype=torch.float32) for r in room]
        if len(extra) != (len(ROOM_INPUT_NAMES) if self.room_inputs else 0):
            raise ValueError(f"this net reads {', '.join(self.card.get('inputs', {}) or INPUT_NAMES)}")
        single = amp.dim() == len(self.input_shape)
        if single:
            amp, pha = amp.unsqueeze(0), pha.unsqueeze(0)
            extra = [r.unsqueeze(0) for r in extra]
        if tuple(amp.shape[1:]) != self.input_shape or amp.shape != pha.shape:
            raise ValueError(
                f"expected amplitude/phase of shape (B, {', '.join(map(str, self.input_shape))}), "
                f"got {tuple(amp.shape)} and {tuple(pha.shape)}"
            )
        if self.backend == "torchscript":
            with torch.no_grad():
                outs = self._module(amp, pha, *extra)
        else:
            arrays = [t.contiguous().numpy() for t in (amp, pha, *extra)]
            feeds = dict(zip(self._input_names, arrays, strict=True))
            outs = [torch.from_numpy(o) for o in self._session.run(None, feeds)]
        result = dict(zip(output_names(len(outs)), outs, strict=True))
        return {k: v[0] for k, v in result.items()} if single else result


def load_exported(path: str | Path, backend: str = "auto") -> ExportedPoseNet:
    """Open an export directory (model card + model.ts / model.onnx) or a single .ts/.pt/.onnx file.

    backend "auto" picks TorchScript when present (no extra dependency), else ONNX Runtime.
    """
    path = Path(path)
    card: dict[str, Any] = {}
    if path.is_dir():
        card_file = path / MODEL_CARD
        if card_file.is_file():
            card = json.loads(card_file.read_text())
        order = ["torchscript", "onnx"] if backend == "auto" else [backend]
        for name in order:
            candidate = path / card.get("files", {}).get(name, FILES[name])
            if candidate.is_file():
                return ExportedPoseNet(candidate, name, card)
        raise FileNotFoundError(f"no {' or '.join(order)} model in {path}")
    if not path.is_file():
        raise FileNotFoundError(path)
    sibling = path.parent / MODEL_CARD
    if sibling.is_file():
        card = json.loads(sibling.read_text())
    if backend == "auto":
        backend = "onnx" if path.suffix == ".onnx" else "torchscript"
    return ExportedPoseNet(path, backend, card)
