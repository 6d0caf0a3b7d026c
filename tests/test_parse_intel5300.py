"""Intel 5300 csitool bfee logs against the csitool's own MATLAB reader output (reference_mat/) and CSIKit."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from wdp.csi import StreamReader, parse_bytes, read_capture
from wdp.csi.scaling import scaled_capture_csi, scaled_csi, total_rss_dbm

WITH_MAT = ["intel5300_csitool_sample_log.all_csi.6.7.6", "intel5300_csikit_example_t410"]
CSIREAD_3000 = "intel5300/intel5300_csiread_monitor_ch64_0x5_3000pkts.dat"


def _mat_frames(csi_dir: Path, stem: str) -> tuple[list[dict], list[np.ndarray]]:
    """read_bf_file structs as dicts (csi turned from MATLAB's Ntx x Nrx x 30 into 30 x Nrx x Ntx)."""
    mat = scipy.io.loadmat(csi_dir / "reference_mat" / f"{stem}.matlab_read_bf_file.mat")
    frames = []
    for cell in mat["csi"][:, 0]:
        st = cell[0, 0]
        d = {name: st[name] for name in st.dtype.names}
        rec = {k: int(np.asarray(v).ravel()[0]) for k, v in d.items() if k not in ("csi", "perm")}
        rec["perm"] = [int(x) for x in np.asarray(d["perm"]).ravel()]
        rec["csi"] = np.transpose(np.asarray(d["csi"]).reshape(rec["Ntx"], rec["Nrx"], 30), (2, 1, 0))
        frames.append(rec)
    scaled = [np.transpose(np.asarray(c), (2, 1, 0)) for c in mat["csi_scaled"][:, 0]]
    return frames, scaled


@pytest.fixture(scope="module", params=WITH_MAT)
def with_mat(request: pytest.FixtureRequest, csi_dir: Path):
    stem = request.param
    cap = read_capture(csi_dir / "intel5300" / f"{stem}.dat")
    frames, scaled = _mat_frames(csi_dir, stem)
    return cap, frames, scaled


def test_raw_csi_equals_matlab_read_bf_file_exactly(with_mat) -> None:
    cap, ref, _ = with_mat
    assert len(cap) == len(ref)
    assert cap.stats.malformed == cap.stats.skipped == cap.stats.truncated == 0
    for h, r in zip(cap.csi, ref, strict=True):
        assert h.shape == (30, r["Nrx"], r["Ntx"])
        np.testing.assert_array_equal(h, r["csi"].astype(np.complex64))


def test_metadata_equals_matlab_read_bf_file(with_mat) -> None:
    cap, ref, _ = with_mat
    m = cap.meta
    for i, r in enumerate(ref):
        assert int(m["timestamp_raw"][i]) == r["timestamp_low"]
        assert m["timestamp"][i] == pytest.approx(r["timestamp_low"] * 1e-6)
        assert int(m["seq"][i]) == r["bfee_count"]
        assert list(m["rssi_ant"][i][:3]) == [r["rssi_a"], r["rssi_b"], r["rssi_c"]]
        assert int(m["noise"][i]) == r["noise"]
        assert int(m["agc"][i]) == r["agc"]
        assert int(m["rate"][i]) == r["rate"]
        assert [int(p) + 1 for p in m["perm"][i]] == r["perm"]  # ours 0-based, MATLAB 1-based
        assert int(m["bandwidth_mhz"][i]) == 20  # no HT40 flag (0x800) in these logs
        expected_rss = total_rss_dbm([r["rssi_a"], r["rssi_b"], r["rssi_c"]], r["agc"])
        assert int(m["rssi"][i]) == round(expected_rss)


def test_scaled_csi_matches_get_scaled_csi(with_mat) -> None:
    cap, _, ref_scaled = with_mat
    ours = scaled_capture_csi(cap)
    assert len(ours) == len(ref_scaled)
    for h, r in zip(ours, ref_scaled, strict=True):
        np.testing.assert_allclose(h, r, rtol=1e-5, atol=0)


def test_csiread_3000_packets_skip_c1_records_and_match_csikit(csi_dir: Path) -> None:
    cap = read_capture(csi_dir / CSIREAD_3000)
    s = cap.stats
    assert (len(cap), s.records, s.skipped, s.malformed, s.truncated) == (2998, 5996, 2998, 0, 0)
    assert cap.shapes() == {(30, 3, 1): 2998}
    h = np.stack(cap.csi).astype(np.complex128)
    # CSIKit 2.5 (numpy 1.23.5) IWLBeamformReader, scaled=False: csi_matrix[k, 0, 0] of frame 0 (MANIFEST),
    # three values of the last frame (rx 2) and checksums over all 2998 frames
    # [sum re, sum im, sum re*(frame+1), sum im*(frame+1), sum re*(sub+1), sum im*(sub+1)].
    np.testing.assert_array_equal(h[0, :3, 0, 0], [12 - 19j, 1 - 25j, -9 - 13j])
    np.testing.assert_array_equal(h[-1, [0, 15, 29], 2, 0], [3 + 0j, 1 - 2j, 1 - 2j])
    f = np.arange(1, len(h) + 1)[:, None, None, None]
    k = np.arange(1, 31)[None, :, None, None]
    sums = [h.real.sum(), h.imag.sum(), (h.real * f).sum(), (h.imag * f).sum(), (h.real * k).sum(), (h.imag * k).sum()]
    assert [int(x) for x in sums] == [-1966, -8216, -3110491, -12967559, -13540, -141276]
    m = cap.meta

    def row(i: int) -> tuple[int, ...]:
        return (
            int(m["timestamp_raw"][i]),
            int(m["seq"][i]),
            *map(int, m["rssi_ant"][i][:3]),
            int(m["noise"][i]),
            int(m["agc"][i]),
        )

    assert row(0) == (40121045, 1, 36, 23, 20, -127, 63)
    assert row(-1) == (43120066, 2998, 40, 15, 19, -127, 60)
    assert list(m["record_index"][:2]) == [1, 3]  # the file starts with an 0xC1 record


@pytest.mark.parametrize("name", [*(f"{s}.dat" for s in WITH_MAT), Path(CSIREAD_3000).name])
def test_format_is_sniffed(csi_dir: Path, name: str) -> None:
    assert read_capture(csi_dir / "intel5300" / name).format == "intel5300"


def test_chunked_stream_equals_one_shot(csi_dir: Path) -> None:
    data = (csi_dir / "intel5300" / f"{WITH_MAT[0]}.dat").read_bytes()
    whole = parse_bytes(data, "intel5300")
    rng = np.random.default_rng(7)
    reader = StreamReader("intel5300")
    got: list[np.ndarray] = []
    seqs: list[int] = []
    pos = 0
    while pos < len(data):
        step = int(rng.integers(1, 700))
        part = reader.feed(data[pos : pos + step])
        got += part.csi
        seqs += list(part.meta["seq"])
        pos += step
    tail = reader.finish()
    got += tail.csi
    assert len(got) == len(whole) == 29
    for a, b in zip(got, whole.csi, strict=True):
        np.testing.assert_array_equal(a, b)
    assert seqs == list(whole.meta["seq"])
    assert reader.stats == whole.stats


# --- synthetic records: exercise validation, permutation repair and bit packing independently ---


def _pack_bfee(
    values: np.ndarray, *, antenna_sel: int, rate: int = 0x100, len_field: int | None = None, nrx: int | None = None
) -> bytes:
    """Encode a file-order (30, Nrx, Ntx) int matrix the way the 5300 firmware packs it."""
    n_rx, n_tx = values.shape[1], values.shape[2]
    bits: list[int] = []
    for s in range(30):
        bits += [0, 0, 0]
        for r in range(n_rx):
            for t in range(n_tx):
                for part in (int(values[s, r, t].real), int(values[s, r, t].imag)):
                    bits += [(part & 0xFF) >> b & 1 for b in range(8)]
    payload = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        payload[i // 8] |= bit << (i % 8)
    length = len(payload) if len_field is None else len_field
    header = struct.pack(
        "<IHHBBBBBbBBHH", 123456, 42, 0, nrx or n_rx, n_tx, 30, 31, 32, -90, 40, antenna_sel, length, rate
    )
    body = bytes([0xBB]) + header + bytes(payload)
    return struct.pack(">H", len(body)) + body


def _values(n_rx: int, n_tx: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    re = rng.integers(-128, 128, size=(30, n_rx, n_tx))
    im = rng.integers(-128, 128, size=(30, n_rx, n_tx))
    return re + 1j * im


def _sel(perm_1based: list[int]) -> int:
    return sum((p - 1) << (2 * k) for k, p in enumerate(perm_1based))


@pytest.mark.parametrize(("n_rx", "n_tx"), [(1, 1), (2, 3), (3, 2), (3, 3)])
def test_bit_packing_round_trip(n_rx: int, n_tx: int) -> None:
    v = _values(n_rx, n_tx, seed=n_rx * 3 + n_tx)
    cap = parse_bytes(_pack_bfee(v, antenna_sel=_sel([1, 2, 3])), "intel5300")
    assert len(cap) == 1
    np.testing.assert_array_equal(cap.csi[0], v.astype(np.complex64))


@pytest.mark.parametrize(
    ("perm", "n_rx", "rows"),
    [
        ([3, 1, 2], 3, [1, 2, 0]),  # file row r goes to row perm[r]: out[2]=raw0, out[0]=raw1, out[1]=raw2
        ([1, 1, 1], 3, [0, 1, 2]),  # broken perm repaired to [1 2 3] like read_bf_file.m
        ([3, 1, 1], 3, [1, 2, 0]),  # [X 1 1]: last entry repaired to 6-X-1 = 2
        ([2, 1, 3], 2, [1, 0]),  # Nrx=2: only the order of the first two matters
        ([3, 2, 3], 2, [1, 0]),  # out-of-range entries with perm(2) < perm(1) -> [2 1]
    ],
)
def test_antenna_permutation_like_read_bf_file(perm: list[int], n_rx: int, rows: list[int]) -> None:
    v = _values(n_rx, 1, seed=5)
    cap = parse_bytes(_pack_bfee(v, antenna_sel=_sel(perm)), "intel5300")
    np.testing.assert_array_equal(cap.csi[0], v[:, rows, :].astype(np.complex64))
    assert [int(p) + 1 for p in cap.meta["perm"][0]] == perm  # meta keeps the file's value


def test_ht40_rate_flag_sets_40_mhz() -> None:
    v = _values(1, 1)
    cap = parse_bytes(_pack_bfee(v, antenna_sel=0, rate=0x100 | 0x800 | 7) + _pack_bfee(v, antenna_sel=0), "intel5300")
    assert list(cap.meta["bandwidth_mhz"]) == [40, 20]
    assert list(cap.meta["rate"]) == [0x907, 0x100]


def test_invalid_bfee_records_are_counted_and_skipped() -> None:
    v = _values(3, 1)
    good = _pack_bfee(v, antenna_sel=_sel([1, 2, 3]))
    bad_len = _pack_bfee(v, antenna_sel=0, len_field=7)
    bad_nrx = _pack_bfee(_values(3, 1), antenna_sel=0, nrx=4)
    short_bfee = struct.pack(">H", 6) + bytes([0xBB, 1, 2, 3, 4, 5])
    empty_record = b"\x00\x00"  # field_len 0: not even a code byte
    other = struct.pack(">H", 4) + bytes([0xC1, 9, 9, 9])
    cap = parse_bytes(good + bad_len + bad_nrx + short_bfee + empty_record + other + good, "intel5300")
    s = cap.stats
    assert (len(cap), s.records, s.malformed, s.skipped, s.truncated) == (2, 7, 4, 1, 0)
    assert list(cap.meta["record_index"]) == [0, 6]


def test_truncated_file_keeps_complete_records(csi_dir: Path) -> None:
    data = (csi_dir / "intel5300" / f"{WITH_MAT[1]}.dat").read_bytes()
    cap = parse_bytes(data[:-100], "intel5300")
    assert len(cap) == 25
    assert cap.stats.truncated == 1 and cap.stats.malformed == 0


def test_oversize_length_at_end_is_truncation_not_a_hang() -> None:
    good = _pack_bfee(_values(2, 2), antenna_sel=_sel([1, 2, 3]))
    cap = parse_bytes(good + b"\xff\xff\xbb" + bytes(100), "intel5300")
    assert len(cap) == 1 and cap.stats.truncated == 1
    reader = StreamReader("intel5300")
    reader.feed(good)
    for _ in range(50):  # a 64 KiB record arriving in pieces is buffered, not parsed early
        assert len(reader.feed(b"\xff\xff\xbb" + bytes(1000))) == 0
    assert reader.stats.frames == 1


@pytest.mark.parametrize("seed", range(5))
def test_garbage_does_not_crash_or_hang(csi_dir: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    garbage = rng.integers(0, 256, size=int(rng.integers(1, 20000)), dtype=np.uint8).tobytes()
    good = (csi_dir / "intel5300" / f"{WITH_MAT[0]}.dat").read_bytes()
    for data in (garbage, garbage + good, good + garbage):
        cap = parse_bytes(data, "intel5300")
        s = cap.stats
        assert s.records == s.frames + s.malformed + s.skipped
        assert s.bytes == len(data) or (s.truncated == 1 and s.bytes < len(data))
        assert all(h.shape[0] == 30 for h in cap.csi)


def test_scaled_csi_edge_cases() -> None:
    zero = np.zeros((30, 3, 1), np.complex64)
    assert not np.any(scaled_csi(zero, [30, 30, 30], -90, 40))
    h = _values(3, 2).astype(np.complex64)
    # noise -127 (not measured) is treated as -92 dBm; zero RSSIs are absent antennas.
    np.testing.assert_allclose(scaled_csi(h, [30, 0, 0], -127, 40), scaled_csi(h, [30, 0, 0], -92, 40))
    with pytest.raises(ValueError, match="subcarriers, rx, tx"):
        scaled_csi(np.zeros((30, 3)), [1, 1, 1], -90, 40)
