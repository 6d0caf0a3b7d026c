"""Simulator: determinism, contract shapes, physics sanity, impairments, labels, scripted scenes, stream."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from wdp import schemas_sample as S
from wdp.csi.simulator import (
    SPLIT_ROOMS,
    Fall,
    Impairments,
    Lie,
    PersonSpec,
    SceneSimulator,
    SimConfig,
    Stand,
    Walk,
    random_scene,
    room_from_id,
    scripted_scene,
)
from wdp.csi.simulator.channel import scatter_channel
from wdp.csi.simulator.config import SPEED_OF_LIGHT, Band

CLEAN = SimConfig(impairments=Impairments(enabled=False))
# Impairments on, but without the non-linear parts (noise, quantisation) so ratios are exact.
EXACT = SimConfig(impairments=Impairments(snr_db=float("inf"), quantize=False))


def _center(room_id: int) -> np.ndarray:
    return room_from_id(room_id).walkable.mean(axis=0)


def _walker(room_id: int = 101, config: SimConfig = CLEAN) -> SceneSimulator:
    c = _center(room_id)
    spec = PersonSpec(tuple(c - [1.0, 0.0]), (Walk(to=tuple(c + [1.0, 0.3]), speed=1.0), Stand()))
    return SceneSimulator(scripted_scene(room_id, [spec], duration=6.0), config)


def _fit_linear_residual(phase: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares line over subcarriers (axis 1) of an unwrapped phase (N, K, ...): residual, slope."""
    un = np.unwrap(phase, axis=1)
    a = np.column_stack([idx, np.ones_like(idx)])
    flat = un.transpose(1, 0, *range(2, un.ndim)).reshape(len(idx), -1)
    coef, *_ = np.linalg.lstsq(a, flat, rcond=None)
    resid = flat - a @ coef
    return resid, coef[0]


# ---- determinism and contract --------------------------------------------------------------------------


def test_same_seed_gives_identical_samples_and_stream():
    a = SceneSimulator(random_scene(7, 11, n_people=3)).sample(6)
    b = SceneSimulator(random_scene(7, 11, n_people=3)).sample(6)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    fa = list(SceneSimulator(random_scene(7, 11, n_people=2)).stream(0.0, 0.3))
    fb = list(SceneSimulator(random_scene(7, 11, n_people=2)).stream(0.0, 0.3))
    assert [f.timestamp for f in fa] == [f.timestamp for f in fb]
    for x, y in zip(fa, fb, strict=True):
        np.testing.assert_array_equal(x.csi, y.csi)


def test_different_seeds_and_rooms_differ():
    r0, r1 = room_from_id(0), room_from_id(1)
    assert not np.allclose(r0.size, r1.size)
    assert not np.allclose(r0.tx, r1.tx)
    s0 = SceneSimulator(random_scene(0, 5, n_people=1))
    s1 = SceneSimulator(random_scene(1, 5, n_people=1))
    assert not np.allclose(s0.static.total, s1.static.total)
    a, b = s0.sample(3), s1.sample(3)
    assert not np.allclose(a["amplitude"], b["amplitude"])
    c = SceneSimulator(random_scene(0, 6, n_people=1)).sample(3)
    assert not np.allclose(a["amplitude"], c["amplitude"])
    # the room of an id never depends on the scene seed
    np.testing.assert_array_equal(random_scene(4, 1).room.tx, random_scene(4, 2).room.tx)


@pytest.mark.parametrize("n_people", [0, 1, 4])
def test_sample_shapes_and_dtypes_follow_contract(n_people):
    batch = SceneSimulator(random_scene(70, 3, n_people=n_people)).sample(4)
    S.validate_sample({k: batch[k] for k in S.SAMPLE_FIELDS}, batched=True)
    assert set(batch) == set(S.SAMPLE_FIELDS) | set(S.META_FIELDS)
    for k, (dtype, shape) in S.META_FIELDS.items():
        assert batch[k].dtype == dtype and batch[k].shape == (4, *shape)
    assert np.all(batch["room_id"] == 70) and np.all(batch["seed"] == 3)
    assert np.all(batch["num_people"] <= n_people)
    assert np.all(np.abs(batch["phase"]) <= np.pi + 1e-6)
    assert np.all(batch["amplitude"] >= 0)
    # padding slots are zero / -1
    for i, n in enumerate(batch["num_people"]):
        assert np.all(batch["activity"][i, n:] == -1) and np.all(batch["activity"][i, :n] >= 0)
        assert np.all(batch["keypoints"][i, n:] == 0) and np.all(batch["boxes"][i, n:] == 0)
        assert np.all(batch["person_area"][i, :n] > 0)
    if n_people == 0:
        assert not batch["part_mask"].any() and not batch["uv"].any()


