"""The engine's DensePose output: each frame's dense twin on Topic.DENSE (engine.dense on), nothing otherwise."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from wdp import schemas
from wdp.csi.sources import SimulatorSource
from wdp.densepose_codec import dense_to_map
from wdp.engine import Engine, EngineConfig, ModelRunner, Topic
from wdp.engine.dense_stage import DenseStage
from wdp.engine.models import DenseMaps
from wdp.tracking.detections import Detections


@pytest.fixture(scope="module")
def shipped() -> ModelRunner:
    return ModelRunner.load("default", threads=1)


def _run(runner: ModelRunner, dense: bool) -> list:
    src = SimulatorSource(routers=1, room_id=101, seed=3, people=1, scene_duration_s=2.0, loop=False, realtime=False)
    engine = Engine([src], model=runner, config=EngineConfig(dense=dense))
    sub = engine.bus.subscribe({Topic.POSE, Topic.DENSE}, maxsize=100_000)
    with engine:
        assert engine.wait(60)
    return sub.drain()


def test_dense_twin_of_every_frame(shipped: ModelRunner) -> None:
    msgs = _run(shipped, dense=True)
    poses = {m.payload.frame_id: m.payload for m in msgs if m.topic is Topic.POSE}
    twins = {m.payload.frame_id: m.payload for m in msgs if m.topic is Topic.DENSE}
    assert len(poses) > 20 and set(twins) == set(poses)
    cells = 0
    for fid, twin in twins.items():
        plain = poses[fid]
        assert [p.track_id for p in twin.persons] == [p.track_id for p in plain.persons]
        assert all(p.dense is msgspec.UNSET for p in plain.persons)  # the POSE frame never carries it
        assert (
            msgspec.structs.replace(
                twin, persons=[msgspec.structs.replace(p, dense=msgspec.UNSET) for p in twin.persons]
            )
            == plain
        )
        for p in twin.persons:
            assert isinstance(p.dense, schemas.DensePose) and p.dense.map_size == (64, 64)
            parts, uv = dense_to_map(p.dense)
            cells += int((parts > 0).sum())
            assert uv.min() >= 0 and uv.max() <= 1
    assert cells > 0  # the shipped model finds body cells for the person it reports


def test_no_dense_unless_asked(shipped: ModelRunner) -> None:
    msgs = _run(shipped, dense=False)
    assert msgs and not [m for m in msgs if m.topic is Topic.DENSE]


def test_dense_stage_uses_the_most_confident_routers_map() -> None:
    parts_a = np.zeros((64, 64), np.uint8)
    parts_b = np.zeros((64, 64), np.uint8)
    parts_a[20:40, 30:34] = 1
    parts_b[20:40, 30:34] = 2
    uv = np.full((2, 64, 64), 0.5, np.float32)
    kp = np.zeros((1, 17, 3))
    kp[0, :, 0] = np.linspace(30, 34, 17) * 4 / 256
    kp[0, :, 1] = np.linspace(20, 40, 17) * 4 / 256
    kp[0, :, 2] = 0.9
    person = schemas.Person(
        track_id=7,
        keypoints=kp[0].tolist(),
        box=(29 * 4 / 256, 19 * 4 / 256, 35 * 4 / 256, 41 * 4 / 256),
        confidence=0.8,
    )
    frame = schemas.PoseFrame(frame_id=1, timestamp=0.0, source="simulator", persons=[person])
    weak = Detections.from_arrays(kp, scores=np.array([0.2]))
    strong = Detections.from_arrays(kp, scores=np.array([0.9]))
    twin = DenseStage().frame(frame, [weak, strong], [DenseMaps(parts_a, uv), DenseMaps(parts_b, uv)])
    assert twin is not None
    labels, _ = dense_to_map(twin.persons[0].dense)
    assert set(np.unique(labels)) == {0, 2}
    assert DenseStage().frame(frame, [weak], [None]) is None


def test_fast_map_decoding_equals_the_reference() -> None:
    import torch

    from wdp.engine.models import decode_densepose_fast
    from wdp.model.decode import decode_densepose

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 25, 64, 64, generator=g) * 3
    logits[:, 0] += torch.linspace(-4, 8, 64)[None, :, None]  # every regime: body, unsure, background
    logits[0, :, 0, 0] = 1.0  # a 25-way tie: body (P(background) = 1/25), the unsure branch
    uv = torch.rand(3, 2, 64, 64, generator=g)
    want_parts, want_uv = decode_densepose(logits, uv)
    parts, got_uv = decode_densepose_fast(logits.numpy(), uv.numpy())
    assert parts.dtype == np.uint8 and 0 < (parts > 0).mean() < 1
    np.testing.assert_array_equal(parts, want_parts.numpy())
    np.testing.assert_array_equal(got_uv, want_uv.numpy())


def test_bad_input_is_counted_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    """A map of the wrong shape fails the dense output of that frame only: None, counted, logged."""
    kp = [[0.5, 0.5, float("nan")]] * 17
    person = schemas.Person(track_id=1, keypoints=kp, box=(0.4, float("nan"), 0.6, 0.9), confidence=0.5)
    frame = schemas.PoseFrame(frame_id=3, timestamp=0.0, source="live", persons=[person])
    stage = DenseStage()
    parts = np.ones((64, 64), np.uint8)
    twin = stage.frame(frame, [Detections.empty()], [DenseMaps(parts, np.zeros((2, 64, 64), np.float32))])
    assert twin is not None and twin.persons[0].dense.box == (0, 0, 0, 0)  # NaN box: claims nothing
    with caplog.at_level("ERROR"):
        assert stage.frame(frame, [Detections.empty()], [DenseMaps(parts[0], np.zeros(3))]) is None
    assert stage.errors == 1 and "dense output of frame 3 failed" in caplog.text
