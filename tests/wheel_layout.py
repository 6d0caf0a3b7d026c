"""Make `wdp.train` and `wdp.conf` importable from a source checkout (the wheel maps train/, conf/ into wdp).

Installed, this is a no-op; in a worktree run with PYTHONPATH=python it adds the repo root to wdp's package
path so wdp.train -> <repo>/train and wdp.conf -> <repo>/conf, exactly the installed layout.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import wdp

REPO = Path(__file__).resolve().parents[1]


def ensure_wheel_layout() -> None:
    if importlib.util.find_spec("wdp.train") is None and str(REPO) not in wdp.__path__:
        wdp.__path__.append(str(REPO))


def conf_dir() -> Path:
    ensure_wheel_layout()
    import wdp.conf

    return Path(wdp.conf.__file__).resolve().parent


def compose_train(*overrides: str):
    """The training config (`python -m wdp.train`) with Hydra overrides, as the command line composes it."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose("train", overrides=list(overrides))