def test_default_band_is_intel5300_channel6():
    band = Band()
    assert len(band.subcarrier_index) == S.N_SUB
    assert band.subcarrier_index[:3] == (-28, -26, -24) and band.subcarrier_index[13:17] == (-2, -1, 1, 3)
    assert band.center_hz == 2.437e9
    f = band.frequencies
    assert f.min() == pytest.approx(2.437e9 - 28 * 312.5e3) and f.max() == pytest.approx(2.437e9 + 28 * 312.5e3)


# ---- physics ---------------------------------------------------------------------------------------------


def test_moving_person_changes_csi_and_static_room_does_not():
    walker = _walker()
    t = np.array([0.5, 0.8, 1.1])
    h = walker.physical_csi(t)
    change = np.abs(h[1:] - h[:-1]).mean() / np.abs(h).mean()
    assert change > 0.02  # a walking body moves the channel by several percent within 0.3 s

    empty = SceneSimulator(scripted_scene(101, [], duration=6.0), CLEAN)
    he = empty.physical_csi(t)
    np.testing.assert_array_equal(he[0], he[1])
    np.testing.assert_array_equal(he[0], he[2])
    # a person adds to the static channel: it differs from the empty room
    assert np.abs(h[0] - he[0]).mean() / np.abs(he[0]).mean() > 0.01


def test_empty_room_reported_csi_varies_only_by_impairments():
    sim = SceneSimulator(scripted_scene(3, [], duration=6.0), EXACT)
    times = np.linspace(0.1, 5.0, 40)
    rep = sim.received_csi(times, np.random.default_rng(0)).astype(np.complex128)
    ratio = rep / sim.static.total[None]
    # amplitude: one gain per (packet, rx chain), the same on every subcarrier and tx antenna
    gain = np.abs(ratio)
    np.testing.assert_allclose(gain, gain[:, :1, :, :1] * np.ones_like(gain), rtol=1e-4)
    assert len(np.unique(np.round(gain[:, 0, 0, 0], 4))) > 1  # AGC steps do happen over 5 s
    # phase: linear in the subcarrier index per packet and chain, and different from packet to packet
    idx = np.asarray(sim.config.band.subcarrier_index, np.float64)
    resid, slope = _fit_linear_residual(np.angle(ratio), idx)
    assert np.abs(resid).max() < 1e-4
    assert np.std(slope) > 0.01


def test_impairments_are_linear_phase_and_scale_only():
    sim = _walker(config=EXACT)
    times = np.linspace(0.2, 2.0, 25)
    phys = sim.physical_csi(times)
    rep = sim.received_csi(times, np.random.default_rng(1)).astype(np.complex128)
    ratio = rep / phys
    idx = np.asarray(sim.config.band.subcarrier_index, np.float64)
    resid, slope = _fit_linear_residual(np.angle(ratio), idx)
    assert np.abs(resid).max() < 1e-4  # removing a linear fit removes CFO, STO/SFO and chain offsets
    # slopes of ~ -2 pi df tau with tau ~ 30 ns per packet: clearly present
    assert np.abs(slope).mean() > 0.01
    # with impairments off the receiver only applies its fixed AGC set point
    clean = _walker(config=CLEAN)
    rep0 = clean.received_csi(times, np.random.default_rng(1)).astype(np.complex128)
    r0 = rep0 / clean.physical_csi(times)
    np.testing.assert_allclose(np.angle(r0), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.abs(r0), clean.impairments.base_gain, rtol=1e-5)


