"""`python -m wdp.train [overrides]`: the Hydra shell around wdp.train.training.train."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    # heavy imports after Hydra has parsed the command line
    if cfg.get("task", "pose") == "activity":
        from wdp.train.activity import train_activity as run
    else:
        from wdp.train.training import train as run

    metrics, _ = run(cfg)
    # returned for Hydra sweepers (optimized_metric, as in lightning-hydra-template)
    key = cfg.get("optimized_metric")
    return metrics.get(key) if key else None


if __name__ == "__main__":
    main()
