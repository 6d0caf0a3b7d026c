"""Atheros CSI Tool logs against CSIKit 2.5 readings minus its +1 offset (read_csi.c has none)."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from wdp import _native
from wdp.csi import StreamReader, detect_format, parse_bytes, read_capture

REFS = json.loads((Path(__file__).parent / "refs" / "csikit_nexmon_atheros.json").read_text())
CSIKIT = {Path(r["file"]).name: r for r in REFS["atheros"]}
BPIR2 = "atheros_ath9k_bpir2_los_98pkts.dat"
CSIREAD = "atheros_csiread_ath_csi_1_3rx2tx.dat"
NO_VALUE = np.iinfo(np.int32).min
# timestamp, csi_len, channel, phyerr, noise, rate, bw, tones, nr, nc, rssi, rssi0-2, payload_len: 25 bytes
HEADER = struct.Struct("<QHHBBBBBBBBBBBH")


def records(data: bytes) -> list[bytes]:
    """Record bodies of a little-endian log (independent of the parser under test)."""
    out, pos = [], 0
    while pos + 2 <= len(data):
        (n,) = struct.unpack_from("<H", data, pos)
        out.append(data[pos + 2 : pos + 2 + n])
        pos += 2 + n
    assert pos == len(data)
    return out


def log(bodies: list[bytes], *, prefix_be: bool = False) -> bytes:
    return b"".join(struct.pack(">H" if prefix_be else "<H", len(b)) + b for b in bodies)


def to_big_endian(body: bytes) -> bytes:
    fields = HEADER.unpack_from(body)
    return struct.pack(">QHHBBBBBBBBBBBH", *fields) + body[HEADER.size :]


def digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype=np.complex64).tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("name", [BPIR2, CSIREAD])
def test_equals_csikit_minus_one(csi_dir: Path, name: str) -> None:
    ref = CSIKIT[name]
    cap = read_capture(csi_dir / "atheros" / name)
    assert cap.format == "atheros"
    assert cap.stats.frames == cap.stats.records == ref["frames"]
    assert cap.stats.malformed == cap.stats.skipped == cap.stats.truncated == 0
    assert {"x".join(map(str, k)): v for k, v in cap.shapes().items()} == ref["shapes"]
    assert digest(cap.csi) == ref["sha256_complex64"]
    np.testing.assert_array_equal(cap.csi[0][:3, 0, 0], [complex(*v) for v in ref["first3"]])
    assert cap.meta["timestamp"][0] == pytest.approx(ref["timestamp_first"], abs=1e-9)
    assert cap.meta["timestamp"][-1] == pytest.approx(ref["timestamp_last"], abs=1e-9)


def test_first_values_from_manifest(csi_dir: Path) -> None:
    # MANIFEST: independent decoding gives CSIKit's values minus (1+1j).
    a = read_capture(csi_dir / "atheros" / BPIR2).csi[0][:3, 0, 0]
    b = read_capture(csi_dir / "atheros" / CSIREAD).csi[0][:3, 0, 0]
    np.testing.assert_array_equal(a, [13 + 164j, 28 + 169j, 38 + 162j])
    np.testing.assert_array_equal(b, [-177 + 84j, -172 + 109j, -162 + 131j])


def test_meta_and_axes(csi_dir: Path) -> None:
    data = (csi_dir / "atheros" / CSIREAD).read_bytes()
    head = HEADER.unpack_from(records(data)[0])
    cap = read_capture(csi_dir / "atheros" / CSIREAD)
    f = cap.frame(0)
    assert cap.csi[0].shape == (56, 3, 2)  # (num_tones, nr = rx, nc = tx)
    assert int(cap.meta["timestamp_raw"][0]) == head[0] and f.timestamp == pytest.approx(head[0] * 1e-6)
    assert (f.channel, int(cap.meta["frequency_mhz"][0]), f.bandwidth_mhz) == (6, 2437, 20)
    assert (int(cap.meta["rate"][0]), f.noise, f.rssi) == (head[5], 0, 52)
    assert list(cap.meta["rssi_ant"][0]) == [38, 52, 36, NO_VALUE]
    bp = read_capture(csi_dir / "atheros" / BPIR2)
    assert list(bp.meta["rssi_ant"][0]) == [17, 0, NO_VALUE, NO_VALUE]  # 0x80 = chain without a value
    assert list(bp.meta["rssi_ant"][2][:2]) == [16, -1]


def test_big_endian_and_mixed_byte_orders(csi_dir: Path) -> None:
    bodies = records((csi_dir / "atheros" / BPIR2).read_bytes())
    base = parse_bytes(log(bodies), "atheros")
    be = log([to_big_endian(b) for b in bodies], prefix_be=True)
    mixed = log(bodies, prefix_be=True)  # big-endian length prefix, little-endian header
    for data in (be, mixed):
        assert _native.detect_format(data[:4096]) == "atheros"
        cap = parse_bytes(data, "atheros")
        assert len(cap) == len(base) == 98 and cap.stats == base.stats
        for x, y in zip(cap.csi, base.csi, strict=True):
            np.testing.assert_array_equal(x, y)
        for k in ("timestamp_raw", "frequency_mhz", "rssi", "rssi_ant", "rate", "noise", "bandwidth_mhz"):
            np.testing.assert_array_equal(cap.meta[k], base.meta[k], err_msg=k)


def test_detect_format_tells_atheros_from_intel(csi_dir: Path) -> None:
    for p in sorted((csi_dir / "atheros").glob("*.dat")):
        assert detect_format(p) == "atheros"
    for p in sorted((csi_dir / "intel5300").glob("*.dat")):
        assert detect_format(p) == "intel5300"


@pytest.mark.parametrize("name", [BPIR2, CSIREAD])
def test_chunked_streaming_equals_one_shot(csi_dir: Path, name: str) -> None:
    data = (csi_dir / "atheros" / name).read_bytes()
    whole = read_capture(csi_dir / "atheros" / name)
    for sizes in ([1, 2, 26, 27], [431], [5000, 1]):
        reader = StreamReader("atheros")
        csi, ts, pos, k = [], [], 0, 0
        while pos < len(data):
            step = sizes[k % len(sizes)]
            part = reader.feed(data[pos : pos + step])
            csi += part.csi
            ts.append(part.meta["timestamp_raw"])
            pos, k = pos + step, k + 1
        csi += reader.finish().csi
        assert len(csi) == len(whole)
        for a, b in zip(csi, whole.csi, strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(np.concatenate(ts), whole.meta["timestamp_raw"])
        assert reader.stats == whole.stats


def test_bad_records_are_counted(csi_dir: Path) -> None:
    bodies = records((csi_dir / "atheros" / BPIR2).read_bytes())[:5]
    good = bodies[0]
    fields = list(HEADER.unpack_from(good))

    def with_fields(**kw: int) -> bytes:
        f = fields.copy()
        names = ["ts", "csi_len", "channel", "phyerr", "noise", "rate", "bw", "tones", "nr", "nc"]
        for k, v in kw.items():
            f[names.index(k)] = v
        return HEADER.pack(*f) + good[HEADER.size :]

    no_csi = HEADER.pack(*(fields[:1] + [0] + fields[2:14] + [0]))  # status report without CSI
    too_short = good[:20]
    lengths_overflow = with_fields(csi_len=60000)
    zero_rx = with_fields(nr=0)
    four_tx = with_fields(nc=4)
    too_many_tones = with_fields(tones=200)
    csi_too_small = with_fields(tones=56, nr=3, nc=3)  # 56*3*3*20 bits > 280 bytes
    bad = [no_csi, too_short, lengths_overflow, zero_rx, four_tx, too_many_tones, csi_too_small]
    cap = parse_bytes(log(bodies[:1] + bad + bodies[1:]), "atheros")
    assert len(cap) == 5 and cap.stats.skipped == 1 and cap.stats.malformed == len(bad) - 1
    assert list(cap.meta["record_index"]) == [0, 8, 9, 10, 11]


def test_truncated_garbage_and_wrong_format(csi_dir: Path) -> None:
    data = (csi_dir / "atheros" / BPIR2).read_bytes()
    cut = parse_bytes(data[:-10], "atheros")
    assert len(cut) == 97 and cut.stats.truncated == 1
    assert parse_bytes(data[:20], "atheros").stats.truncated == 1
    assert len(parse_bytes(b"", "atheros")) == 0
    with pytest.raises(ValueError, match="Atheros"):
        parse_bytes(bytes(range(256)) * 4, "atheros")
    with pytest.raises(ValueError, match="Atheros"):
        parse_bytes((csi_dir / "intel5300" / "intel5300_csikit_example_t410.dat").read_bytes(), "atheros")
    # Random bytes after a valid first record never crash; frames keep consistent shapes.
    rng = np.random.default_rng(9)
    first = data[:433]
    for _ in range(50):
        blob = rng.integers(0, 256, int(rng.integers(0, 5000)), dtype=np.uint8).tobytes()
        cap = parse_bytes(first + blob, "atheros")
        assert cap.stats.frames == len(cap) >= 1
        for a in cap.csi:
            assert 1 <= a.shape[0] <= 114 and 1 <= a.shape[1] <= 3 and 1 <= a.shape[2] <= 3
            assert np.abs(a.real).max() <= 512 and np.abs(a.imag).max() <= 512
