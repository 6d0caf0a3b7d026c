"""`train(cfg) -> (metrics, objects)`: the whole run, callable from tests; __main__ only wraps it in Hydra."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import CSVLogger, Logger

from wdp.model.spec import net_input_names
from wdp.train.export import config_hash, export_net
from wdp.train.module import predictions_numpy

log = logging.getLogger(__name__)


def _instantiate_group(group: DictConfig | None) -> list[Any]:
    """Every entry of a callbacks/logger group that has a _target_ (entries set to null are skipped)."""
    if not group:
        return []
    return [hydra.utils.instantiate(c) for c in group.values() if isinstance(c, DictConfig) and "_target_" in c]


def _scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        if isinstance(v, torch.Tensor) and v.numel() == 1:
            out[k] = float(v)
        elif isinstance(v, int | float):
            out[k] = float(v)
    return out


def _csv_file(loggers: list[Logger]) -> Path | None:
    for lg in loggers:
        if isinstance(lg, CSVLogger):
            return Path(lg.log_dir) / "metrics.csv"
    return None


def _plots(
    cfg: DictConfig,
    model: pl.LightningModule,
    datamodule: Any,
    loggers: list[Logger],
    out: Path,
    calibrated_min_score: float | None = None,
) -> dict[str, Path]:
    from wdp.train.plots import plot_loss_curves, plot_skeleton_grid  # matplotlib only when plotting

    paths: dict[str, Path] = {}
    csv_file = _csv_file(loggers)
    if csv_file is not None and csv_file.is_file():
        paths["loss_curves"] = plot_loss_curves(csv_file, out / "loss_curves.png")
    test = datamodule.split("test")
    n = min(int(cfg.plots.get("windows", 8)), len(test))
    batch = {k: v[:n] for k, v in test.arrays.items()}
    kp, scores, parts = predictions_numpy(model.net, batch, model.decode_cfg)
    paths["skeletons"] = plot_skeleton_grid(
        batch["keypoints"].numpy(),
        batch["num_people"].numpy(),
        kp,
        scores,
        out / "test_skeletons.png",
        pred_parts=parts,
        gt_parts=batch["part_mask"].numpy(),
        min_score=float(
            cfg.plots.get("min_score")
            if cfg.plots.get("min_score") is not None
            else (calibrated_min_score if calibrated_min_score is not None else 0.3)
        ),
    )
    return paths


def _checkpoint_epoch(path: str) -> int | None:
    """The (0-based) epoch a Lightning checkpoint was saved at."""
    epoch = torch.load(path, map_location="cpu", weights_only=False).get("epoch")
    return None if epoch is None else int(epoch)


def calibrate_scores(model: Any, datamodule: Any, coverage: float = 0.95, batch_size: int = 64) -> dict[str, float]:
    """Score settings the model card records for serving, from the validation windows that show a person:

    * min_score: the person-score threshold at which `coverage` of them yield a detection (`wdp serve` uses
      it unless engine.min_detection_score is set). A weak net's scores sit well below the ~0.5 a sharp one
      reaches, so a fixed 0.3 would show nothing.
    * score_ref, keypoint_score_ref: the median person score of the top detection and the median of its
      joint scores. The engine publishes scores as raw * 0.5 / ref (capped at 1): 0.5 is then "as sure as
      this model usually is", and the fixed thresholds downstream (tracking: 0.3 to match, 0.5 to start a
      track; fusion and drawing: 0.3 per joint) mean the same for every model.
    """
    from wdp.model.decode import decode_poses

    val = datamodule.split("val")
    top: list[torch.Tensor] = []
    joints: list[torch.Tensor] = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for i in range(0, len(val), batch_size):
            b = {k: v[i : i + batch_size] for k, v in val.arrays.items()}
            center, offsets, heat, *_ = model(*(b[k] for k in net_input_names(model.net)))
            dec = decode_poses(center, offsets, heat, **model.decode_cfg)
            has = b["num_people"] > 0
            top.append(dec.scores[:, 0][has])
            joints.append(dec.keypoints[:, 0, :, 2][has].reshape(-1))
    model.train(was_training)
    scores = torch.cat(top).double() if top else torch.zeros(0, dtype=torch.float64)
    if scores.numel() == 0:
        return {"min_score": 0.3, "score_ref": 0.5, "keypoint_score_ref": 0.5}
    return {
        "min_score": round(float(torch.quantile(scores, 1.0 - coverage)), 4),
        "score_ref": round(max(float(scores.median()), 1e-3), 4),
        "keypoint_score_ref": round(max(float(torch.cat(joints).double().median()), 1e-3), 4),
    }


def _hardware_of(datamodule: Any) -> dict[str, Any] | None:
    """The hardware preset the simulated data was made for (model card ``hardware``), None for other data."""
    sim = getattr(datamodule, "sim_config", None)
    if sim is None:
        return None
    from wdp.csi.simulator.config import SimConfig
    from wdp.csi.simulator.hardware import HARDWARE_PRESETS

    cfg = SimConfig.from_dict(dict(sim))
    preset = HARDWARE_PRESETS[cfg.hardware or "intel5300"]
    out = preset.describe()
    # the data's own band, antennas and rate (a preset's keys may have been overridden)
    out["band"] = {**out["band"], "center_hz": cfg.band.center_hz, "subcarrier_index": list(cfg.band.subcarrier_index)}
    out.update(rx_antennas=cfg.n_rx, tx_antennas=cfg.n_tx, packet_rate_hz=cfg.rate_hz)
    out["impairments"] = cfg.impairments.enabled
    return out


def train(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    """Fit (optionally resuming from cfg.ckpt_path), test the best checkpoint, export the net, plot.

    Returns (metrics keyed stage/name, objects: cfg, datamodule, model, trainer, callbacks, loggers, exported,
    plots, best_ckpt).
    """
    if cfg.get("seed") is not None:
        pl.seed_everything(int(cfg.seed), workers=True)
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    datamodule = hydra.utils.instantiate(cfg.data)
    model = hydra.utils.instantiate(cfg.model)
    callbacks = _instantiate_group(cfg.get("callbacks"))
    loggers = _instantiate_group(cfg.get("logger"))
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    resolved = OmegaConf.to_container(cfg, resolve=True)
    run_hash = config_hash({k: v for k, v in resolved.items() if k not in ("paths", "ckpt_path")})
    for lg in loggers:
        lg.log_hyperparams({"config_hash": run_hash, **resolved})

    if cfg.get("train", True):
        # our checkpoints hold the optimizer partials in hparams, so they are not weights-only
        trainer.fit(model=model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=False)
    metrics = _scalars(trainer.callback_metrics)

    best_ckpt = ""
    if trainer.checkpoint_callback is not None:
        best_ckpt = getattr(trainer.checkpoint_callback, "best_model_path", "") or ""
    # test (and export) the best checkpoint's weights when there is one, else the current ones
    ckpt = best_ckpt if best_ckpt and cfg.get("train", True) else None
    if ckpt is None and not cfg.get("train", True) and cfg.get("ckpt_path"):
        ckpt = str(cfg.ckpt_path)
    if cfg.get("test", True):
        trainer.test(model=model, datamodule=datamodule, ckpt_path=ckpt, weights_only=False)
        metrics.update(_scalars(trainer.callback_metrics))
    elif ckpt:  # no test: still export (and plot) that checkpoint's weights
        model.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"])

    exported: dict[str, Path] = {}
    want_plots = bool(cfg.get("plots") and cfg.plots.get("enabled", False))
    want_export = bool(cfg.get("export") and cfg.export.get("enabled", False))
    calibration = calibrate_scores(model, datamodule) if want_plots or want_export else {}
    if want_export:
        datamodule.setup("test")
        decode = OmegaConf.to_container(cfg.model.get("decode") or {}, resolve=True)
        decode.update(calibration)
        if getattr(model.net, "count", None) is not None:  # the engine keeps as many people as the count head says
            decode["count_gate"] = True
        exported = export_net(
            model.net,
            out / "export",
            net_name=str(cfg.model.get("name", type(model.net).__name__)),
            formats=list(cfg.export.formats),
            net_params={
                k: v for k, v in OmegaConf.to_container(cfg.model.net, resolve=True).items() if k != "_target_"
            },
            sanitization={
                "method": "endpoints",
                **OmegaConf.to_container(cfg.data.get("sanitize") or {}, resolve=True),
            },
            decode=decode,
            training={
                "config_hash": run_hash,
                "seed": cfg.get("seed"),
                "best_checkpoint": ckpt or "",
                "checkpoint_epoch": _checkpoint_epoch(ckpt) if ckpt else trainer.current_epoch,
                # epochs of this run; for train=false, those of the checkpoint it exports
                "epochs": trainer.current_epoch
                if cfg.get("train", True) or not ckpt
                else (_checkpoint_epoch(ckpt) or 0) + 1,
                "data": datamodule.describe(),
            },
            metrics={k: v for k, v in metrics.items() if k.startswith("test/")},
            onnx_optimize=bool(cfg.export.get("onnx_optimize", True)),
            hardware=_hardware_of(datamodule),
        )
    plots: dict[str, Path] = {}
    if want_plots:
        plots = _plots(cfg, model, datamodule, loggers, out / "plots", calibration.get("min_score"))
    log.info("metrics: %s", {k: round(v, 4) for k, v in metrics.items() if k.endswith(("/ap", "/loss"))})
    objects = {
        "cfg": cfg,
        "datamodule": datamodule,
        "model": model,
        "trainer": trainer,
        "callbacks": callbacks,
        "loggers": loggers,
        "exported": exported,
        "plots": plots,
        "best_ckpt": best_ckpt,
    }
    return metrics, objects
