"""Export an activity/fall net to ONNX (windows -> probs, p_fall) with its card beside it."""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import msgspec
import numpy as np
import torch
from torch import nn

from wdp.activity.card import MODEL_FILE, ActivityCard, save_card
from wdp.model.activity_net import ActivityExport
from wdp.train.export import _quiet_loggers


def export_activity(net: nn.Module, card: ActivityCard, out_dir: str | Path) -> Path:
    """Write out_dir/model.onnx and out_dir/card.json (card gains model name, sizes, creation time). Returns
    out_dir. The batch axis is dynamic; the window length and feature count are fixed by the card."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    wrapper = ActivityExport(net, card.fall_index).eval()
    from wdp.activity.preprocess import feature_count

    n_feat = feature_count(card, card.bins, card.features)
    example = torch.randn(2, card.window_samples, n_feat, generator=torch.Generator().manual_seed(0))
    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings(), _quiet_loggers("torch.onnx", "onnx_ir", "onnxscript"), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's internals warn about pytree/axis-name churn
        program = torch.onnx.export(
            wrapper,
            (example,),
            input_names=[card.input_name],
            output_names=list(card.output_names),
            dynamic_shapes=({0: batch},),
            dynamo=True,
            optimize=True,
            verbose=False,
        )
        program.save(str(out / MODEL_FILE))
    card = msgspec.structs.replace(
        card,
        model=card.model or type(net).__name__,
        num_parameters=int(sum(p.numel() for p in net.parameters())),
        created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    save_card(card, out)
    return out


def torch_outputs(net: nn.Module, card: ActivityCard, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The torch net's (probs, p_fall) for windows x, to check an export against."""
    wrapper = ActivityExport(net, card.fall_index).eval()
    with torch.no_grad():
        probs, p_fall = wrapper(torch.as_tensor(np.asarray(x, np.float32)))
    return probs.numpy(), p_fall.numpy()
