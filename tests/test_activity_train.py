"""`python -m wdp.train task=activity` end to end on the fixtures (one epoch, tiny nets): reports, card, ONNX
export equal to torch, the exported model classifying a fixture recording."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from wheel_layout import conf_dir, ensure_wheel_layout

from wdp.activity import ActivityClassifier, preprocess
from wdp.data.real import available_recordings, fixtures_dir, load_recording

ensure_wheel_layout()
from wdp.train.activity import train_activity  # noqa: E402
from wdp.train.activity_export import torch_outputs  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")
D1_FALL = "Original Data/0512/fall down/qiang_falldown1.dat"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    try:
        root = fixtures_dir()
    except FileNotFoundError:
        pytest.skip("../shared/data/real not found beside the repository (set WDP_SHARED to ../shared)")
    out = tmp_path_factory.mktemp("activity")
    torch.set_num_threads(1)
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "task=activity",
                "data=har_intel5300",
                f"data.root={root}",
                "protocol=cross_room",
                f"paths.output_dir={out}",
                "model.optim.epochs=1",
                "model.nets.activity_net.width=8",
                "model.nets.gru_baseline.width=8",
                "model.forest.n_estimators=10",
                "model.forest.n_jobs=1",
                "activity.bootstrap=20",
                "activity.threads=1",
                "activity.ship=true",
            ],
        )
    metrics, objects = train_activity(cfg)
    return root, out, metrics, objects


def test_reports_every_model_on_the_same_folds(run) -> None:
    _, out, metrics, objects = run
    for name in ("activity_net", "gru_baseline", "forest"):
        assert 0.0 <= metrics[f"test/cross_room/{name}/macro_f1"] <= 1.0
    results = json.loads((out / "report" / "results.json").read_text())
    s = results["cross_room"]
    assert s["folds"] == ["bedroom_to_meeting_room", "meeting_room_to_bedroom"]
    assert set(s["comparison"]) == {"gru_baseline", "forest"}
    for c in s["comparison"].values():
        assert c["ci_low"] <= c["diff"] <= c["ci_high"] or np.isclose(c["ci_low"], c["ci_high"])
    m = s["models"]["activity_net"]
    assert set(m["per_class_f1"]) == set(objects["corpus"].spec.classes)
    assert m["false_falls"]["hours"] > 0 and {"precision", "recall", "f1"} <= set(m["fall"])
    assert sum(map(sum, m["confusion"])) == sum(f["test_files"] for f in s["fold_detail"]) + 19  # lying: 20 windows
    for d in s["fold_detail"]:
        assert not set(d["train_rooms"]) & set(d["test_rooms"])
    assert Path(m["confusion_png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "report" / "results.md").read_text()
    assert "| target | goal | value | met |" in md and "macro_f1" in md


def test_exported_model_matches_torch_and_classifies(run) -> None:
    root, _, _, objects = run
    model_dir = objects["exported"]
    clf = ActivityClassifier.load(model_dir)
    card = clf.card
    assert card.family == "intel5300-30x3x1" and clf.matches((30, 3, 1)) and not clf.matches((256, 1, 1))
    assert 0.0 <= card.fall_threshold <= 1.0 and card.data["recordings"] == 20
    assert "cross_room" in card.metrics and card.training["seconds"] > 0
    (row,) = available_recordings(root, ["D1"], where=lambda r: r.path == D1_FALL)
    rec = load_recording(root, row)
    w = preprocess(rec.csi, rec.times, card)
    probs, p_fall = clf.predict(w.x)
    t_probs, t_fall = torch_outputs(objects["shipped"]["net"], card, w.x)
    np.testing.assert_allclose(probs, t_probs, atol=1e-5)
    np.testing.assert_allclose(p_fall, t_fall, atol=1e-5)
    results = clf.classify(rec.csi, rec.times)
    assert len(results) == len(w.t) and results[0].t == 8.0
    r = results[0]
    assert r.activity in card.classes and r.p_activity == max(r.probs.values())
    assert r.fall == (r.p_fall >= card.fall_threshold)
    last = clf.classify_window(rec.csi[-200:], rec.times[-200:])
    assert last is not None and last.activity in card.classes


def test_deterministic_on_cpu(run, tmp_path: Path) -> None:
    """The same config twice (here: the net alone): the same thresholds and test predictions."""
    root = run[0]
    outs = []
    for i in range(2):
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            cfg = compose(
                "train",
                overrides=[
                    "task=activity",
                    f"data.root={root}",
                    "protocol=cross_room",
                    f"paths.output_dir={tmp_path / str(i)}",
                    "model.compare=[activity_net]",
                    "model.optim.epochs=2",
                    "model.nets.activity_net.width=8",
                    "activity.threads=1",
                ],
            )
        _, objects = train_activity(cfg)
        outs.append(
            [
                (f["models"]["activity_net"]["p_fall"], f["models"]["activity_net"]["threshold"])
                for f in objects["folds"]["cross_room"]
            ]
        )
    for (p0, t0), (p1, t1) in zip(*outs, strict=True):
        np.testing.assert_array_equal(p0, p1)
        assert t0 == t1


def test_fold_without_test_people_is_skipped_and_all_skipped_is_an_error(run, tmp_path: Path) -> None:
    root = run[0]
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=["task=activity", f"data.root={root}", "protocol=lopo", f"paths.output_dir={tmp_path}"],
        )
    with pytest.raises(ValueError, match="protocol lopo: no fold has both training and test recordings"):
        train_activity(cfg)
