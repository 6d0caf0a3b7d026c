"""`train_activity(cfg) -> (metrics, objects)`: the activity/fall task of `python -m wdp.train task=activity`.

For each fold of the chosen protocol(s) (conf/data/har_*.yaml; folds from wdp.data.real.PROTOCOLS), the same
windows train and test every model of `model.compare` (ActivityNet, the SenseFi-style GRU baseline, the random
forest on window statistics). Per fold: the card's subcarriers and feature scale come from the training files, a
fifth of the training files (whole files, stratified by class) is the validation set that picks the best epoch
and the fall threshold; the test person/room is used only for the reported figures. Reports (results.json,
results.md, confusion PNGs) go to <output_dir>/report; with activity.ship=true the model is also trained on all
recordings of the data group and exported (model.onnx + card.json) to <output_dir>/export/<family>.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import msgspec
import numpy as np
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, TensorDataset

from wdp.activity.card import ActivityCard
from wdp.activity.preprocess import scale_windows
from wdp.data.real import default_root
from wdp.train.activity_baselines import ForestBaseline
from wdp.train.activity_data import ActivityDataSpec, Corpus, Item, fold_items, validation_split, windows
from wdp.train.activity_eval import (
    binary_prf,
    choose_threshold,
    confusion,
    false_falls_per_hour,
    macro_f1_present,
    paired_bootstrap,
    per_class_f1,
    plot_confusion,
)
from wdp.train.activity_module import ActivityLitModule, balanced_weights

log = logging.getLogger(__name__)

Predictor = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
DEEP = ("activity_net", "gru_baseline")


@dataclass
class Fitted:
    predict: Predictor
    info: dict[str, Any]
    net: torch.nn.Module | None = None


def _feature_scale(raw: np.ndarray) -> list[float]:
    """Each feature's std over the training windows, at least a tenth of the median feature's: a channel that
    barely moved in training (a dead subcarrier bin) must not turn into clipped noise live."""
    std = raw.reshape(-1, raw.shape[-1]).std(axis=0)
    floor = max(0.1 * float(np.median(std)), 1e-6)
    return [float(max(s, floor)) for s in std]


def _torch_predictor(net: torch.nn.Module, fall_index: int, batch: int = 512) -> Predictor:
    from wdp.model.activity_net import ActivityExport

    wrapper = ActivityExport(net, fall_index).eval()

    def predict(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probs, falls = [], []
        with torch.no_grad():
            for i in range(0, len(x), batch):
                p, f = wrapper(torch.as_tensor(x[i : i + batch]))
                probs.append(p.numpy())
                falls.append(f.numpy())
        if not probs:
            return np.zeros((0, 1)), np.zeros(0)
        return np.concatenate(probs), np.concatenate(falls)

    return predict


def fit_deep(
    name: str,
    cfg: DictConfig,
    card: ActivityCard,
    xf: np.ndarray,
    yf: np.ndarray,
    xv: np.ndarray,
    yv: np.ndarray,
    init_state: dict[str, Any] | None = None,
) -> Fitted:
    """Train one net of cfg.model.nets (from init_state when given: a pretrained net's weights)."""
    num_classes, fall_index = len(card.classes), card.fall_index
    opt = cfg.model.optim
    net = hydra.utils.instantiate(cfg.model.nets[name], in_features=xf.shape[-1], num_classes=num_classes)
    if init_state is not None:
        net.load_state_dict(init_state)
    n_fall = int(np.sum(yf == fall_index))
    lit = ActivityLitModule(
        net,
        num_classes=num_classes,
        fall_index=fall_index,
        class_weights=balanced_weights(yf, num_classes),
        fall_pos_weight=(len(yf) - n_fall) / max(n_fall, 1),
        optimizer=hydra.utils.instantiate(opt.optimizer),
        label_smoothing=float(opt.label_smoothing),
        fall_loss_weight=float(opt.fall_loss_weight),
        noise_std=float(opt.noise_std),
        channel_dropout=float(opt.get("channel_dropout", 0.0)),
        gain_jitter=float(opt.get("gain_jitter", 0.0)),
    )
    gen = torch.Generator().manual_seed(int(cfg.seed))
    train_loader = DataLoader(
        TensorDataset(torch.as_tensor(xf), torch.as_tensor(yf, dtype=torch.long)),
        batch_size=int(opt.batch_size),
        shuffle=True,
        generator=gen,
    )
    # no validation files (a tiny training set): the last epoch's weights are kept
    val_loader = (
        DataLoader(TensorDataset(torch.as_tensor(xv), torch.as_tensor(yv, dtype=torch.long)), batch_size=512)
        if len(yv)
        else None
    )
    trainer = pl.Trainer(
        max_epochs=int(opt.epochs),
        limit_val_batches=1.0 if val_loader is not None else 0,
        accelerator=str(cfg.trainer.get("accelerator", "cpu")),
        devices=1,
        deterministic=True,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        gradient_clip_val=float(opt.get("gradient_clip_val", 5.0)),
        default_root_dir=str(cfg.paths.output_dir),
    )
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        # Lightning's advice on dataloader workers and pytree churn: in-memory tensors need no workers
        warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
        warnings.filterwarnings("ignore", message=r".*is smaller than the logging interval.*")
        warnings.filterwarnings("ignore", message=r".*have no `val_dataloader`.*")
        if val_loader is None:
            trainer.fit(lit, train_dataloaders=train_loader)
        else:
            trainer.fit(lit, train_dataloaders=train_loader, val_dataloaders=val_loader)
    lit.restore_best()
    net = lit.net.eval()
    info = {
        "seconds": round(time.perf_counter() - t0, 1),
        "epochs": int(opt.epochs),
        "best_epoch": lit.best_epoch,
        "val_macro_f1": round(lit.best_score, 4),
        "num_parameters": int(sum(p.numel() for p in net.parameters())),
    }
    return Fitted(_torch_predictor(net, fall_index), info, net)


def fit_forest(cfg: DictConfig, card: ActivityCard, xf: np.ndarray, yf: np.ndarray) -> Fitted:
    params = OmegaConf.to_container(cfg.model.forest, resolve=True)
    t0 = time.perf_counter()
    forest = ForestBaseline(len(card.classes), card.fall_index, card.packet_rate_hz, seed=int(cfg.seed), **params)
    forest.fit(xf, yf)
    return Fitted(forest.predict, {"seconds": round(time.perf_counter() - t0, 1)})


def fit_model(name: str, cfg: DictConfig, card: ActivityCard, xf, yf, xv, yv) -> Fitted:
    if name in DEEP:
        return fit_deep(name, cfg, card, xf, yf, xv, yv)
    if name == "forest":
        return fit_forest(cfg, card, xf, yf)
    raise ValueError(f"unknown activity model {name!r} (one of {(*DEEP, 'forest')})")


@dataclass
class FoldData:
    card: ActivityCard
    fit: list[Item]
    val: list[Item]
    test: list[Item]
    xf: np.ndarray
    yf: np.ndarray
    xv: np.ndarray
    yv: np.ndarray
    xt: np.ndarray
    yt: np.ndarray
    gt: np.ndarray


def prepare_fold(corpus: Corpus, train: list[Item], test: list[Item], index: list[int], seed: int) -> FoldData:
    fit, val = validation_split(train, corpus.spec.val_fraction, seed)
    card0 = corpus.card(index)
    raw, yf, _ = windows(corpus, fit, "train", card0)
    scale = _feature_scale(raw)
    card = corpus.card(index, scale)
    xf = scale_windows(raw, scale)
    del raw
    xv, yv, _ = windows(corpus, val, "eval", card)
    xt, yt, gt = windows(corpus, test, "eval", card)
    return FoldData(card, fit, val, test, xf, yf, scale_windows(xv, scale), yv, scale_windows(xt, scale), yt, gt)


def stream_falls(corpus: Corpus, items: list[Item], card: ActivityCard, predict: Predictor, threshold: float):
    """Fall decisions on every hop_s window of the non-fall test recordings: (fall flags, recording ids,
    durations in s)."""
    flags, groups, durations = [], [], []
    for i, it in enumerate(items):
        if it.label == card.fall_index:
            continue
        x, _, _ = windows(corpus, [it], "stream", card)
        _, p_fall = predict(scale_windows(x, card.feature_scale))
        flags.append(p_fall >= threshold)
        groups.append(np.full(len(x), i))
        durations.append(it.duration_s)
    if not flags:
        return np.zeros(0, bool), np.zeros(0, int), durations
    return np.concatenate(flags), np.concatenate(groups), durations


def run_fold(cfg: DictConfig, corpus: Corpus, fold: Any, models: list[str]) -> dict[str, Any] | None:
    """Train and test every model on one fold; None (logged) when the data at hand leaves the fold without
    training or test recordings (e.g. the fixtures hold one volunteer)."""
    seed = int(cfg.seed)
    index, train, test = fold_items(corpus, fold)
    if not train or not test:
        log.warning("fold %s skipped: %d training and %d test recordings", fold.name, len(train), len(test))
        return None
    pl.seed_everything(seed, workers=True)
    d = prepare_fold(corpus, train, test, index, seed)
    fall = d.card.fall_index
    out: dict[str, Any] = {
        "fold": fold.name,
        "train_files": len(d.fit),
        "val_files": len(d.val),
        "test_files": len(d.test),
        "train_windows": len(d.yf),
        "test_windows": len(d.yt),
        "train_people": sorted({str(i.person) for i in train}),
        "test_people": sorted({str(i.person) for i in test}),
        "train_rooms": sorted({i.environment for i in train}),
        "test_rooms": sorted({i.environment for i in test}),
        "test_paths": [i.path for i in d.test],
        "models": {},
    }
    for name in models:
        pl.seed_everything(seed, workers=True)
        fitted = fit_model(name, cfg, d.card, d.xf, d.yf, d.xv, d.yv)
        _, fv = fitted.predict(d.xv)
        threshold = choose_threshold(fv, d.yv == fall)
        probs, p_fall = fitted.predict(d.xt)
        s_flags, s_groups, s_dur = stream_falls(corpus, d.test, d.card, fitted.predict, threshold)
        out["models"][name] = {
            "y": d.yt,
            "pred": probs.argmax(1),
            "p_fall": p_fall,
            "group": d.gt,
            "threshold": threshold,
            "stream": (s_flags, s_groups, s_dur),
            "info": fitted.info,
            "macro_f1": macro_f1_present(d.yt, probs.argmax(1), len(d.card.classes)),
        }
        log.info("%s %s: macro-F1 %.3f (%s)", fold.name, name, out["models"][name]["macro_f1"], fitted.info)
    return out


def summarise(
    protocol: str,
    folds: list[dict[str, Any]],
    classes: list[str],
    fall_class: str,
    models: list[str],
    cfg: DictConfig,
    report_dir: Path,
) -> dict[str, Any]:
    """Pool the folds' test windows per model: macro-F1, per-class F1, fall P/R/F1, false falls/h, confusion PNG;
    and the primary model against each baseline (paired bootstrap over test recordings, folds ahead)."""
    k, fall = len(classes), classes.index(fall_class)
    pooled: dict[str, dict[str, np.ndarray]] = {}
    summary: dict[str, Any] = {"folds": [f["fold"] for f in folds], "models": {}}
    for name in models:
        ys, preds, falls, groups, s_flags, s_groups, s_dur = [], [], [], [], [], [], []
        offset = s_offset = 0
        for f in folds:
            m = f["models"][name]
            ys.append(m["y"])
            preds.append(m["pred"])
            falls.append(m["p_fall"] >= m["threshold"])
            groups.append(m["group"] + offset)
            offset += f["test_files"]
            flags, g, dur = m["stream"]
            s_flags.append(flags)
            s_groups.append(g + s_offset)
            s_offset += f["test_files"]
            s_dur += list(dur)
        y, pred, fl, grp = map(np.concatenate, (ys, preds, falls, groups))
        pooled[name] = {"y": y, "pred": pred, "group": grp}
        f1 = per_class_f1(y, pred, k)
        mat = confusion(y, pred, k)
        png = plot_confusion(
            mat,
            classes,
            f"{cfg.data.dataset} {protocol} {name}: macro-F1 {macro_f1_present(y, pred, k):.3f}",
            report_dir / f"confusion_{cfg.data.dataset}_{protocol}_{name}.png",
        )
        summary["models"][name] = {
            "macro_f1": macro_f1_present(y, pred, k),
            "per_class_f1": {
                c: (None if np.isnan(v) else round(float(v), 4)) for c, v in zip(classes, f1, strict=True)
            },
            "fall": binary_prf(y == fall, fl),
            "false_falls": false_falls_per_hour(np.concatenate(s_flags), np.concatenate(s_groups), s_dur),
            "fold_macro_f1": {f["fold"]: round(f["models"][name]["macro_f1"], 4) for f in folds},
            "thresholds": {f["fold"]: round(f["models"][name]["threshold"], 4) for f in folds},
            "train_seconds": {f["fold"]: f["models"][name]["info"].get("seconds") for f in folds},
            "confusion": mat.tolist(),
            "confusion_png": str(png),
        }
    primary = models[0]
    summary["comparison"] = {}
    for base in models[1:]:
        a, b = pooled[primary], pooled[base]
        boot = paired_bootstrap(
            a["y"], a["pred"], b["pred"], a["group"], k, n=int(cfg.activity.bootstrap), seed=int(cfg.seed)
        )
        ahead = sum(f["models"][primary]["macro_f1"] > f["models"][base]["macro_f1"] for f in folds)
        summary["comparison"][base] = {
            **boot,
            "folds_ahead": f"{ahead}/{len(folds)}",
            "more_than_noise": bool(boot["ci_low"] > 0),
        }
    return summary


def _targets(cfg: DictConfig, protocol: str, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets for this data group and protocol (conf/data/har_*.yaml `targets`), met or missed."""
    spec = (cfg.data.get("targets") or {}).get(protocol) or {}
    m = summary["models"][next(iter(summary["models"]))]
    values = {
        "macro_f1": m["macro_f1"],
        "fall_f1": m["fall"]["f1"],
        "fall_recall": m["fall"]["recall"],
        "fall_precision": m["fall"]["precision"],
    }
    rows = []
    for key, goal in spec.items():
        v = values[key]
        rows.append({"target": key, "goal": float(goal), "value": v, "met": bool(v == v and v >= float(goal))})
    for base, c in summary["comparison"].items():
        rows.append(
            {
                "target": f"ahead_of_{base}",
                "goal": "CI low > 0",
                "value": c["diff"],
                "ci": [c["ci_low"], c["ci_high"]],
                "met": c["more_than_noise"],
            }
        )
    return rows


def _markdown(dataset: str, results: dict[str, Any], models: list[str]) -> str:
    lines = [f"# {dataset} activity/fall results", ""]
    for protocol, s in results.items():
        lines += [
            f"## {protocol} (folds: {', '.join(s['folds'])})",
            "",
            "| model | macro-F1 | fall P | fall R | fall F1 | false falls / h (events / h of non-fall) |",
            "|---|---|---|---|---|---|",
        ]
        for name in models:
            m = s["models"][name]
            ff = m["false_falls"]
            lines.append(
                f"| {name} | {m['macro_f1']:.3f} | {m['fall']['precision']:.3f} | {m['fall']['recall']:.3f} "
                f"| {m['fall']['f1']:.3f} | {ff['per_hour']:.2f} ({ff['events']} / {ff['hours']:.2f} h) |"
            )
        lines += [
            "",
            "| vs | macro-F1 lead | 95 % CI (bootstrap over test recordings) | folds ahead | more than noise |",
            "|---|---|---|---|---|",
        ]
        for base, c in s["comparison"].items():
            lines.append(
                f"| {base} | {c['diff']:+.3f} | [{c['ci_low']:+.3f}, {c['ci_high']:+.3f}] | {c['folds_ahead']} "
                f"| {'yes' if c['more_than_noise'] else 'no'} |"
            )
        lines += ["", "| target | goal | value | met |", "|---|---|---|---|"]
        for t in s["targets"]:
            v = t["value"]
            lines.append(f"| {t['target']} | {t['goal']} | {v:.3f} | {'met' if t['met'] else 'MISSED'} |")
        lines.append("")
    return "\n".join(lines)


def _json_ready(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and obj != obj:
        return None
    return obj


def ship(cfg: DictConfig, corpus: Corpus, results: dict[str, Any], out_dir: Path) -> tuple[Path, dict[str, Any]]:
    """Train the primary net on every recording of the data group (a fifth of the files for validation: best
    epoch and fall threshold) and export it with its card; the card carries the protocol figures of this run."""
    from wdp.train.activity_export import export_activity

    name = str(cfg.model.compare[0])
    seed = int(cfg.seed)
    t0 = time.perf_counter()
    index = corpus.subcarriers_for(corpus.rows)
    items = corpus.items(index)
    pl.seed_everything(seed, workers=True)
    d = prepare_fold(corpus, items, [], index, seed)
    fitted = fit_model(name, cfg, d.card, d.xf, d.yf, d.xv, d.yv)
    _, fv = fitted.predict(d.xv)
    threshold = choose_threshold(fv, d.yv == d.card.fall_index)
    seconds = time.perf_counter() - t0
    spec = corpus.spec
    per_class: dict[str, int] = {}
    for it in items:
        per_class[spec.classes[it.label]] = per_class.get(spec.classes[it.label], 0) + 1
    card = msgspec.structs.replace(
        d.card,
        fall_threshold=float(threshold),
        model=name,
        data={
            "dataset": spec.dataset,
            "source": "../shared/data/real/MANIFEST.md",
            "recordings": len(items),
            "recordings_per_class": per_class,
            "people": sorted({str(i.person) for i in items}),
            "rooms": sorted({i.environment for i in items}),
            "frames_dropped_on_load": corpus.dropped,
            "windows": {"train": int(len(d.yf)), "val": int(len(d.yv))},
        },
        protocol={
            "shipped_model": "trained on every recording above; validation = 20 % of the files (whole files, "
            "stratified by class): best epoch and fall threshold",
            "figures": "metrics below are from the cross-validation folds of the same run (each fold's models "
            "never saw its test people/rooms); the shipped model itself has no held-out figure",
            "evaluation_windows": "action takes: the window centred in the file; long lying/sitting recordings: "
            "the authors' 20 windows (from 30 s, every 15 s); false falls: every hop_s window of non-fall files",
        },
        folds=[{"protocol": p, "folds": s["folds"]} for p, s in results.items()],
        metrics={
            p: {
                "macro_f1": s["models"][name]["macro_f1"],
                "per_class_f1": s["models"][name]["per_class_f1"],
                "fall": s["models"][name]["fall"],
                "false_falls_per_hour": s["models"][name]["false_falls"]["per_hour"],
                "vs_baselines": s["comparison"],
                "targets": s["targets"],
            }
            for p, s in results.items()
        },
        training={
            "seconds": round(seconds, 3),  # a tiny test run can take < 0.05 s
            "epochs": fitted.info.get("epochs"),
            "best_epoch": fitted.info.get("best_epoch"),
            "val_macro_f1": fitted.info.get("val_macro_f1"),
            "seed": seed,
            "net": OmegaConf.to_container(cfg.model.nets[name], resolve=True),
            "optim": OmegaConf.to_container(cfg.model.optim, resolve=True),
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
    )
    card = msgspec.convert(_json_ready(msgspec.to_builtins(card)), ActivityCard)
    path = export_activity(fitted.net, card, out_dir / spec.family)
    return path, {"seconds": seconds, "threshold": threshold, "net": fitted.net, "card": card, "val": (d.xv, d.yv)}


def train_activity(cfg: DictConfig) -> tuple[dict[str, float], dict[str, Any]]:
    seed = int(cfg.seed)
    pl.seed_everything(seed, workers=True)
    torch.set_num_threads(int(cfg.activity.get("threads", 2)))
    out = Path(cfg.paths.output_dir)
    report_dir = out / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    spec = ActivityDataSpec.from_config(cfg.data)
    root = cfg.data.get("root") or default_root()
    t0 = time.perf_counter()
    corpus = Corpus(spec, root)
    log.info(
        "%s: %d recordings loaded in %.1f s (dropped on load: %s)",
        spec.dataset,
        len(corpus.rows),
        time.perf_counter() - t0,
        corpus.dropped,
    )
    chosen = cfg.protocol  # a name, "all", a comma list ('lopo,cross_room') or a list ([lopo,cross_room])
    names = [str(p) for p in chosen] if OmegaConf.is_list(chosen) else str(chosen).split(",")
    protocols = list(spec.protocols) if names == ["all"] else [p.strip() for p in names]
    models = [str(m) for m in cfg.model.compare]
    results: dict[str, Any] = {}
    fold_runs: dict[str, list[dict[str, Any]]] = {}
    for p in protocols:
        runs = [(fold.name, run_fold(cfg, corpus, fold, models)) for fold in spec.folds(p)]
        fold_runs[p] = [r for _, r in runs if r is not None]
        if not fold_runs[p]:
            raise ValueError(
                f"protocol {p}: no fold has both training and test recordings under {root} "
                "(the fixtures hold one D1 volunteer and one D2 user: set WDP_REAL_DATA to a restore)"
            )
        results[p] = summarise(p, fold_runs[p], list(spec.classes), spec.fall_class, models, cfg, report_dir)
        results[p]["targets"] = _targets(cfg, p, results[p])
        results[p]["skipped_folds"] = [name for name, r in runs if r is None]
        results[p]["fold_detail"] = [
            {k: v for k, v in f.items() if k not in ("models", "test_paths")} for f in fold_runs[p]
        ]
    metrics: dict[str, float] = {}
    for p, s in results.items():
        for name, m in s["models"].items():
            metrics[f"test/{p}/{name}/macro_f1"] = float(m["macro_f1"])
            metrics[f"test/{p}/{name}/fall_f1"] = float(m["fall"]["f1"])
            metrics[f"test/{p}/{name}/false_falls_per_hour"] = float(m["false_falls"]["per_hour"])
    if results:
        first = results[protocols[0]]["models"][models[0]]
        metrics["test/macro_f1"] = float(first["macro_f1"])
    (report_dir / "results.json").write_text(json.dumps(_json_ready(results), indent=1))
    (report_dir / "results.md").write_text(_markdown(spec.dataset, results, models))
    exported = None
    shipped: dict[str, Any] = {}
    if cfg.activity.get("ship", False):
        exported, shipped = ship(cfg, corpus, results, out / "export")
        metrics["ship/train_seconds"] = float(shipped["seconds"])
    log.info("activity metrics: %s", {k: round(v, 4) for k, v in metrics.items()})
    objects = {
        "cfg": cfg,
        "corpus": corpus,
        "results": results,
        "folds": fold_runs,
        "exported": exported,
        "shipped": shipped,
        "report_dir": report_dir,
    }
    return metrics, objects
