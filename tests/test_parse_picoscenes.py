"""PicoScenes .csi parser against the real sample files and CSIKit's reading of them.

Reference values come from tests/data/picoscenes_csikit_ref.npz (made by make_picoscenes_csikit_ref.py with
CSIKit 2.5 on numpy 1.23.5). Our axis order is (subcarrier, rx, tx) for every device; CSIKit's is the
same except QCA9300, where it is (subcarrier, tx, rx) and every value carries CSIKit's +1 on both parts
(PicoScenes' own parser has no such offset).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from wdp import _native
from wdp.csi import StreamReader, detect_format, parse_bytes, read_capture

REF = np.load(Path(__file__).parent / "data" / "picoscenes_csikit_ref.npz")
MAGIC = 0x20150315

AX200 = "picoscenes_ax200_csikit_example"
IWL5300 = "picoscenes_iwl5300_csikit_example"
QCA9300 = "picoscenes_qca9300_csiread_rx"
USRP = "picoscenes_usrpN210_csiread_rx"

# Frame counts and shapes in OUR axis order (MANIFEST's CSIKit column, QCA9300 transposed).
EXPECTED = {
    AX200: (885, {(56, 2, 1): 778, (52, 2, 1): 107}, 0x2000),
    IWL5300: (112, {(30, 2, 1): 99, (30, 2, 2): 12, (30, 1, 1): 1}, 0x5300),
    QCA9300: (1000, {(56, 3, 1): 1000}, 0x9300),
    USRP: (74, {(52, 1, 1): 68, (56, 1, 1): 6}, 0x1234),
}


@pytest.fixture(scope="module")
def pico_dir(csi_dir: Path) -> Path:
    return csi_dir / "picoscenes"


def _path(pico_dir: Path, stem: str) -> Path:
    return pico_dir / f"{stem}.csi"


def _as_csikit(stem: str, csi: np.ndarray) -> np.ndarray:
    """Our matrix in CSIKit's convention for that device."""
    m = csi.astype(np.complex128)
    return m.transpose(0, 2, 1) + (1 + 1j) if stem == QCA9300 else m


# --- helpers to take frames apart and put them back together -------------------------------------------


