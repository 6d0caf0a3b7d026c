"""The shipped activity/fall models (python/wdp/models/activity/<family>): load, match shapes, classify fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wdp.activity import ActivityClassifier, find_shipped, load_card, shipped_models
from wdp.data.real import available_recordings, fixtures_dir, load_recording

D1_FALL = "Original Data/0512/fall down/qiang_falldown1.dat"
D2_WALK = "walking_user1_rm1/walking_user1_rm1_1.pcap"


@pytest.fixture(scope="module")
def root() -> Path:
    try:
        return fixtures_dir()
    except FileNotFoundError:
        pytest.skip("../shared/data/real not found beside the repository (set WDP_SHARED to ../shared)")


def test_one_model_per_hardware_family() -> None:
    cards = {load_card(d).family: load_card(d) for d in shipped_models()}
    assert set(cards) == {"intel5300-30x3x1", "nexmon-80mhz"}
    assert cards["intel5300-30x3x1"].shape == (30, 3, 1) and cards["nexmon-80mhz"].shape == (256, 1, 1)
    for card in cards.values():
        assert 0.0 < card.fall_threshold < 1.0 and card.fall_class in card.classes
        # the card records data, protocol, folds and the measured figures
        assert card.data["recordings"] > 300 and card.folds and card.metrics and card.training["seconds"] > 0
        assert card.training["seconds"] <= 1800
    assert find_shipped((30, 3, 1)).name == "intel5300-30x3x1"
    assert find_shipped((256, 1, 1)).name == "nexmon-80mhz"
    assert find_shipped((64, 1, 1)) is None


@pytest.mark.parametrize(("dataset", "path"), [("D1", D1_FALL), ("D2", D2_WALK)])
def test_shipped_model_classifies_a_fixture_recording(root: Path, dataset: str, path: str) -> None:
    (row,) = available_recordings(root, [dataset], where=lambda r: r.path == path)
    rec = load_recording(root, row)
    model_dir = find_shipped(tuple(rec.csi.shape[1:]))
    assert model_dir is not None
    clf = ActivityClassifier.load(model_dir)
    results = clf.classify(rec.csi, rec.times)
    assert results and all(r.activity in clf.card.classes for r in results)
    for r in results:
        assert np.isclose(sum(r.probs.values()), 1.0, atol=1e-4) and 0.0 <= r.p_fall <= 1.0
        assert r.fall == (r.p_fall >= clf.card.fall_threshold)
    assert [r.t for r in results] == sorted(r.t for r in results)
    again = clf.classify(rec.csi, rec.times)
    assert [r.probs for r in again] == [r.probs for r in results]  # deterministic