def test_longer_path_rotates_phase_down_with_negative_subcarrier_slope():
    room = room_from_id(2)
    band = Band()
    mid = 0.5 * (room.tx.mean(0) + room.rx.mean(0))
    away = np.cross(room.rx.mean(0) - room.tx.mean(0), [0, 0, 1.0])
    away /= np.linalg.norm(away)
    delta = 0.01  # 1 cm step away from the link: the bistatic path grows
    p0 = mid + 1.0 * away
    p1 = p0 + delta * away
    amp = np.array([1.0 + 0j])
    h = scatter_channel(np.stack([p0[None], p1[None]]), amp, room, band).astype(np.complex128)
    ratio = h[1] / h[0]  # (K, R, X)
    d0 = np.linalg.norm(p0 - room.tx[0]) + np.linalg.norm(p0 - room.rx[0])
    d1 = np.linalg.norm(p1 - room.tx[0]) + np.linalg.norm(p1 - room.rx[0])
    assert d1 > d0
    expected = -2 * np.pi * band.frequencies * (d1 - d0) / SPEED_OF_LIGHT
    np.testing.assert_allclose(np.angle(ratio[:, 0, 0]), np.angle(np.exp(1j * expected)), atol=1e-4)
    assert np.all(np.angle(ratio[:, 0, 0]) < 0)  # Doppler of a receding scatterer is negative
    idx = np.asarray(band.subcarrier_index, np.float64)
    slope = np.polyfit(idx, np.unwrap(np.angle(ratio[:, 0, 0])), 1)[0]
    assert slope < 0
    assert slope == pytest.approx(-2 * np.pi * band.subcarrier_spacing_hz * (d1 - d0) / SPEED_OF_LIGHT, rel=1e-3)


def test_body_crossing_line_of_sight_attenuates_it():
    room = room_from_id(101)
    mid = 0.5 * (room.tx.mean(0) + room.rx.mean(0))
    spec = PersonSpec((float(mid[0]), float(mid[1])), (Stand(),))
    cfg = dataclasses.replace(CLEAN, body_points=True)
    sim = SceneSimulator(scripted_scene(room, [spec], duration=2.0), cfg)
    no_shadow = SceneSimulator(
        scripted_scene(room, [spec], duration=2.0), dataclasses.replace(cfg, los_shadowing=False)
    )
    t = np.array([0.5])
    los_part = sim.physical_csi(t) - no_shadow.physical_csi(t)
    # the difference is exactly a scaled-down LoS term
    factor = 1.0 + los_part[0] / sim.static.los
    assert np.all(np.abs(factor.imag) < 1e-9)
    assert factor.real.min() < 0.8 and factor.real.max() <= 1.0


