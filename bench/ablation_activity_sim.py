"""Does the simulator help? ActivityNet pretrained on simulated activity/fall scenes, then fine-tuned on the real
D1 folds, against the same net trained on the real folds alone (issue 14 item 6).

    WDP_REAL_DATA=/path/to/restore python bench/ablation_activity_sim.py [--protocols cross_room lopo]
        [--scenes-per-class 60] [--out DIR] [--real-results outputs/.../har_intel5300/report/results.json]

Simulated data: scripted one-person scenes (wdp.csi.simulator) in the simulator's training rooms 0-63, an
Intel 5300-like link (30 subcarriers x 3 rx x 1 tx at 20 Hz, the simulator's impairments), 12 s each, for
the D1 classes the simulator can act: walking (1.2 m/s), running (3 m/s), wave_hand, fall_down (stand, fall in
a random direction, lie), sitting, lying, sit_down (stand, then sit). It has no pick_up, jump, squat or
stand_up: those classes are learned from real data only. Windows are made by the same preprocessing as the
real ones (wdp.activity.preprocess; the centred window and +-1 s). Pretraining: the data group's ActivityNet
and optimiser settings on the simulated windows (the simulator's own scale); fine-tuning: exactly the
real-only run of python -m wdp.train task=activity (same folds, windows, validation, epochs, seed), starting
from the pretrained weights. Real-only figures are computed in the same run unless --real-results gives the
results.json of a run with the same config (the runs are deterministic on CPU, so they are the same numbers).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("ablation_activity_sim")

SIM_CLASSES = ("walking", "running", "wave_hand", "fall_down", "sitting", "lying", "sit_down")


def _actions(kind: str, rng: np.random.Generator):
    from wdp.csi.simulator.script import Fall, Lie, Sit, Stand, Walk, Wave

    t0 = float(rng.uniform(3.5, 5.5))
    to = (float(rng.uniform(1.0, 4.0)), float(rng.uniform(1.0, 4.0)))
    if kind == "walking":
        return (Walk(to=to, speed=1.2), Stand())
    if kind == "running":
        return (Walk(to=to, speed=3.0), Stand())
    if kind == "wave_hand":
        return (Stand(until=2.0), Wave(duration=8.0, hz=float(rng.uniform(1.0, 2.5))), Stand())
    if kind == "fall_down":
        return (Stand(until=t0), Fall(direction=str(rng.choice(["forward", "backward", "left", "right"]))), Lie())
    if kind == "sitting":
        return (Sit(),)
    if kind == "lying":
        return (Lie(),)
    if kind == "sit_down":
        return (Stand(until=t0), Sit())
    raise ValueError(kind)


def simulated_windows(card, classes: list[str], per_class: int, seed: int = 0):
    """(raw windows, labels) of scripted scenes, cut like the real action takes (centre, +-1 s)."""
    from wdp.activity.preprocess import cut_windows, feature_grid
    from wdp.csi.simulator.config import SimConfig
    from wdp.csi.simulator.scene import PersonSpec, scripted_scene
    from wdp.csi.simulator.simulate import stream_frames

    cfg = SimConfig(n_rx=card.rx, n_tx=card.tx, rate_hz=card.packet_rate_hz)
    xs, ys = [], []
    for kind in SIM_CLASSES:
        label = classes.index(kind)
        for i in range(per_class):
            rng = np.random.default_rng([seed, label, i])
            room = int(rng.integers(0, 64))
            start = (float(rng.uniform(1.0, 4.0)), float(rng.uniform(1.0, 4.0)))
            scene = scripted_scene(room, [PersonSpec(start, _actions(kind, rng))], 12.0, seed=i, config=cfg)
            frames = list(stream_frames(scene, cfg, truth=False))
            csi = np.stack([f.csi for f in frames])
            t = np.array([f.timestamp for f in frames])
            grid = feature_grid(csi, t, card)
            d = grid.duration_s
            ends = [min(max(d / 2 + card.window_s / 2 + off, card.window_s), d) for off in (-1.0, 0.0, 1.0)]
            xs.append(cut_windows(grid, ends, card).astype(np.float32))
            ys.append(np.full(len(ends), label))
    return np.concatenate(xs), np.concatenate(ys)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--protocols", nargs="+", default=["cross_room", "lopo"])
    ap.add_argument("--scenes-per-class", type=int, default=60)
    ap.add_argument("--pretrain-epochs", type=int, default=15)
    ap.add_argument("--out", type=Path, default=Path("outputs/ablation_activity_sim"))
    ap.add_argument("--real-results", type=Path, default=None)
    args = ap.parse_args(argv)
    root = os.environ.get("WDP_REAL_DATA")
    if not root or not Path(root).is_dir():
        print(
            "WDP_REAL_DATA is not set to a restore of the real labelled datasets (../shared/data/real)", file=sys.stderr
        )
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("pytorch_lightning", "lightning_fabric", "lightning"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    import pytorch_lightning as pl
    import torch
    from hydra import compose, initialize_config_module

    from wdp.activity.preprocess import scale_windows
    from wdp.train.activity import _feature_scale, fit_deep, prepare_fold
    from wdp.train.activity_data import ActivityDataSpec, Corpus, fold_items
    from wdp.train.activity_eval import macro_f1_present

    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    with initialize_config_module(config_module="wdp.conf", version_base="1.3"):
        cfg = compose("train", overrides=["task=activity", "data=har_intel5300", f"paths.output_dir={args.out}"])
    spec = ActivityDataSpec.from_config(cfg.data)
    corpus = Corpus(spec, root)
    classes = list(spec.classes)
    seed = int(cfg.seed)

    t0 = time.perf_counter()
    card = corpus.card(list(range(spec.shape[0])))
    raw, ys = simulated_windows(card, classes, args.scenes_per_class, seed)
    sim_card = corpus.card(list(range(spec.shape[0])), _feature_scale(raw))
    xs = scale_windows(raw, sim_card.feature_scale)
    log.info("simulated %d windows in %.0f s", len(ys), time.perf_counter() - t0)
    # pretraining: a fifth of the simulated scenes' windows validate (whole scenes: 3 windows each)
    scene = np.arange(len(ys)) // 3
    val = np.isin(scene, np.unique(scene)[::5])
    pcfg = cfg.copy()
    pcfg.model.optim.epochs = args.pretrain_epochs
    pl.seed_everything(seed, workers=True)
    pre = fit_deep("activity_net", pcfg, sim_card, xs[~val], ys[~val], xs[val], ys[val])
    state = {k: v.clone() for k, v in pre.net.state_dict().items()}
    log.info("pretrained: %s", pre.info)

    real = json.loads(args.real_results.read_text()) if args.real_results else {}
    out: dict[str, dict] = {"pretrain": {**pre.info, "windows": int(len(ys)), "classes": list(SIM_CLASSES)}}
    for protocol in args.protocols:
        rows = {}
        ys_all, pred_pre, pred_real = [], [], []
        for fold in spec.folds(protocol):
            index, train, test = fold_items(corpus, fold)
            pl.seed_everything(seed, workers=True)
            d = prepare_fold(corpus, train, test, index, seed)
            pl.seed_everything(seed, workers=True)
            ft = fit_deep("activity_net", cfg, d.card, d.xf, d.yf, d.xv, d.yv, init_state=state)
            p_ft = ft.predict(d.xt)[0].argmax(1)
            if real:
                f1_real = real[protocol]["models"]["activity_net"]["fold_macro_f1"][fold.name]
            else:
                pl.seed_everything(seed, workers=True)
                ro = fit_deep("activity_net", cfg, d.card, d.xf, d.yf, d.xv, d.yv)
                p_ro = ro.predict(d.xt)[0].argmax(1)
                pred_real.append(p_ro)
                f1_real = macro_f1_present(d.yt, p_ro, len(classes))
            ys_all.append(d.yt)
            pred_pre.append(p_ft)
            rows[fold.name] = {"pretrained_then_real": macro_f1_present(d.yt, p_ft, len(classes)), "real_only": f1_real}
            log.info("%s %s: %s", protocol, fold.name, rows[fold.name])
        y = np.concatenate(ys_all)
        pooled_pre = macro_f1_present(y, np.concatenate(pred_pre), len(classes))
        pooled_real = (
            real[protocol]["models"]["activity_net"]["macro_f1"]
            if real
            else macro_f1_present(y, np.concatenate(pred_real), len(classes))
        )
        out[protocol] = {"folds": rows, "pretrained_then_real": pooled_pre, "real_only": pooled_real}
        (args.out / "ablation.json").write_text(json.dumps(out, indent=1))
        print(
            f"| {protocol} | {pooled_real:.3f} | {pooled_pre:.3f} | {pooled_pre - pooled_real:+.3f} | "
            + ", ".join(f"{k} {v['real_only']:.2f} -> {v['pretrained_then_real']:.2f}" for k, v in rows.items())
            + " |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