def _frames(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        (length,) = struct.unpack_from("<I", data, pos)
        out.append(data[pos : pos + 4 + length])
        pos += 4 + length
    return out


def _segments(frame: bytes) -> tuple[list[tuple[str, bytes]], bytes]:
    """(name, whole segment bytes incl. its length field) list and the trailing MPDU."""
    pos, segs = 11, []
    for _ in range(frame[10]):
        (length,) = struct.unpack_from("<I", frame, pos)
        name_len = frame[pos + 4]
        name = frame[pos + 5 : pos + 5 + name_len].rstrip(b"\0").decode()
        segs.append((name, frame[pos : pos + 4 + length]))
        pos += 4 + length
    return segs, frame[pos:]


def _build(segments: list[bytes], mpdu: bytes) -> bytes:
    body = struct.pack("<IHB", MAGIC, 1, len(segments)) + b"".join(segments) + mpdu
    return struct.pack("<I", len(body)) + body


def _segment(name: str, version: int, body: bytes) -> bytes:
    raw = bytes([len(name)]) + name.encode() + struct.pack("<H", version) + body
    return struct.pack("<I", len(raw)) + raw


# --- real files ----------------------------------------------------------------------------------------


def test_every_sample_file_parses(pico_dir: Path) -> None:
    files = sorted(pico_dir.glob("*.csi"))
    assert len(files) == 4
    for path in files:
        cap = read_capture(path)
        assert cap.format == "picoscenes"
        assert len(cap) > 0
        s = cap.stats
        assert (s.malformed, s.truncated, s.skipped) == (0, 0, 0), path.name
        assert s.frames == s.records == len(cap)
        assert s.bytes == path.stat().st_size


@pytest.mark.parametrize("stem", list(EXPECTED))
def test_frame_counts_shapes_and_chip(pico_dir: Path, stem: str) -> None:
    n, shapes, chip = EXPECTED[stem]
    cap = read_capture(_path(pico_dir, stem), format="picoscenes")
    assert len(cap) == n
    assert cap.shapes() == shapes
    assert all(a.dtype == np.complex64 for a in cap.csi)
    assert set(cap.meta["chip"].tolist()) == {chip}
    assert cap.meta["record_index"].tolist() == list(range(n))


@pytest.mark.parametrize("stem", list(EXPECTED))
def test_values_equal_csikit(pico_dir: Path, stem: str) -> None:
    cap = read_capture(_path(pico_dir, stem))
    mats = [_as_csikit(stem, a) for a in cap.csi]
    np.testing.assert_array_equal([m.shape for m in mats], REF[f"{stem}/shapes"])
    fingerprint = np.array([[m.real.sum(), m.imag.sum(), (np.abs(m) ** 2).sum()] for m in mats])
    picked = REF[f"{stem}/picked"]
    if stem == USRP:
        # float64 in the file, float32 here: equal to CSIKit's values rounded to complex64.
        np.testing.assert_allclose(fingerprint, REF[f"{stem}/fingerprint"], rtol=1e-5, atol=1e-12)
        for i in picked:
            np.testing.assert_array_equal(cap.csi[i], REF[f"{stem}/frame{i}"].astype(np.complex64))
    else:
        # Integer CSI: every frame's sums, and whole matrices of the picked frames, exactly.
        np.testing.assert_array_equal(fingerprint, REF[f"{stem}/fingerprint"])
        for i in picked:
            np.testing.assert_array_equal(mats[i], REF[f"{stem}/frame{i}"])


@pytest.mark.parametrize("stem", list(EXPECTED))
def test_timestamps_equal_csikit(pico_dir: Path, stem: str) -> None:
    ts = read_capture(_path(pico_dir, stem)).meta["timestamp"]
    # CSIKit reports seconds since the first frame; ours are absolute device-clock seconds.
    np.testing.assert_allclose(ts - ts[0], REF[f"{stem}/timestamps"], rtol=0, atol=1e-9)


def test_first_frame_metadata(pico_dir: Path) -> None:
    ax = read_capture(_path(pico_dir, AX200))
    f = ax.frame(0)
    assert (f.rssi, f.noise, f.channel, f.bandwidth_mhz) == (-33, None, 1, 20)  # noise -128 = not measured
    assert f.mac == "00:16:ea:12:34:56"
    assert f.timestamp == pytest.approx(147.832169)  # MVMExtra µs clock
    assert ax.meta["frequency_mhz"][0] == 2412
    assert ax.meta["rssi_ant"][0].tolist()[:2] == [-35, -32]
    np.testing.assert_array_equal(f.subcarrier_index, np.r_[-28:0, 1:29])
    non_ht = next(i for i, a in enumerate(ax.csi) if a.shape[0] == 52)
    np.testing.assert_array_equal(ax.subcarrier_index[non_ht], np.r_[-26:0, 1:27])

    iwl = read_capture(_path(pico_dir, IWL5300)).frame(0)
    # RxSBasic v1 stores RSSI relative to the noise floor (-89 + 20).
    assert (iwl.rssi, iwl.noise, iwl.channel, iwl.seq) == (-69, -89, 6, 1058)
    assert iwl.mac == "72:6c:9a:2f:d2:c3"  # addr2 of the 802.11 header (CSIKit shows addr1)
    np.testing.assert_array_equal(iwl.subcarrier_index, np.r_[-28:-1:2, -1, 1:28:2, 28])

    qca = read_capture(_path(pico_dir, QCA9300))
    q = qca.frame(0)
    assert (q.rssi, q.noise, q.channel, q.bandwidth_mhz, q.seq) == (-16, -95, 40, 20, 0)
    assert q.mac == "00:0e:8e:59:8a:de"
    assert qca.meta["frequency_mhz"][0] == 5200
    np.testing.assert_array_equal(q.csi[:3, 0, 0], [60 + 53j, 70 + 44j, 80 + 40j])  # CSIKit minus (1+1j)

    usrp = read_capture(_path(pico_dir, USRP))
    u = usrp.frame(0)
    assert u.timestamp == pytest.approx(1617379763.8856936, abs=1e-6)  # RxSBasic ns clock (Unix time)
    assert u.mac == "4c:ed:fb:a9:d7:72" and u.seq == -1  # an RTS: transmitter address, no sequence number
    np.testing.assert_array_equal(u.subcarrier_index, np.r_[-26:0, 1:27])  # read from the segment


def test_detect_format(pico_dir: Path, csi_dir: Path) -> None:
    for path in pico_dir.glob("*.csi"):
        assert _native.detect_format(path.read_bytes()[:4096]) == "picoscenes"
        assert detect_format(path) == "picoscenes"
    for other in ("intel5300", "nexmon", "esp32", "atheros"):
        for path in (csi_dir / other).iterdir():
            assert _native.detect_format(path.read_bytes()[:4096]) != "picoscenes", path.name


# --- streaming -----------------------------------------------------------------------------------------


def _stream(data: bytes, sizes: list[int]):
    reader = StreamReader("picoscenes")
    csi, ts, pos, k = [], [], 0, 0
    while pos < len(data):
        step = sizes[k % len(sizes)]
        part = reader.feed(data[pos : pos + step])
        csi += part.csi
        ts += part.meta["timestamp"].tolist()
        pos += step
        k += 1
    tail = reader.finish()
    csi += tail.csi
    ts += tail.meta["timestamp"].tolist()
    return csi, ts, reader.stats


@pytest.mark.parametrize(
    "stem,sizes", [(IWL5300, [1, 7, 61, 300, 4093]), (USRP, [997, 20000, 3]), (AX200, [65536, 333])]
)
def test_chunked_stream_equals_one_shot(pico_dir: Path, stem: str, sizes: list[int]) -> None:
    data = _path(pico_dir, stem).read_bytes()
    whole = parse_bytes(data, "picoscenes")
    csi, ts, stats = _stream(data, sizes)
    assert len(csi) == len(whole)
    for a, b in zip(csi, whole.csi, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ts, whole.meta["timestamp"])
    assert stats == whole.stats


# --- damaged input -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def iwl_frames(pico_dir: Path) -> list[bytes]:
    return _frames(_path(pico_dir, IWL5300).read_bytes())


def test_truncated_tail_is_counted(iwl_frames: list[bytes]) -> None:
    data = b"".join(iwl_frames)
    for cut in (1, 5, 100, len(iwl_frames[-1]) - 1):
        cap = parse_bytes(data[:-cut], "picoscenes")
        assert len(cap) == len(iwl_frames) - 1
        assert (cap.stats.truncated, cap.stats.malformed) == (1, 0)
    cap = parse_bytes(iwl_frames[0][:6], "picoscenes")  # too short to even check the magic
    assert len(cap) == 0 and cap.stats.truncated == 1


def test_empty_stream() -> None:
    cap = parse_bytes(b"", "picoscenes")
    assert len(cap) == 0 and cap.stats.truncated == 0


def test_garbage_between_frames_is_skipped(iwl_frames: list[bytes]) -> None:
    rng = np.random.default_rng(7)
    garbage = rng.integers(0, 256, 333, dtype=np.uint8).tobytes()
    data = b"".join(iwl_frames[:5]) + garbage + b"".join(iwl_frames[5:])
    cap = parse_bytes(data, "picoscenes")
    ref = parse_bytes(b"".join(iwl_frames), "picoscenes")
    assert len(cap) == len(ref)
    assert cap.stats.malformed == 1
    for a, b in zip(cap.csi, ref.csi, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad_length", [0xFFFFFFF0, 0x7FFFFFFF, 3, 0])
def test_bad_frame_length_resyncs(iwl_frames: list[bytes], bad_length: int) -> None:
    broken = struct.pack("<I", bad_length) + iwl_frames[4][4:]
    data = b"".join(iwl_frames[:4]) + broken + b"".join(iwl_frames[5:])
    cap = parse_bytes(data, "picoscenes")
    assert len(cap) == len(iwl_frames) - 1  # only the damaged frame is lost
    assert cap.stats.malformed == 1 and cap.stats.truncated == 0
    # Also when the whole stream is just a header announcing a huge frame: waits, then counts truncation.
    cap = parse_bytes(struct.pack("<IIHB", 0x00FFFFFF, MAGIC, 1, 3), "picoscenes")
    assert len(cap) == 0 and cap.stats.truncated == 1


def test_bad_segment_length_skips_that_frame(iwl_frames: list[bytes]) -> None:
    segs, mpdu = _segments(iwl_frames[2])
    names = [n for n, _ in segs]
    csi = names.index("CSI")
    raw = bytearray(segs[csi][1])
    raw[0:4] = struct.pack("<I", 0xFFFFFF00)  # segment says it is far longer than its frame
    frame = _build([s for _, s in segs[:csi]] + [bytes(raw)] + [s for _, s in segs[csi + 1 :]], mpdu)
    data = b"".join(iwl_frames[:2]) + frame + b"".join(iwl_frames[3:])
    cap = parse_bytes(data, "picoscenes")
    assert len(cap) == len(iwl_frames) - 1
    assert cap.stats.malformed == 1 and cap.stats.records == len(iwl_frames)


def test_unknown_segment_is_skipped_by_length(iwl_frames: list[bytes]) -> None:
    segs, mpdu = _segments(iwl_frames[0])
    extra = _segment("FutureThing", 9, bytes(range(200)))
    frame = _build([extra] + [s for _, s in segs] + [_segment("Other\0", 1, b"")], mpdu)
    cap = parse_bytes(frame, "picoscenes")
    ref = parse_bytes(iwl_frames[0], "picoscenes")
    assert len(cap) == 1 and cap.stats.malformed == 0
    np.testing.assert_array_equal(cap.csi[0], ref.csi[0])
    assert cap.frame(0).mac == ref.frame(0).mac and cap.frame(0).seq == ref.frame(0).seq


def test_frame_without_csi_is_counted_as_skipped(iwl_frames: list[bytes]) -> None:
    segs, mpdu = _segments(iwl_frames[0])
    no_csi = _build([s for n, s in segs if n != "CSI"], mpdu)
    cap = parse_bytes(no_csi + iwl_frames[1], "picoscenes")
    assert len(cap) == 1
    assert (cap.stats.skipped, cap.stats.malformed, cap.stats.records) == (1, 0, 2)


def test_inconsistent_csi_buffer_is_malformed(iwl_frames: list[bytes]) -> None:
    segs, mpdu = _segments(iwl_frames[0])
    out = []
    for name, raw in segs:
        if name == "CSI":
            raw = raw[:-40]  # CSI buffer length now exceeds the segment
            raw = struct.pack("<I", len(raw) - 4) + raw[4:]
        out.append(raw)
    cap = parse_bytes(_build(out, mpdu) + iwl_frames[1], "picoscenes")
    assert len(cap) == 1 and cap.stats.malformed == 1


def test_not_a_picoscenes_stream_raises(csi_dir: Path) -> None:
    with pytest.raises(ValueError, match="PicoScenes"):
        parse_bytes(bytes(range(256)) * 4, "picoscenes")
    intel = next((csi_dir / "intel5300").iterdir()).read_bytes()
    with pytest.raises(ValueError, match="PicoScenes"):
        parse_bytes(intel, "picoscenes")


def test_random_mutations_never_crash(iwl_frames: list[bytes], pico_dir: Path) -> None:
    seeds = [
        b"".join(iwl_frames[:6]),
        b"".join(_frames(_path(pico_dir, AX200).read_bytes())[:4]),
        b"".join(_frames(_path(pico_dir, USRP).read_bytes())[:2]),
    ]
    rng = np.random.default_rng(1234)
    for base in seeds:
        for _ in range(150):
            data = bytearray(base)
            for _ in range(int(rng.integers(1, 8))):
                i = int(rng.integers(8, len(data)))  # keep the first magic so the stream is accepted
                data[i] = int(rng.integers(0, 256))
            if rng.random() < 0.3:
                data = data[: int(rng.integers(8, len(data)))]
            cap = parse_bytes(bytes(data), "picoscenes")
            s = cap.stats
            assert s.frames == len(cap) and s.records >= s.frames
            for a in cap.csi:
                assert a.ndim == 3 and a.size > 0
