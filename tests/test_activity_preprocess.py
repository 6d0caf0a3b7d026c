"""wdp.activity: card round trip, preprocessing shape and determinism, on fixture recordings (D1, D2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wdp.activity import ActivityCard, load_card, preprocess, save_card, window_ends
from wdp.activity.preprocess import CLIP, cut_windows, feature_count, feature_grid, scale_windows
from wdp.data.real import available_recordings, fixtures_dir, load_recording

D1_FALL11 = "Original Data/0510/falldown/qiang_falldown11.dat"
D1_JUMP = "Original Data/0510/jump/qiang_jump1.dat"
D1_LYING = "Original Data/0510/lying/qiangtang1.dat"
D2_FALL = "falling_user1_rm1/falling_user1_rm1_1.pcap"


@pytest.fixture(scope="module")
def root() -> Path:
    try:
        d = fixtures_dir()
    except FileNotFoundError:
        pytest.skip("../shared/data/real not found beside the repository (set WDP_SHARED to ../shared)")
    return d


def _rec(root: Path, dataset: str, path: str):
    (row,) = available_recordings(root, [dataset], where=lambda r: r.path == path)
    return load_recording(root, row)


def d1_card(**kw) -> ActivityCard:
    feats = ["amp_db", "phase_rx_diff"]
    base = dict(
        family="intel5300-30x3x1",
        subcarriers=30,
        rx=3,
        tx=1,
        packet_rate_hz=20.0,
        window_s=8.0,
        hop_s=1.0,
        classes=["walking", "fall_down"],
        fall_class="fall_down",
        fall_threshold=0.5,
        subcarrier_index=list(range(30)),
        bins=30,
        features=feats,
        feature_scale=[2.0] * feature_count((30, 3, 1), 30, feats),
    )
    base.update(kw)
    return ActivityCard(**base)


def test_card_round_trip_and_checks(tmp_path: Path) -> None:
    card = d1_card(metrics={"lopo": {"macro_f1": 0.5}})
    save_card(card, tmp_path)
    back = load_card(tmp_path)
    assert back == card and back.matches((30, 3, 1)) and not back.matches((30, 3, 3))
    assert back.window_samples == 160 and back.fall_index == 1
    with pytest.raises(ValueError, match="fall_class"):
        d1_card(fall_class="falling")
    with pytest.raises(ValueError, match="subcarrier_index"):
        d1_card(subcarrier_index=[0, 30])
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "card.json").write_text('{"family": 1}')
    with pytest.raises(ValueError, match="not an activity model card"):
        load_card(tmp_path / "bad")


def test_d1_windows_shape_deterministic_and_hop(root: Path) -> None:
    rec = _rec(root, "D1", D1_FALL11)
    card = d1_card()
    a = preprocess(rec.csi, rec.times, card)
    b = preprocess(rec.csi.copy(), rec.times.copy(), card)
    n_feat = 30 * 3 + 30 * 2
    assert a.x.shape == (len(window_ends(float(rec.times[-1]), 8.0, 1.0)), 160, n_feat)
    assert a.x.dtype == np.float32 and np.isfinite(a.x).all() and np.abs(a.x).max() <= CLIP
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_allclose(np.diff(a.t), 1.0)
    assert a.t[0] == 8.0
    # each window's features have their mean removed before scaling
    raw = preprocess(rec.csi, rec.times, card, raw=True)
    np.testing.assert_allclose(raw.x.mean(axis=1), 0.0, atol=1e-9)
    np.testing.assert_array_equal(scale_windows(raw.x, card.feature_scale), a.x)
    # the same windows from the grid (what training cuts) as from preprocess (what inference runs)
    grid = feature_grid(rec.csi, rec.times, card)
    np.testing.assert_array_equal(scale_windows(cut_windows(grid, a.t, card), card.feature_scale), a.x)


def test_short_capture_one_padded_window_and_bad_frames_counted(root: Path) -> None:
    rec = _rec(root, "D1", D1_JUMP)
    card = d1_card()
    short = preprocess(rec.csi[:60], rec.times[:60], card)
    assert short.x.shape == (1, 160, 150) and short.t[0] == pytest.approx(rec.times[59] - rec.times[0], abs=0.05)
    csi = rec.csi[:100].copy()
    csi[10] = np.nan
    w = preprocess(csi, rec.times[:100], card)
    assert w.dropped["non_finite"] == 1 and np.isfinite(w.x).all()
    with pytest.raises(ValueError, match="do not match"):
        preprocess(rec.csi[:, :, :2], rec.times, card)
    assert preprocess(rec.csi[:1], rec.times[:1], card).x.shape == (0, 160, 150)


def test_long_recording_windows(root: Path) -> None:
    rec = _rec(root, "D1", D1_LYING)
    card = d1_card()
    ends = 30.0 + 15.0 * np.arange(20) + 8.0
    w = preprocess(rec.csi, rec.times, card, ends=ends)
    assert w.x.shape == (20, 160, 150)
    # a lying person barely changes the channel: most samples sit well inside the clip range
    assert np.mean(np.abs(w.x) < 2.0) > 0.9


def test_d2_occupied_band_and_sanitised_phase(root: Path) -> None:
    rec = _rec(root, "D2", D2_FALL)
    band = list(range(125, 189))
    feats = ["amp_db", "phase_sanitized"]
    card = d1_card(
        family="nexmon-80mhz",
        subcarriers=256,
        rx=1,
        tx=1,
        packet_rate_hz=25.0,
        window_s=6.0,
        classes=["walking", "falling"],
        fall_class="falling",
        subcarrier_index=band,
        bins=32,
        features=feats,
        feature_scale=[1.0] * 64,
        occupancy_filter=True,
    )
    w = preprocess(rec.csi, rec.times, card)
    assert w.x.shape == (len(window_ends(float(rec.times[-1]), 6.0, 1.0)), 150, 64)
    assert np.isfinite(w.x).all()
    # a frame far wider than the capture's usual occupancy is dropped live as on load
    wide = rec.csi.copy()
    wide[5, :100] = wide[5, 140]
    assert preprocess(wide, rec.times, card).dropped["occupancy"] >= 1
