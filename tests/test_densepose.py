"""DensePose output: the compact wire form (RLE parts + uint8 UV), the per-person split of a window's map and
the dense metric (GPS, dpAP)."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from wdp import schemas
from wdp.densepose_codec import UV_LEVELS, decode_dense, dense_to_map, encode_dense
from wdp.model.dense import people_maps, split_by_person
from wdp.model.metrics import DENSEPOSE_COARSE, DENSEPOSE_KAPPA, PART_CHART_M, DenseAP, gps


def _crop(seed: int, h: int = 23, w: int = 11) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    parts = rng.integers(0, 25, size=(h, w)).astype(np.uint8)
    parts[rng.random((h, w)) < 0.3] = 0
    parts[:, :3] = parts[:, :1]  # some longer runs
    uv = rng.random((2, h, w)).astype(np.float32)
    uv[:, parts == 0] = 0
    return parts, uv


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_round_trip_exact_labels_uv_within_quantization(seed: int) -> None:
    parts, uv = _crop(seed)
    d = encode_dense(parts, uv, (5, 7, 11, 23), (64, 64))
    # through JSON, as a client gets it
    person = schemas.Person(track_id=3, keypoints=[[0.0, 0.0, 0.0]] * 17, box=(0, 0, 1, 1), confidence=0.9, dense=d)
    back = msgspec.json.decode(msgspec.json.encode(person), type=schemas.Person).dense
    assert isinstance(back, schemas.DensePose)
    labels, uv2 = decode_dense(back)
    np.testing.assert_array_equal(labels, parts)
    on = parts > 0
    assert np.abs(uv2[:, on] - uv[:, on]).max() <= 0.5 / UV_LEVELS + 1e-7
    assert not uv2[:, ~on].any()
    assert len(back.uv) == 2 * int(on.sum())
    full, fuv = dense_to_map(back)
    assert full.shape == (64, 64) and fuv.shape == (2, 64, 64)
    np.testing.assert_array_equal(full[7:30, 5:16], parts)
    assert not full[:7].any() and not full[:, :5].any()


def test_rle_is_compact_and_pairs() -> None:
    parts = np.zeros((4, 8), np.uint8)
    parts[1, 2:6] = 2
    parts[2, 2:6] = 23
    d = encode_dense(parts, np.full((2, 4, 8), 0.5), (0, 0, 8, 4), (64, 64))
    assert d.parts == [0, 10, 2, 4, 0, 4, 23, 4, 0, 10]
    assert d.uv == bytes([128] * 8 + [128] * 8)  # round(0.5 * 255) = 128


def test_default_person_has_no_dense_key() -> None:
    person = schemas.Person(track_id=1, keypoints=[[0.0, 0.0, 0.0]] * 17, box=(0, 0, 1, 1), confidence=0.5)
    assert b"dense" not in msgspec.json.encode(person)
    assert msgspec.json.decode(msgspec.json.encode(person), type=schemas.Person).dense is msgspec.UNSET


@pytest.mark.parametrize(
    "bad",
    [
        dict(map_size=(64, 64), box=(60, 0, 8, 1), parts=[0, 8], uv=b""),  # crop outside the map
        dict(map_size=(64, 64), box=(0, 0, 2, 2), parts=[0, 3], uv=b""),  # runs do not cover the crop
        dict(map_size=(64, 64), box=(0, 0, 2, 2), parts=[25, 4], uv=b"\0" * 8),  # no part 25
        dict(map_size=(64, 64), box=(0, 0, 2, 2), parts=[1, 4], uv=b"\0" * 7),  # uv length
        dict(map_size=(64, 64), box=(0, 0, 2, 2), parts=[1, 4, 0], uv=b"\0" * 8),  # odd run list
        dict(map_size=(64, 64), box=(0, 0, 2, 2), parts=[1, 5, 0, -1], uv=b"\0" * 10),  # negative run
    ],
)
def test_decode_rejects_inconsistent_input(bad: dict) -> None:
    with pytest.raises(ValueError):
        decode_dense(schemas.DensePose(**bad))


def _standing(x: float) -> np.ndarray:
    """A crude upright skeleton (map cells) centred on column x."""
    kp = np.zeros((17, 3))
    ys = [10, 9, 9, 10, 10, 16, 16, 22, 22, 28, 28, 30, 30, 40, 40, 50, 50]
    dx = [0, -1, 1, -2, 2, -4, 4, -5, 5, -5, 5, -3, 3, -3, 3, -3, 3]
    kp[:, 0] = x + np.array(dx)
    kp[:, 1] = ys
    kp[:, 2] = 1.0
    return kp


def test_split_gives_each_person_the_cells_near_its_skeleton() -> None:
    parts = np.zeros((64, 64), np.uint8)
    uv = np.zeros((2, 64, 64), np.float32)
    parts[8:52, 12:22] = 2  # person A around x = 17
    parts[8:52, 40:50] = 7  # person B around x = 45
    parts[0:3, 0:3] = 5  # stray cells in nobody's box
    uv[0, parts > 0] = 0.25
    kp = np.stack([_standing(17), _standing(45)])
    boxes = np.array([[11, 8, 23, 51], [39, 8, 51, 51]], float)
    a, b = split_by_person(parts, uv, kp, boxes)
    assert a.box == (12, 8, 10, 44) and set(np.unique(a.parts)) == {2}
    assert b.box == (40, 8, 10, 44) and set(np.unique(b.parts)) == {7}
    assert a.cells + b.cells == int((parts > 0).sum()) - 9
    np.testing.assert_allclose(a.uv[0][a.parts > 0], 0.25)
    # overlapping boxes: the cells go to the nearer skeleton
    wide = np.array([[0, 0, 63, 63], [0, 0, 63, 63]], float)
    a2, b2 = split_by_person(parts, uv, kp, wide)
    assert set(np.unique(a2.parts)) >= {2} and 7 not in set(np.unique(a2.parts))
    assert 2 not in set(np.unique(b2.parts))
    assert split_by_person(parts, uv, kp[:0], boxes[:0]) == []


def test_gps_perfect_wrong_part_and_offset() -> None:
    parts = np.zeros((64, 64), np.uint8)
    parts[10:20, 10:20] = 2  # torso
    uv = np.zeros((2, 64, 64))
    uv[:, parts > 0] = 0.5
    assert gps(parts, uv, parts, uv) == pytest.approx(1.0)
    wrong = np.where(parts > 0, 7, 0).astype(np.uint8)
    assert gps(wrong, uv, parts, uv) == 0.0
    assert gps(np.zeros_like(parts), uv, parts, uv) == 0.0
    shifted = uv.copy()
    shifted[0, parts > 0] += 0.1  # 0.1 of the torso's length along U
    d = 0.1 * PART_CHART_M[2, 0]
    kappa = DENSEPOSE_KAPPA[DENSEPOSE_COARSE[2]]
    assert gps(parts, shifted, parts, uv) == pytest.approx(np.exp(-(d**2) / (2 * kappa**2)))


def test_dense_ap_perfect_missed_and_false_positive() -> None:
    parts = np.zeros((64, 64), np.uint8)
    parts[10:40, 10:20] = 1
    uv = np.zeros((2, 64, 64))
    uv[:, parts > 0] = 0.3
    perfect = DenseAP()
    for _ in range(3):
        perfect.add([(parts, uv)], np.array([0.9]), [(parts, uv)])
    assert perfect.compute()["dp_ap"] == pytest.approx(1.0)

    none = DenseAP()
    none.add([], np.zeros(0), [(parts, uv)])
    assert none.compute()["dp_ap"] == 0.0

    half = DenseAP()  # a confident false positive ranked above the right answer
    half.add([(np.zeros_like(parts), uv), (parts, uv)], np.array([0.9, 0.5]), [(parts, uv)])
    assert 0.4 < half.compute()["dp_ap"] < 0.6


def test_people_maps_works_in_image_pixels() -> None:
    parts = np.zeros((64, 64), np.uint8)
    parts[8:52, 12:22] = 2
    uv = np.zeros((2, 64, 64), np.float32)
    kp = _standing(17)[None].copy()
    kp[..., :2] = (kp[..., :2] + 0.5) * 4  # map cells -> image pixels
    boxes = np.array([[11, 8, 23, 51]], float)
    (maps,) = people_maps(parts, uv, kp, (boxes + 0.5) * 4)
    np.testing.assert_array_equal(maps[0], parts)


def test_true_labels_as_predictions_score_dpap_one() -> None:
    """The simulator's own labels, cut per person like predictions are, score dpAP 1 (GPS 1 per person), and
    the engine's codec round trip keeps it within quantization."""
    from wdp.csi.simulator import SceneSimulator, random_scene

    batch = SceneSimulator(random_scene(101, 3, n_people=3)).sample(8)
    perfect, coded = DenseAP(), DenseAP()
    for i in range(len(batch["t"])):
        n = int(batch["num_people"][i])
        kp, bx = batch["keypoints"][i, :n], batch["boxes"][i, :n]
        gt = people_maps(batch["part_mask"][i], batch["uv"][i], kp, bx)
        perfect.add(gt, np.linspace(0.9, 0.5, n), gt)
        wire = []
        for parts, uv in gt:
            ys, xs = np.nonzero(parts)
            if len(ys) == 0:
                wire.append((parts, uv))
                continue
            x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
            d = encode_dense(parts[y0:y1, x0:x1], uv[:, y0:y1, x0:x1], (x0, y0, x1 - x0, y1 - y0), (64, 64))
            wire.append(dense_to_map(d))
        coded.add(wire, np.linspace(0.9, 0.5, n), gt)
    assert perfect.compute()["dp_ap"] == pytest.approx(1.0)
    assert coded.compute()["dp_ap"] == pytest.approx(1.0)
    assert perfect.compute()["dp_gps_mean"] == pytest.approx(1.0)
