"""nexmon_csi pcap and UDP parsing against nexmon_csi's MATLAB csireader output and CSIKit readings."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from wdp import _native
from wdp.csi import StreamReader, parse_bytes, read_capture, read_nexmon_grouped

REFS = json.loads((Path(__file__).parent / "refs" / "csikit_nexmon_atheros.json").read_text())
CSIKIT = {Path(r["file"]).name: r for r in REFS["nexmon"]}

F4339 = "nexmon_bcm4339_80mhz_csikit_example.pcap"
F4358 = "nexmon_bcm4358_80mhz_nexmon_csi_example.pcap"
F4366 = "nexmon_bcm4366c0_80mhz_csikit_example.pcap"
F43455_80 = "nexmon_bcm43455c0_80mhz_csikit_example.pcap"
F43455_40 = "nexmon_bcm43455c0_40mhz_pcap-to-csv_sample1.pcap"
ALL = [F4339, F4358, F4366, F43455_80, F43455_40]


# --- an independent minimal pcap reader/writer for building test inputs ---------------------------


def pcap_records(data: bytes) -> list[tuple[int, int, bytes]]:
    """(ts_sec, ts_usec, link-layer bytes) of a little-endian microsecond pcap."""
    assert struct.unpack_from("<I", data)[0] == 0xA1B2C3D4
    out, pos = [], 24
    while pos + 16 <= len(data):
        sec, usec, incl, _ = struct.unpack_from("<IIII", data, pos)
        out.append((sec, usec, data[pos + 16 : pos + 16 + incl]))
        pos += 16 + incl
    return out


def udp_payloads(path: Path) -> list[bytes]:
    # Every record in the samples is Ethernet(14) + IPv4(20) + UDP(8) + payload (+ a trailer on some).
    recs = pcap_records(path.read_bytes())
    return [rec[42 : 34 + struct.unpack_from(">H", rec, 38)[0]] for _, _, rec in recs]


def pcap_file(
    records: list[tuple[int, int, bytes]],
    *,
    big_endian: bool = False,
    nanos: bool = False,
    linktype: int = 1,
    snaplen: int = 262144,
) -> bytes:
    e = ">" if big_endian else "<"
    out = [struct.pack(e + "IHHiIII", 0xA1B23C4D if nanos else 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype)]
    for sec, frac, rec in records:
        out.append(struct.pack(e + "IIII", sec, frac, len(rec), len(rec)) + rec)
    return b"".join(out)


def udp_frame(payload: bytes, *, sport: int = 5500, dport: int = 5500, proto: int = 17) -> bytes:
    udp = struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack(
        ">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 1, proto, 0, bytes([10, 10, 10, 10]), bytes([255] * 4)
    )
    return b"\xff" * 6 + b"NEXMON" + b"\x08\x00" + ip + udp


def matlab_csi(csi_dir: Path, name: str) -> np.ndarray:
    mat = csi_dir / "reference_mat" / name.replace(".pcap", ".matlab_csireader.mat")
    return scipy.io.loadmat(mat)["csi_buff"]


def stacked(cap) -> np.ndarray:
    return np.stack([a[:, 0, 0] for a in cap.csi])


def digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype=np.complex64).tobytes())
    return h.hexdigest()


def assert_same_frames(a, b, *, timestamps: bool = True) -> None:
    assert len(a) == len(b)
    for x, y in zip(a.csi, b.csi, strict=True):
        np.testing.assert_array_equal(x, y)
    for k in (
        "rssi",
        "channel",
        "frequency_mhz",
        "bandwidth_mhz",
        "mac",
        "seq",
        "core",
        "spatial_stream",
        "chip",
        "record_index",
    ) + (("timestamp", "timestamp_raw") if timestamps else ()):
        np.testing.assert_array_equal(a.meta[k], b.meta[k], err_msg=k)


# --- against nexmon_csi's MATLAB csireader (reference_mat/) --------------------------------------


@pytest.mark.parametrize("name", [F4358, F4366])
def test_float_packed_chips_equal_matlab_csireader(csi_dir: Path, name: str) -> None:
    ref = matlab_csi(csi_dir, name)
    cap = read_capture(csi_dir / "nexmon" / name)
    assert cap.stats.malformed == 0 and cap.stats.skipped == 0 and cap.stats.truncated == 0
    assert cap.shapes() == {(256, 1, 1): ref.shape[0]}
    np.testing.assert_array_equal(stacked(cap), ref)  # exact: the port of unpack_float must not drift


def test_43455c0_80mhz_equals_matlab_and_keeps_records_with_a_trailer(csi_dir: Path) -> None:
    name = F43455_80
    ref = matlab_csi(csi_dir, name)
    recs = pcap_records((csi_dir / "nexmon" / name).read_bytes())
    sizes = np.array([len(r) for _, _, r in recs])
    # 18 records are 4 bytes longer (MANIFEST: "1046-byte payload"), yet their IP and UDP lengths
    # are the usual 1070 / 1050: the extra bytes are a zero link-layer trailer after the IP packet.
    trailer = np.flatnonzero(sizes == 1088)
    assert len(recs) == 566 and len(trailer) == 18 and (trailer[0], trailer[-1]) == (118, 301)
    for i in trailer:
        rec = recs[i][2]
        ip_total, udp_len = struct.unpack_from(">H", rec, 16)[0], struct.unpack_from(">H", rec, 38)[0]
        assert (ip_total, udp_len) == (1070, 1050) and rec[-4:] == bytes(4)

    cap = read_capture(csi_dir / "nexmon" / name)
    assert len(cap) == 566 and cap.stats.malformed == 0
    ours = stacked(cap)
    # MATLAB decoded only the 1084-byte records (rows 1-548, file order); rows 549-566 are its zeros.
    np.testing.assert_array_equal(ours[sizes == 1084], ref[:548])
    assert not ref[548:].any()
    # The others decode like any record: int16 pairs from payload offset 18.
    for i in trailer:
        p = recs[i][2][42:-4]
        assert len(p) == 1042
        iq = np.frombuffer(p[18:], dtype="<i2").astype(np.float32)
        np.testing.assert_array_equal(ours[i], iq[0::2] + 1j * iq[1::2])


# --- against CSIKit 2.5 (digests in tests/refs, made by tests/refs/make_csikit_refs.py) -----------


def test_4339_grouped_equals_csikit(csi_dir: Path) -> None:
    ref = CSIKIT[F4339]
    per_record = read_capture(csi_dir / "nexmon" / F4339)
    assert len(per_record) == 2850 and per_record.shapes() == {(256, 1, 1): 2850}
    assert sorted(set(per_record.meta["spatial_stream"])) == [0, 1, 2] and set(per_record.meta["core"]) == {0}

    grouped = read_nexmon_grouped(csi_dir / "nexmon" / F4339)
    # (sub, core=rx, stream=tx); CSIKit's own array is (sub, stream, core) = 256x3x1.
    assert len(grouped) == ref["frames"] == 950 and grouped.shapes() == {(256, 1, 3): 950}
    assert digest(grouped.csi) == ref["sha256_complex64"]
    np.testing.assert_array_equal(grouped.csi[0][:3, 0, 0], [complex(*v) for v in ref["first3"]])
    assert grouped.meta["timestamp"][0] == pytest.approx(ref["timestamp_first"], abs=1e-6)
    assert grouped.meta["timestamp"][-1] == pytest.approx(ref["timestamp_last"], abs=1e-6)
    # Each group holds streams 0, 1, 2 of three consecutive records.
    for s in range(3):
        np.testing.assert_array_equal(grouped.csi[5][:, 0, s], per_record.csi[15 + s][:, 0, 0])


def test_43455c0_40mhz_equals_csikit(csi_dir: Path) -> None:
    ref = CSIKIT[F43455_40]
    path = csi_dir / "nexmon" / F43455_40
    payloads = udp_payloads(path)
    cap = read_capture(path)
    assert len(cap) == len(payloads) == 353 and {len(p) for p in payloads} == {530}
    assert cap.shapes() == {(128, 1, 1): 353}
    assert cap.stats.malformed == 0  # the one record with a link-layer trailer is decoded too
    # CSIKit drops the record with a trailer (see the 80 MHz test), then merges runs of equal seq no;
    # a later record overwrites an earlier one in the same (core, stream) slot, so each CSIKit frame
    # is the last record of a run.
    keep = [i for i, (_, _, r) in enumerate(pcap_records(path.read_bytes())) if len(r) == 572]
    assert len(keep) == 352 and ref["skipped_frames"] == 1
    seq = cap.meta["seq"]
    last_of_run = [i for j, i in enumerate(keep) if j + 1 == len(keep) or seq[keep[j + 1]] != seq[i]]
    assert len(last_of_run) == ref["frames"] == 232
    assert digest(cap.csi[i] for i in last_of_run) == ref["sha256_complex64"]
    np.testing.assert_array_equal(cap.csi[0][:3, 0, 0], [736 - 64j, 351 - 768j, -21 + 11j])
    # Our grouping never merges two records of the same slot: retransmissions stay separate frames.
    grouped = read_nexmon_grouped(csi_dir / "nexmon" / F43455_40)
    assert len(grouped) == 353 and grouped.shapes() == {(128, 1, 1): 353}


def test_4358_groups_two_cores_by_two_streams(csi_dir: Path) -> None:
    per_record = read_capture(csi_dir / "nexmon" / F4358)
    assert list(zip(per_record.meta["core"], per_record.meta["spatial_stream"], strict=True)) == [
        (0, 0),
        (0, 1),
        (1, 0),
        (1, 1),
    ]
    grouped = read_nexmon_grouped(csi_dir / "nexmon" / F4358)
    assert grouped.shapes() == {(256, 2, 2): 1}
    assert grouped.meta["core"][0] == -1 and grouped.meta["spatial_stream"][0] == -1
    for i, (c, s) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        np.testing.assert_array_equal(grouped.csi[0][:, c, s], per_record.csi[i][:, 0, 0])


# --- metadata --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "chip", "channel", "freq", "bw", "rssi", "mac"),
    [
        (F4339, 1, 42, 5210, 80, None, "11:22:33:44:55:66"),
        (F4358, 0xDEAD, 155, 5775, 80, None, "00:12:34:56:78:9b"),
        (F4366, 106, 106, 5530, 80, None, "18:83:bf:65:70:9f"),
        (F43455_80, 101, 42, 5210, 80, -58, "98:de:d0:48:92:66"),
        (F43455_40, 101, 38, 5190, 40, None, "3c:a6:f6:28:30:2a"),
    ],
)
def test_meta_from_header_and_chanspec(
    csi_dir: Path, name: str, chip: int, channel: int, freq: int, bw: int, rssi: int | None, mac: str
) -> None:
    path = csi_dir / "nexmon" / name
    cap = read_capture(path)
    f = cap.frame(0)
    assert (f.channel, f.bandwidth_mhz, f.rssi, f.mac) == (channel, bw, rssi, mac)
    assert int(cap.meta["chip"][0]) == chip and int(cap.meta["frequency_mhz"][0]) == freq
    sec, usec, rec = pcap_records(path.read_bytes())[0]
    assert f.seq == struct.unpack_from("<H", rec, 42 + 10)[0]
    assert f.timestamp == pytest.approx(sec + usec * 1e-6, abs=1e-6)
    assert int(cap.meta["timestamp_raw"][0]) == sec * 1_000_000 + usec
    assert list(cap.meta["record_index"][:3]) == [0, 1, 2]


# --- UDP datagrams (live path) ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_datagrams_equal_pcap(csi_dir: Path, name: str) -> None:
    path = csi_dir / "nexmon" / name
    payloads = udp_payloads(path)[:400]
    from_pcap = read_capture(path)
    parser = _native.DatagramParser("nexmon_udp")
    for i, p in enumerate(payloads):
        got = parser.parse(p)
        assert got is not None
        np.testing.assert_array_equal(got["csi"][0], from_pcap.csi[i])
        for k in ("rssi", "channel", "frequency_mhz", "bandwidth_mhz", "mac", "seq", "core", "spatial_stream", "chip"):
            np.testing.assert_array_equal(got[k][0], from_pcap.meta[k][i], err_msg=k)
        assert np.isnan(got["timestamp"][0])  # the live source stamps arrival time itself
    assert parser.stats["frames"] == len(payloads) and parser.stats["malformed"] == 0


def _payload(
    csi: np.ndarray, *, old: bool, chip: int, chanspec: int, rssi: int = -40, seq: int = 7, conf: int = 0x0A
) -> bytes:
    magic = b"\x11\x11\x11\x11" if old else b"\x11\x11" + struct.pack("<bB", rssi, 0x88)
    head = magic + bytes([2, 4, 6, 8, 10, 12]) + struct.pack("<HHHH", seq, conf, chanspec, chip)
    iq = np.empty(2 * len(csi), dtype="<i2")
    iq[0::2], iq[1::2] = csi.real, csi.imag
    return head + iq.tobytes()


@pytest.mark.parametrize("old", [True, False])
@pytest.mark.parametrize(
    ("nfft", "chanspec", "channel", "freq", "bw"),
    [(64, 0x1006, 6, 2437, 20), (128, 0xD826, 38, 5190, 40), (256, 0xE02A, 42, 5210, 80)],
)
def test_built_datagram_both_header_variants(
    old: bool, nfft: int, chanspec: int, channel: int, freq: int, bw: int
) -> None:
    rng = np.random.default_rng(nfft)
    csi = (rng.integers(-32768, 32767, nfft) + 1j * rng.integers(-32768, 32767, nfft)).astype(np.complex64)
    parser = _native.DatagramParser("nexmon_udp")
    got = parser.parse(_payload(csi, old=old, chip=1, chanspec=chanspec))
    assert got is not None
    np.testing.assert_array_equal(got["csi"][0][:, 0, 0], csi)
    assert got["csi"][0].shape == (nfft, 1, 1)
    assert int(got["rssi"][0]) == (np.iinfo(np.int32).min if old else -40)
    assert int(got["channel"][0]) == channel and int(got["frequency_mhz"][0]) == freq
    assert int(got["bandwidth_mhz"][0]) == bw
    assert (int(got["seq"][0]), int(got["core"][0]), int(got["spatial_stream"][0])) == (7, 2, 1)
    assert list(got["mac"][0]) == [2, 4, 6, 8, 10, 12]


def test_header_variants_agree_on_a_real_record(csi_dir: Path) -> None:
    new = udp_payloads(csi_dir / "nexmon" / F43455_80)[0]
    old = b"\x11\x11\x11\x11" + new[4:]
    parser = _native.DatagramParser("nexmon_udp")
    a, b = parser.parse(new), parser.parse(old)
    np.testing.assert_array_equal(a["csi"][0], b["csi"][0])
    assert int(a["rssi"][0]) == -58 and int(b["rssi"][0]) == np.iinfo(np.int32).min


def test_bad_datagrams_are_counted_not_raised(csi_dir: Path) -> None:
    good = udp_payloads(csi_dir / "nexmon" / F4339)[0]
    parser = _native.DatagramParser("nexmon_udp")
    bad = [
        b"",
        b"\x11",
        good[:17],
        good[:-1],
        good + b"\0",
        good + bytes(4),
        b"\x22" + good[1:],
        good[:16] + b"\x99\x99" + good[18:],
        bytes(2000),
    ]
    for p in bad:
        assert parser.parse(p) is None
    assert parser.stats["malformed"] == len(bad) and parser.stats["frames"] == 0
    assert parser.parse(good) is not None and parser.stats["records"] == len(bad) + 1


# --- pcap container variants and robustness --------------------------------------------------------


def _sample_records(csi_dir: Path, n: int = 6) -> list[tuple[int, int, bytes]]:
    return (
        pcap_records((csi_dir / "nexmon" / F4358).read_bytes())[:4]
        + pcap_records((csi_dir / "nexmon" / F43455_40).read_bytes())[: n - 4]
    )


def test_pcap_byte_orders_nanoseconds_and_link_types(csi_dir: Path) -> None:
    recs = _sample_records(csi_dir)
    base = parse_bytes(pcap_file(recs), "nexmon_pcap")
    assert len(base) == 6
    assert_same_frames(parse_bytes(pcap_file(recs, big_endian=True), "nexmon_pcap"), base)
    nano = parse_bytes(pcap_file([(s, u * 1000 + 123, r) for s, u, r in recs], nanos=True), "nexmon_pcap")
    assert_same_frames(nano, base, timestamps=False)
    np.testing.assert_array_equal(nano.meta["timestamp_raw"], base.meta["timestamp_raw"])
    np.testing.assert_allclose(nano.meta["timestamp"], base.meta["timestamp"] + 123e-9, rtol=0, atol=1e-6)
    raw_ip = pcap_file([(s, u, r[14:]) for s, u, r in recs], linktype=101)
    assert_same_frames(parse_bytes(raw_ip, "nexmon_pcap"), base)
    sll_head = b"\0\0\0\1\0\6"  # packet type, ARPHRD_ETHER, address length, then address + protocol
    sll = pcap_file([(s, u, sll_head + r[6:12] + b"\0\0\x08\x00" + r[14:]) for s, u, r in recs], linktype=113)
    assert_same_frames(parse_bytes(sll, "nexmon_pcap"), base)
    vlan = pcap_file([(s, u, r[:12] + b"\x81\x00\x00\x05" + r[12:]) for s, u, r in recs])
    assert_same_frames(parse_bytes(vlan, "nexmon_pcap"), base)


def test_non_csi_records_are_skipped_bad_csi_is_malformed(csi_dir: Path) -> None:
    recs = _sample_records(csi_dir)
    good = recs[0][2]
    arp = b"\xff" * 12 + b"\x08\x06" + bytes(28)
    dns = udp_frame(b"hello", sport=40000, dport=53)
    tcp = udp_frame(good[42:], proto=6)
    garbage = bytes(range(7))
    wrong_size = udp_frame(good[42:-4])
    wrong_magic = udp_frame(b"\x12" + good[43:])
    snapped = good[:500]  # UDP length says more than the record holds
    extra = [arp, dns, tcp, garbage, b"", wrong_size, wrong_magic, snapped]
    data = pcap_file([recs[0]] + [(1, 0, r) for r in extra] + recs[1:])
    cap = parse_bytes(data, "nexmon_pcap")
    assert len(cap) == len(recs)
    assert cap.stats.skipped == 5 and cap.stats.malformed == 3 and cap.stats.records == len(recs) + len(extra)
    assert list(cap.meta["record_index"]) == [0] + list(range(1 + len(extra), len(recs) + len(extra)))


def test_oversize_and_truncated_records(csi_dir: Path) -> None:
    recs = _sample_records(csi_dir)
    # A record longer than snaplen is skipped over (counted malformed) and parsing resumes after it.
    big = (1, 0, bytes(5000))
    cap = parse_bytes(pcap_file(recs[:2] + [big] + recs[2:], snaplen=4096), "nexmon_pcap")
    assert len(cap) == len(recs) and cap.stats.malformed == 1 and cap.stats.truncated == 0
    # A length field of ~4 GB: counted, never allocated, the stream ends inside it.
    huge = pcap_file(recs[:3]) + struct.pack("<IIII", 1, 0, 0xFFFFFFF0, 0xFFFFFFF0) + bytes(3000)
    for step in (None, 1000):
        if step is None:
            cap = parse_bytes(huge, "nexmon_pcap")
            frames, stats = len(cap), cap.stats
        else:
            reader = StreamReader("nexmon_pcap")
            frames = sum(len(reader.feed(huge[i : i + step])) for i in range(0, len(huge), step))
            frames += len(reader.finish())
            stats = reader.stats
        assert frames == 3 and stats.malformed == 1 and stats.truncated == 1
    # Cut inside a record: the complete ones are kept, the tail is reported.
    whole = pcap_file(recs)
    cut = parse_bytes(whole[:-100], "nexmon_pcap")
    assert len(cut) == len(recs) - 1 and cut.stats.truncated == 1
    assert parse_bytes(whole[:10], "nexmon_pcap").stats.truncated == 1


def test_not_a_pcap_raises_value_error() -> None:
    with pytest.raises(ValueError, match="pcap"):
        parse_bytes(b"this is not a capture file at all", "nexmon_pcap")
    with pytest.raises(ValueError, match="pcapng"):
        parse_bytes(b"\x0a\x0d\x0d\x0a" + bytes(40), "nexmon_pcap")
    with pytest.raises(ValueError, match="link type"):
        parse_bytes(pcap_file([], linktype=105), "nexmon_pcap")


def test_random_garbage_does_not_crash(csi_dir: Path) -> None:
    rng = np.random.default_rng(5500)
    recs = _sample_records(csi_dir)
    header = pcap_file([])
    for _ in range(50):
        blob = rng.integers(0, 256, int(rng.integers(0, 3000)), dtype=np.uint8).tobytes()
        cap = parse_bytes(header + blob, "nexmon_pcap")
        assert cap.stats.frames == len(cap)
        # Corrupt bytes inside real records: frames that survive still have the declared shape.
        data = bytearray(pcap_file(recs))
        for pos in rng.integers(24, len(data), 20):
            data[pos] = int(rng.integers(0, 256))
        cap = parse_bytes(bytes(data), "nexmon_pcap")
        assert all(a.shape[0] in (64, 128, 256) for a in cap.csi)


@pytest.mark.parametrize("name", [F4366, F43455_40])
def test_chunked_streaming_equals_one_shot(csi_dir: Path, name: str) -> None:
    data = (csi_dir / "nexmon" / name).read_bytes()
    whole = read_capture(csi_dir / "nexmon" / name)
    for sizes in ([1, 7, 23], [4096], [100_000, 3]):
        reader = StreamReader("nexmon_pcap")
        csi, meta, pos, k = [], [], 0, 0
        while pos < len(data):
            step = sizes[k % len(sizes)]
            part = reader.feed(data[pos : pos + step])
            csi += part.csi
            meta.append(part.meta["timestamp"])
            pos, k = pos + step, k + 1
        csi += reader.finish().csi
        assert len(csi) == len(whole)
        for a, b in zip(csi, whole.csi, strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(np.concatenate(meta), whole.meta["timestamp"])
        assert reader.stats == whole.stats
