"""Loaders of the real labelled recordings over the committed fixtures in ../shared/data/real/fixtures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wdp.csi import StreamReader, detect_format, parse_bytes, read_capture
from wdp.data import (
    PROTOCOLS,
    FileRow,
    Recording,
    available_recordings,
    fixtures_dir,
    load_recording,
    read_files_tsv,
    split,
)
from wdp.data.real import DROP_KINDS, occupancy_outliers, unwrap_counter

D1_FALL7 = "Original Data/0510/falldown/qiang_falldown7.dat"
D1_FALL11 = "Original Data/0510/falldown/qiang_falldown11.dat"
D3_BASELINE = "micro-espectre/data/baseline/baseline_c3_64sc_20260329_130411.npz"
D3_TEST = "micro-espectre/data/test/test_c3_64sc_20260329_130804.npz"
D3_INFO = "micro-espectre/data/dataset_info.json"


@pytest.fixture(scope="module")
def root() -> Path:
    try:
        d = fixtures_dir()
    except FileNotFoundError:
        pytest.skip("../shared/data/real not found beside the repository (set WDP_SHARED to ../shared)")
    if not d.is_dir():
        pytest.skip(f"fixtures of the real datasets not found at {d}")
    return d


@pytest.fixture(scope="module")
def rows(root: Path) -> list[FileRow]:
    return available_recordings(root)


@pytest.fixture(scope="module")
def recordings(root: Path, rows: list[FileRow]) -> dict[str, Recording]:
    return {f"{r.dataset}/{r.path}": load_recording(root, r) for r in rows}


def test_every_fixture_file_is_listed_and_loads(root: Path, rows: list[FileRow], recordings: dict[str, Recording]):
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != "README.md"}
    listed = {f"{r.dataset}/{r.path}" for r in read_files_tsv()}
    assert on_disk <= listed
    # Every fixture file but dataset_info.json is a recording.
    assert {f"{r.dataset}/{r.path}" for r in rows} == on_disk - {f"D3/{D3_INFO}"}
    assert {r.dataset for r in rows} == {"D1", "D2", "D3", "D4", "D5"}
    for key, rec in recordings.items():
        assert rec.csi.dtype == np.complex64 and rec.csi.ndim == 4, key
        assert rec.times.dtype == np.float64 and rec.times.shape == (len(rec),), key
        assert set(rec.dropped) == set(DROP_KINDS), key
        assert len(rec) + sum(rec.dropped.values()) == rec.stats.frames, key
        assert all(len(v) == len(rec) for v in rec.meta.values()), key
        if key == "D4/dataset/ruangan_terisi.csv":
            assert len(rec) == 0 and rec.csi.shape == (0, 64, 1, 1) and "0-byte" in rec.note
            assert np.isnan(rec.rate_hz)
            continue
        assert len(rec) > 100, key
        assert rec.times[0] == 0.0 and np.all(np.diff(rec.times) >= 0), key
        assert np.isfinite(rec.rate_hz) and rec.rate_hz > 1, key


def test_metadata_files_are_not_captures(root: Path):
    with pytest.raises(ValueError, match="not a CSI capture"):
        read_capture(root / "D3" / D3_INFO)
    info = next(r for r in read_files_tsv() if r.path == D3_INFO)
    assert not info.is_recording
    with pytest.raises(ValueError, match="metadata"):
        load_recording(root, info)


def test_espectre_npz_is_imaginary_first(root: Path):
    path = root / "D3" / D3_BASELINE
    assert detect_format(path) == "espectre_npz"
    cap = read_capture(path)
    with np.load(path) as z:
        raw = z["csi_data"]
        duration_ms = float(z["duration_ms"])
    # Hand conversion, one pair at a time: (imaginary, real) per subcarrier.
    expected = np.empty((raw.shape[0], 64), np.complex64)
    for k in range(64):
        expected[:, k] = raw[:, 2 * k + 1].astype(np.float32) + 1j * raw[:, 2 * k].astype(np.float32)
    got = np.stack(cap.csi)
    assert cap.format == "espectre_npz" and len(cap) == raw.shape[0] == 1006
    assert got.shape == (1006, 64, 1, 1) and got.dtype == np.complex64
    np.testing.assert_array_equal(got[:, :, 0, 0], expected)
    t = cap.meta["timestamp"]
    assert t[0] == 0.0
    np.testing.assert_allclose(np.diff(t), duration_ms / 1006 / 1e3)
    assert cap.stats.frames == cap.stats.records == 1006 and cap.stats.malformed == 0
    assert int(cap.meta["rssi"][0]) == np.iinfo(np.int32).min  # NO_VALUE: this file has no per-packet rssi
    np.testing.assert_array_equal(np.stack(parse_bytes(path.read_bytes(), "espectre_npz").csi), got)
    with pytest.raises(ValueError, match="file-only"):
        StreamReader("espectre_npz")


def test_d1_truncated_and_out_of_order_files(recordings: dict[str, Recording]):
    fall7 = recordings[f"D1/{D1_FALL7}"]
    assert len(fall7) == 381 and fall7.stats.truncated == 1
    assert fall7.reordered == 0 and abs(fall7.rate_hz - 20.0) < 0.1
    fall11 = recordings[f"D1/{D1_FALL11}"]
    assert len(fall11) == 332
    # The file holds a block of 20 later records first; sorted by time, sequence numbers agree.
    assert fall11.reordered > 0 and "out of time order" in fall11.note
    assert np.all(np.diff(fall11.times) >= 0)
    assert np.all(np.diff(fall11.meta["seq"].astype(np.int64)) > 0)
    assert fall11.times[-1] < 60


def test_unwrap_counter_undoes_a_32bit_wrap():
    period = 2.0**32 / 1e6
    t = np.array([4294.90, 4294.95, 0.03, 0.08])
    np.testing.assert_allclose(np.diff(unwrap_counter(t, period)), [0.05, 0.047296, 0.05], atol=1e-9)


def test_d2_link_and_occupancy_filters(recordings: dict[str, Recording]):
    other_mac = {"falling": 4, "getintobed": 19, "nm": 0, "sitdown": 21, "standup": 83, "walking": 6}
    for name, n_other in other_mac.items():
        rec = recordings[f"D2/{name}_user1_rm1/{name}_user1_rm1_1.pcap"]
        assert rec.dropped["other_mac"] == n_other, name
        assert np.all(rec.meta["mac"] == np.array([0xB8, 0x27, 0xEB, 0x03, 0xE1, 0x9F], np.uint8))
        # user1 takes carry few wide frames (the occupancy rule is for falling_user2's 27 %).
        assert 0 <= rec.dropped["occupancy"] < 0.05 * 500, name
        assert len(rec) == 500 - n_other - rec.dropped["occupancy"]
    assert sum(recordings[f"D2/{n}_user1_rm1/{n}_user1_rm1_1.pcap"].dropped["occupancy"] for n in other_mac) > 0


def test_occupancy_outliers_flags_wide_frames():
    rng = np.random.default_rng(0)
    power = rng.uniform(0.5, 1.5, (200, 256))
    power[:, 100:160] *= 1e4  # the occupied 20 MHz band
    wide = np.zeros(200, bool)
    wide[::10] = True
    power[wide, 40:100] *= 1e4  # wider frames spill into the neighbouring band
    np.testing.assert_array_equal(occupancy_outliers(power), wide)
    assert occupancy_outliers(np.zeros((0, 256))).shape == (0,)


def test_labels_and_truth_per_dataset(recordings: dict[str, Recording]):
    lying = recordings["D1/Original Data/0510/lying/qiangtang1.dat"]
    assert (lying.person, lying.environment, lying.labels["activity"]) == ("zxq", "bedroom", "lying")
    assert lying.truth.motion is False and lying.truth.still_person is True and lying.truth.presence is True
    fall = recordings["D1/Original Data/0512/fall down/qiang_falldown1.dat"]
    assert fall.environment == "meeting_room" and fall.labels["activity"] == "fall_down"
    assert fall.truth.motion is True and fall.truth.motion_segment == "middle" and fall.truth.still_person is False

    nm = recordings["D2/nm_user1_rm1/nm_user1_rm1_1.pcap"]
    assert nm.person == "user1" and nm.truth.motion is False and nm.truth.still_person is True
    assert recordings["D2/walking_user1_rm1/walking_user1_rm1_1.pcap"].truth.motion is True

    base = recordings[f"D3/{D3_BASELINE}"]
    assert base.person is None and base.labels["chip"] == "c3" and base.labels["in_head"] == "yes"
    assert base.truth.motion is False and base.truth.presence is None
    assert recordings[f"D3/{D3_BASELINE.replace('baseline', 'movement').replace('130411', '130429')}"].truth.motion
    test = recordings[f"D3/{D3_TEST}"]
    assert test.truth.motion is None and test.truth.motion_from_s == pytest.approx(test.times[3040])
    assert 29 < test.truth.motion_from_s < 31
    m = test.truth.motion_at(test.times)
    assert not m[:3040].any() and m[3040:].all()

    nlos180 = recordings["D4/dataset/hambatan_nlos.csv"]  # person outside behind glass: the authors' "empty"
    assert nlos180.truth.presence is False and nlos180.truth.motion is None
    occupied = recordings["D4/dataset_update/training/terisi/hambatan_14.csv"]
    assert occupied.labels["condition"] == "NLOS" and occupied.truth.presence is True
    assert occupied.dropped["other_mac"] == 2
    assert recordings["D4/dataset_update/training/kosong/kosong_22.csv"].truth.presence is False
    assert np.isnan(occupied.truth.motion_at([0.0, 1.0])).all()

    slow = recordings["D5/datasets/AN1_Slow_Take05_BPM12_20260418_094137.csv"]
    assert slow.person == "AN1" and slow.labels["take"] == "05"
    assert slow.truth.breathing_bpm_nominal == 12.0 and slow.truth.still_person is True and not slow.truth.apnea
    apnea = recordings["D5/datasets/AN1_Apnea_Take01_BPM06_20260418_083015.csv"]
    assert apnea.truth.apnea and apnea.truth.breathing_bpm_nominal is None and apnea.truth.motion is False
    noise = recordings["D5/datasets/AN1_Noise_Take05_BPM17_20260418_105951.csv"]
    assert noise.truth.motion is None and noise.truth.still_person is None


def test_protocol_folds_are_disjoint_and_cover(recordings: dict[str, Recording]):
    all_rows = read_files_tsv()
    for ds, folds in PROTOCOLS.items():
        ds_rows = [r for r in all_rows if r.dataset == ds and r.is_recording]
        for fold in folds:
            assert fold.dataset == ds
            train, test = split(all_rows, fold)
            assert train and test, fold.name
            assert not {r.path for r in train} & {r.path for r in test}, fold.name
            assert all(r.is_recording and r.dataset == ds for r in train + test), fold.name
            tr, te = split(recordings.values(), fold)  # predicates also take loaded recordings
            assert not {r.path for r in tr} & {r.path for r in te}, fold.name
        held_out = [r.path for f in folds if f.name.startswith(("lovo_", "take_")) for r in split(all_rows, f)[1]]
        if held_out:  # leave-one-out style folds test every recording exactly once
            assert sorted(held_out) == sorted(r.path for r in ds_rows), ds
    names = {f.name for f in PROTOCOLS["D4"]}
    assert {"authors_split", "authors_split_LOS", "authors_split_NLOS", "update_to_dataset180"} <= names
    d4_180 = next(f for f in PROTOCOLS["D4"] if f.name == "update_to_dataset180")
    assert "dataset/ruangan_terisi.csv" not in {r.path for r in split(all_rows, d4_180)[1]}
    cur = next(f for f in PROTOCOLS["D3"] if f.name == "current_to_deleted")
    train, test = split(all_rows, cur)
    assert (len(train), len(test)) == (21, 18)