def test_window_frames_are_the_grid_instants_without_impairments():
    sim = _walker(config=CLEAN)
    starts = np.array([50, 120])
    batch = sim.windows(starts)
    for i, k0 in enumerate(starts):
        grid = (k0 + np.arange(S.WINDOW)) / 100.0
        want = np.abs(sim.physical_csi(grid)) * sim.impairments.base_gain
        np.testing.assert_allclose(batch["amplitude"][i], want, rtol=1e-5)
    np.testing.assert_allclose(batch["t"], (starts + S.WINDOW // 2) / 100.0)


def test_lossy_link_still_fills_every_window_frame():
    cfg = dataclasses.replace(SimConfig(), impairments=Impairments(packet_loss=0.6, burst_loss_rate_hz=1.0))
    batch = SceneSimulator(random_scene(9, 1, cfg, n_people=1), cfg).sample(8)
    assert batch["amplitude"].shape == (8, S.WINDOW, S.N_SUB, S.N_RX, S.N_TX)
    assert np.all(batch["amplitude"].reshape(8, S.WINDOW, -1).max(axis=-1) > 0)
    # with 60 % loss some frames must reuse a neighbouring packet
    frames = batch["amplitude"].reshape(8, S.WINDOW, -1)
    repeats = sum(np.array_equal(frames[i, j], frames[i, j + 1]) for i in range(8) for j in range(S.WINDOW - 1))
    assert repeats > 0


# ---- bodies, labels, events --------------------------------------------------------------------------------


def test_standing_people_in_view_project_inside_the_image():
    room = room_from_id(12)
    walk = room.walkable
    picks = walk[np.linspace(0, len(walk) - 1, 4).astype(int)]
    sim = SceneSimulator(scripted_scene(room, [PersonSpec(tuple(p), (Stand(),)) for p in picks], duration=3.0))
    lab, listed = sim.labels(1.0)
    assert listed == [0, 1, 2, 3] and lab["num_people"] == 4
    kp = lab["keypoints"]
    assert np.all(kp[..., 2] == S.VIS_VISIBLE)
    assert np.all((kp[..., :2] >= 0) & (kp[..., :2] < S.IMAGE_W))
    box = lab["boxes"]
    assert np.all(box[:, None, 0] <= kp[..., 0]) and np.all(kp[..., 0] <= box[:, None, 2])
    assert np.all(box[:, None, 1] <= kp[..., 1]) and np.all(kp[..., 1] <= box[:, None, 3])
    np.testing.assert_allclose(lab["person_area"], (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1]), rtol=1e-5)
    # head above feet in the image, and a standing adult is tens of pixels tall
    assert np.all(kp[:, 0, 1] < kp[:, 15, 1]) and np.all(kp[:, 15, 1] - kp[:, 0, 1] > 20)
    # parts: ids 1..24 only, U/V in [0, 1] on body pixels and 0 elsewhere
    pm, uv = lab["part_mask"], lab["uv"]
    assert pm.max() <= S.N_PARTS and (pm > 0).sum() > 50
    assert np.all(uv[:, pm == 0] == 0)
    assert np.all((uv[:, pm > 0] >= 0) & (uv[:, pm > 0] <= 1))


def test_torso_part_depends_on_facing_the_camera():
    room = room_from_id(12)
    c = tuple(room.walkable.mean(axis=0))
    cam = room.camera.position
    facing = np.arctan2(cam[1] - c[1], cam[0] - c[0])
    torso_front, torso_back = S.part_id("torso_front"), S.part_id("torso_back")
    for heading, present, absent in (
        (facing, torso_front, torso_back),
        (facing + np.pi, torso_back, torso_front),
    ):
        sim = SceneSimulator(scripted_scene(room, [PersonSpec(c, (Stand(),), heading=heading)], 2.0))
        pm = sim.labels(1.0)[0]["part_mask"]
        assert (pm == present).sum() > 5 and (pm == absent).sum() == 0


def test_person_out_of_view_gets_no_slot():
    room = room_from_id(12)
    cam = room.camera.position
    behind = (float(cam[0]), 0.05)  # at the camera's wall, outside the view
    sim = SceneSimulator(scripted_scene(room, [PersonSpec(behind, (Stand(),))], 2.0))
    lab, listed = sim.labels(1.0)
    assert listed == [] and lab["num_people"] == 0 and np.all(lab["activity"] == -1)


def test_segment_part_ids_match_densepose_part_names():
    from wdp.csi.simulator.body import SEGMENTS

    limb = {"upper_arm": "upper_arm", "forearm": "lower_arm", "hand": "hand", "thigh": "upper_leg",
            "shank": "lower_leg", "foot": "foot", "torso": "torso", "head": "head"}  # fmt: skip
    seen = set()
    for name, *_, ids in SEGMENTS:
        side = {"l": "left", "r": "right"}.get(name.split("_")[0])
        part = limb[name.split("_", 1)[1] if side else name]
        for pid in ids:
            pname = S.DENSEPOSE_PARTS[pid - 1]
            assert part in pname, (name, pname)
            assert side is None or side in pname, (name, pname)
            seen.add(pid)
    assert seen == set(range(1, S.N_PARTS + 1))


def test_config_dict_round_trip():
    cfg = SimConfig(impairments=Impairments(snr_db=float("inf")), windows_per_scene=3)
    d = cfg.to_dict()
    assert SimConfig.from_dict(json.loads(json.dumps(d))) == cfg
    with pytest.raises(ValueError):
        SimConfig(people_probs=(0.5, 0.4))


def test_body_dimensions_are_plausible():
    from wdp.csi.simulator import body_from_subject, forward_kinematics
    from wdp.csi.simulator.motion import neutral_pose

    heights = [body_from_subject(i).height for i in range(200)]
    assert 1.48 <= min(heights) and max(heights) <= 1.98 and np.std(heights) > 0.05
    shape = body_from_subject(17)
    j = forward_kinematics(shape, neutral_pose(1)).joints[0]
    h = shape.height
    assert j[15, 2] / h == pytest.approx(0.039, abs=0.005)  # ankle
    assert j[13, 2] / h == pytest.approx(0.285, abs=0.02)  # knee
    assert j[11, 2] / h == pytest.approx(0.530, abs=0.03)  # hip
    assert j[5, 2] / h == pytest.approx(0.818, abs=0.03)  # shoulder
    assert j[0, 2] / h == pytest.approx(0.92, abs=0.03)  # nose
    assert 0.3 < np.linalg.norm(j[5] - j[6]) < 0.5  # shoulder joints
    assert j[1, 1] > j[2, 1]  # left eye on the body's left (+y when facing +x)


def test_walk_moves_at_its_speed_with_leg_swing():
    sim = _walker()
    t = np.linspace(0.6, 1.6, 11)  # after the start blend
    pose = sim.poses(t)[0]
    pelvis = pose.joints[:, 17, :2]
    speed = np.linalg.norm(pelvis[-1] - pelvis[0]) / (t[-1] - t[0])
    assert speed == pytest.approx(1.0, rel=0.05)
    ankles = pose.joints[:, 15, :2] - pose.joints[:, 16, :2]
    assert np.ptp(ankles @ (pelvis[-1] - pelvis[0]) / np.linalg.norm(pelvis[-1] - pelvis[0])) > 0.5


def test_fall_scenario_flags_the_fall_and_ends_lying():
    c = _center(101)
    spec = PersonSpec(tuple(c), (Stand(until=2.0), Fall(direction="backward", duration=0.7), Lie()))
    sim = SceneSimulator(scripted_scene(101, [spec], duration=6.0), CLEAN)
    starts = np.array([100, 228, 400])  # standing, mid-fall (2.3 s), lying
    batch = sim.windows(starts)
    assert batch["fall"].tolist() == [False, True, False]
    act = [S.ACTIVITIES[a] for a in batch["activity"][:, 0]]
    assert act == ["stand", "fall", "lie"]
    head = sim.poses(np.array([1.0, 4.0]))[0].joints[:, 0, 2]
    assert head[0] > 1.3 and head[1] < 0.4
    lab = sim.labels(4.0)[0]
    box = lab["boxes"][0]
    # lying: the box is wider than tall, standing it is taller than wide
    assert box[2] - box[0] > box[3] - box[1]
    b0 = sim.labels(1.0)[0]["boxes"][0]
    assert b0[3] - b0[1] > b0[2] - b0[0]


def test_scripted_two_person_events_in_stream():
    """Two people: A walks into a zone (x > zone_x), B falls at t=3 s; the 100 Hz stream shows both."""
    c = _center(101)
    zone_x = float(c[0]) + 0.5
    a = PersonSpec(
        tuple(c - [1.0, 0.4]),
        (Stand(until=1.0), Walk(to=(zone_x + 0.7, float(c[1]) - 0.4), speed=1.0), Stand()),
    )
    b = PersonSpec(tuple(c + [0.0, 0.6]), (Stand(until=3.0), Fall(direction="left", duration=0.6), Lie()))
    sim = SceneSimulator(scripted_scene(101, [a, b], duration=6.0))
    frames = list(sim.stream())
    ts = np.array([f.timestamp for f in frames])
    assert np.all(np.diff(ts) > 0)
    assert 0.9 * 600 < len(frames) <= 600  # 100 Hz minus lost packets
    assert frames[0].csi.shape == (S.N_SUB, S.N_RX, S.N_TX) and frames[0].csi.dtype == np.complex64
    assert all(len(f.persons) == 2 for f in frames)
    enter = next(f.timestamp for f in frames if f.persons[0].position[0] > zone_x)
    expected = 1.0 + (zone_x - (float(c[0]) - 1.0)) / 1.0
    assert enter == pytest.approx(expected, abs=0.25)
    fall_t = [f.timestamp for f in frames if f.persons[1].falling]
    assert fall_t and min(fall_t) == pytest.approx(3.0, abs=0.02) and max(fall_t) == pytest.approx(3.6, abs=0.02)
    last = frames[-1].persons[1]
    assert last.activity == "lie" and last.joints3d[0, 2] < 0.5
    assert frames[0].persons[1].activity == "stand"
    kp = frames[0].persons[0].keypoints
    assert kp.shape == (17, 3) and np.all(kp[:, 2] == S.VIS_VISIBLE)


def test_antenna_counts_and_band_are_configurable():
    from wdp.csi.simulator import stream_frames

    cfg = SimConfig(n_rx=2, n_tx=1, band=Band(center_hz=5.32e9))
    scene = random_scene(120, 4, cfg, n_people=1)
    assert scene.room.rx.shape == (2, 3) and scene.room.tx.shape == (1, 3)
    # half-wavelength spacing at 5.32 GHz
    assert np.linalg.norm(scene.room.rx[1] - scene.room.rx[0]) == pytest.approx(SPEED_OF_LIGHT / 5.32e9 / 2)
    frames = list(stream_frames(scene, cfg, t_end=0.1))
    assert frames and frames[0].csi.shape == (30, 2, 1)
    assert not cfg.matches_contract()


def test_random_scenes_cover_activities_and_falls():
    acts = np.zeros(len(S.ACTIVITIES), int)
    falls = 0
    for seed in range(12):
        sim = SceneSimulator(random_scene(int(SPLIT_ROOMS["train"][seed]), seed, n_people=3))
        for p in sim.scene.people:
            a = p.timeline.activity(np.arange(0, sim.scene.duration, 0.05))
            acts += np.bincount(a, minlength=len(S.ACTIVITIES))
            falls += len(p.timeline.fall_intervals())
    assert np.all(acts > 0), dict(zip(S.ACTIVITIES, acts, strict=True))
    assert falls > 0
