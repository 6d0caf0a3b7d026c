"""Activity data groups (conf/data/har_*.yaml) over the fixtures: loading, folds, windows per split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from wheel_layout import conf_dir, ensure_wheel_layout

from wdp.data.real import fixtures_dir, read_files_tsv, split

ensure_wheel_layout()
from wdp.train.activity_data import (  # noqa: E402
    ActivityDataSpec,
    Corpus,
    fold_items,
    occupied_band,
    validation_split,
    windows,
)


@pytest.fixture(scope="module")
def root() -> Path:
    try:
        return fixtures_dir()
    except FileNotFoundError:
        pytest.skip("../shared/data/real not found beside the repository (set WDP_SHARED to ../shared)")


def _cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose("train", overrides=["task=activity", *overrides])


@pytest.mark.parametrize("data", ["har_intel5300", "har_nexmon"])
def test_every_fold_of_every_protocol_keeps_people_and_rooms_apart(data: str) -> None:
    """Over all of files.tsv (not only the fixtures): no test person (LOPO) or room (cross-room) in training."""
    spec = ActivityDataSpec.from_config(_cfg(f"data={data}").data)
    rows = [r for r in read_files_tsv() if r.dataset == spec.dataset and r.labels.get("activity") in spec.classes]
    assert {r.labels["activity"] for r in rows} == set(spec.classes)
    for protocol in spec.protocols:
        for fold in spec.folds(protocol):
            train, test = split(rows, fold)
            assert train and test
            assert not {r.path for r in train} & {r.path for r in test}
            if fold.name.startswith(("lovo_", "user")):
                assert not {r.person for r in train} & {r.person for r in test}, fold.name
            if "room" in fold.name:
                assert not {r.environment for r in train} & {r.environment for r in test}, fold.name
    if spec.dataset == "D2":  # environment B is reserved: never listed
        assert all(r.environment.startswith("envA") for r in rows)


def test_unknown_protocol_is_a_clear_error() -> None:
    spec = ActivityDataSpec.from_config(_cfg().data)
    with pytest.raises(ValueError, match="protocol 'nope'"):
        spec.folds("nope")


def test_d1_fixture_corpus_cross_room_windows(root: Path) -> None:
    cfg = _cfg("data=har_intel5300")
    spec = ActivityDataSpec.from_config(cfg.data)
    corpus = Corpus(spec, root)
    assert len(corpus.rows) == 20  # every D1 fixture, one volunteer, both rooms
    (fold,) = spec.folds("cross_room")[:1]
    index, train, test = fold_items(corpus, fold)
    assert index == list(range(30)) and corpus.card(index).bins == 15
    assert {i.environment for i in train} == {"bedroom"} and {i.environment for i in test} == {"meeting_room"}
    fit, val = validation_split(train, 0.2, seed=0)
    assert not {i.path for i in fit} & {i.path for i in val}
    assert {i.path for i in fit} | {i.path for i in val} == {i.path for i in train}
    assert fit == validation_split(train, 0.2, seed=0)[0]  # deterministic
    card = corpus.card(index)
    x, y, g = windows(corpus, train, "train", card)
    lying = next(k for k, i in enumerate(train) if i.labels["activity"] == "lying")
    assert np.sum(g == lying) == 20  # the authors' cut of a long recording: 20 windows
    others = [k for k in range(len(train)) if k != lying]
    assert all(np.sum(g == k) == 3 for k in others)  # centred window and +-1 s in training
    xe, ye, ge = windows(corpus, test, "eval", card)
    assert xe.shape[1:] == (160, 45) and len(np.unique(ge)) == len(test)
    assert all(np.sum(ge == k) == 1 for k in range(len(test)))  # one centred window per action take
    np.testing.assert_array_equal(ye, [i.label for i in test])


def test_d2_fixture_corpus_band(root: Path) -> None:
    spec = ActivityDataSpec.from_config(_cfg("data=har_nexmon").data)
    corpus = Corpus(spec, root)
    assert len(corpus.rows) == 6
    band = corpus.subcarriers_for(corpus.rows)
    assert 50 <= len(band) <= 70 and min(band) >= 100 and max(band) <= 200
    assert occupied_band([np.r_[1e-3 * np.ones(10), 100 * np.ones(5), 1e-3 * np.ones(10)]]) == list(range(10, 15))
    card = corpus.card(band)
    x, y, _ = windows(corpus, corpus.items(band), "eval", card)
    assert x.shape == (6, 150, 32) and np.isfinite(x).all()
