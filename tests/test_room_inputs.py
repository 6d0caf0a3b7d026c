"""experiment=rooms_ref's pieces: the room context (empty-room reference, geometry, floor labels), a net that
reads it, its export, and the engine's refusal to serve it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from wheel_layout import compose_train, ensure_wheel_layout

ensure_wheel_layout()
from wdp.csi.simulator import SceneSimulator, SimConfig, random_scene, scene_seed  # noqa: E402
from wdp.data.room_context import GEOMETRY_FIELDS, RoomContext, empty_reference, room_geometry  # noqa: E402
from wdp.engine import ModelRunner  # noqa: E402
from wdp.model.exported import load_exported  # noqa: E402
from wdp.model.spec import ROOM_INPUT_NAMES, output_names  # noqa: E402
from wdp.train.training import train  # noqa: E402

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")


def test_floor_labels_are_the_labelled_person_and_geometry_is_in_the_receivers_frame() -> None:
    cfg = SimConfig()
    scene = random_scene(3, scene_seed("train", 0, 1), cfg, n_people=None)
    batch = SceneSimulator(scene, cfg).sample(4)
    ctx = RoomContext(cfg).arrays(np.full(4, 3), np.full(4, scene.seed), batch["t"])
    n = int(batch["num_people"][0])
    assert n >= 1  # this scene has people (fixed seed)
    room = scene.room
    rx = room.rx.mean(axis=0)
    for i in range(4):
        for p in range(n):
            if batch["keypoints"][i, p, 11, 2] <= 0 or batch["keypoints"][i, p, 12, 2] <= 0:
                continue
            # the floor label lifted to the pelvis height projects between the labelled hips
            pelvis = SceneSimulator(scene, cfg).poses(batch["t"][i : i + 1])[p].joints[0, 17]
            np.testing.assert_allclose(ctx["floor_xy"][i, p], pelvis[:2] - rx[:2], atol=1e-5)
            uv, _ = room.camera.project(pelvis[None])
            hips = batch["keypoints"][i, p, 11:13, :2].mean(axis=0)
            assert np.linalg.norm(uv[0] - hips) < 3.0
        assert np.isnan(ctx["floor_xy"][i, n:]).all()
    g = room_geometry(3, cfg)
    assert len(g) == len(GEOMETRY_FIELDS)
    np.testing.assert_allclose(g[:2], (room.tx.mean(axis=0) - rx)[:2], atol=1e-5)
    assert g[2] < 0 < g[3] and g[4] <= 0 < g[5]  # the receiver stands inside the room outline
    assert abs(np.hypot(g[8], g[9]) - 1) < 1e-5
    np.testing.assert_array_equal(ctx["geometry"][0], g)


def test_empty_reference_is_per_room_and_deterministic() -> None:
    cfg = SimConfig()
    a1, p1 = empty_reference(5, cfg, {"tx_difference": True})
    a2, p2 = empty_reference(5, cfg, {"tx_difference": True})
    b1, _ = empty_reference(6, cfg, {"tx_difference": True})
    assert a1.shape == p1.shape == (30, 3, 3)
    np.testing.assert_array_equal(a1, a2) and np.testing.assert_array_equal(p1, p2)
    assert np.abs(a1 - b1).mean() > 0.05 * a1.mean()  # another room, another static channel


def test_room_input_run_exports_a_net_that_reads_the_room_and_the_engine_refuses_it(tmp_path: Path) -> None:
    cfg = compose_train(
        "experiment=smoke",
        f"paths.output_dir={tmp_path}",
        f"data.cache_dir={tmp_path / 'sim'}",
        "data.num_people=1",
        "data.room_inputs=true",
        "+data.sanitize.tx_difference=true",
        "+model.net.count_head=true",
        "+model.net.room_inputs=true",
        "model.net.phase_trig=true",
        "export.formats=[torchscript,onnx]",
        "plots.enabled=false",
    )
    metrics, objects = train(cfg)
    test = objects["datamodule"].split("test").arrays
    assert test["ref_amplitude"].shape[1:] == (30, 3, 3) and test["geometry"].shape[1:] == (10,)
    assert metrics["test/floor_error"] > 0 and metrics["test/floor_error_constant"] > 0 and "test/floor" in metrics
    export = objects["exported"]["card"].parent
    card = json.loads((export / "model_card.json").read_text())
    assert list(card["inputs"]) == ["amplitude", "phase", *ROOM_INPUT_NAMES]
    assert list(card["outputs"]) == list(output_names(7))
    rows = slice(0, 3)
    args = [test[k][rows].numpy() for k in ("amplitude", "phase", *ROOM_INPUT_NAMES)]
    net = objects["model"].net.eval()
    with torch.no_grad():
        want = net(*(torch.from_numpy(a) for a in args))[6].numpy()
    for backend in ("torchscript", "onnx"):
        model = load_exported(export, backend=backend)
        assert model.room_inputs
        got = model(*args)
        np.testing.assert_allclose(got["floor_xy"].numpy(), want, atol=1e-4)
        with pytest.raises(ValueError, match="reads amplitude, phase, ref_amplitude"):
            model(*args[:2])
    with pytest.raises(ValueError, match="empty-room reference"):
        ModelRunner.load(export)

    # bench/eval_room_inputs.py on the same export: its floor error is the head's on the windows it regenerates
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import eval_room_inputs

    r = eval_room_inputs.evaluate(export, 32, tmp_path / "targets")
    sanitize = eval_room_inputs.sanitize_kwargs(card)
    arrays = eval_room_inputs.windows(tmp_path / "targets", "test", 32, 44, {}, sanitize)  # the cached split
    assert r["windows"] == 32 and r["with_person"] == int((arrays["num_people"] > 0).sum())
    _, floor, _ = eval_room_inputs.predict(load_exported(export), arrays)
    has = arrays["num_people"] > 0
    err = np.linalg.norm(floor[has] - arrays["floor_xy"][has, 0], axis=1)
    assert r["floor_median_m"] == pytest.approx(float(np.median(err)), rel=1e-5)
