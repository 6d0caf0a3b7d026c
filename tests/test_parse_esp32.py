"""ESP32 CSI CSV logs (ESP32-CSI-Tool and espressif/esp-csi rows) vs CSIKit and an independent reading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wdp import _native
from wdp.csi import Capture, StreamReader, detect_format, parse_bytes, read_capture

EXAMPLE = "esp32_csikit_example_data.csv"  # header + 60 rows, 20 MHz, HT
NOHEADER = "esp32_csitool_example_csi_noheader.csv"  # 13 rows, no header, 40 MHz
BAD_LINE = "esp32_csikit_100hz_pitraffic_one_bad_line.csv"  # header + 834 rows, line 19 has 127 ints
ALL = [EXAMPLE, NOHEADER, BAD_LINE]

# CSIKit 2.5 (numpy 1.23.5) CSVBeamformReader, scaled=False, run once with /work/csikit-venv:
# NOHEADER read with the 26-column header prepended, BAD_LINE with its corrupt line 19 removed (CSIKit
# raises on the whole file otherwise). Per file: frame count, csi_matrix[i, k, 0] for k in SUBS of three
# frames, and checksums over all frames [sum re, sum im, sum re*(frame+1), sum im*(frame+1),
# sum re*(sub+1), sum im*(sub+1)].
SUBS = [0, 1, 2, 10, 40, 63]
CSIKIT = {
    EXAMPLE: (
        60,
        {
            0: [18 + 38j, 97 + 0j, -20 - 1j, -22 + 1j, 10 - 16j, -6 + 9j],
            30: [18 + 38j, 97 + 0j, 19 + 8j, 17 + 3j, -21 + 0j, 9 - 6j],
            59: [18 + 38j, 97 + 0j, 14 + 5j, 12 + 3j, -9 + 9j, 7 - 4j],
        },
        [3588, 1002, 92012, 10796, -133523, 24556],
    ),
    NOHEADER: (
        13,
        {
            0: [101 - 48j, 5 + 0j, 0j, 27 + 20j, 24 + 8j, 0j],
            6: [101 - 48j, 5 + 0j, 0j, 9 + 25j, 15 + 14j, 0j],
            12: [101 - 48j, 5 + 0j, 0j, -22j, -6 - 18j, 0j],
        },
        [2309, -900, 19154, -20909, 30937, -15367],
    ),
    BAD_LINE: (
        833,
        {
            0: [38 + 96j, 2 + 0j, 27 - 6j, 18 - 9j, 19 - 1j, 26 + 2j],
            416: [38 + 96j, 2 + 0j, -10 - 31j, -13 - 20j, -1 - 18j, -2 - 29j],
            832: [38 + 96j, 2 + 0j, -24 + 19j, -12 + 18j, -20 + 5j, -25 + 10j],
        },
        [7529, 18554, 3161377, 4854512, -564340, -1960520],
    ),
}


def _checksums(h: np.ndarray) -> list[int]:
    f = np.arange(1, h.shape[0] + 1)[:, None]
    k = np.arange(1, h.shape[1] + 1)[None, :]
    return [
        int(x)
        for x in (
            h.real.sum(),
            h.imag.sum(),
            (h.real * f).sum(),
            (h.imag * f).sum(),
            (h.real * k).sum(),
            (h.imag * k).sum(),
        )
    ]


def _reference_rows(text: str) -> list[dict]:
    """Independent plain-Python reading of ESP32-CSI-Tool rows (26 fields, pairs are imag, real)."""
    rows = []
    for line in text.splitlines():
        f = line.split(",")
        if f[0] != "CSI_DATA" or len(f) != 26:
            continue
        vals = [int(x) for x in f[25].strip().strip("[]").split()]
        if len(vals) % 2:
            continue
        sig_mode = int(f[5])
        rows.append(
            {
                "mac": bytes.fromhex(f[2].replace(":", "")),
                "rssi": int(f[3]),
                "rate": int(f[6]) if sig_mode else int(f[4]),
                "bandwidth_mhz": {0: 20, 1: 40}[int(f[7])],
                "noise": int(f[14]),
                "channel": int(f[16]),
                "local": int(f[18]),
                "real": float(f[23]),
                "csi": np.array(vals[1::2]) + 1j * np.array(vals[0::2]),
            }
        )
    return rows


def _stack(cap: Capture) -> np.ndarray:
    return np.stack([h[:, 0, 0] for h in cap.csi]).astype(np.complex128)


def _same_frames(
    a: Capture,
    b: Capture,
    fields: tuple[str, ...] = (
        "timestamp",
        "timestamp_raw",
        "rssi",
        "noise",
        "channel",
        "bandwidth_mhz",
        "mac",
        "rate",
    ),
) -> None:
    assert len(a) == len(b)
    for x, y in zip(a.csi, b.csi, strict=True):
        np.testing.assert_array_equal(x, y)
    for name in fields:
        np.testing.assert_array_equal(a.meta[name], b.meta[name], err_msg=name)


@pytest.fixture(scope="module")
def caps(csi_dir: Path) -> dict[str, Capture]:
    return {name: read_capture(csi_dir / "esp32" / name) for name in ALL}


def test_every_file_parses_with_expected_counts(caps: dict[str, Capture]) -> None:
    expected = {  # frames, records, malformed, skipped (header line), truncated
        EXAMPLE: (60, 61, 0, 1, 0),
        NOHEADER: (13, 13, 0, 0, 0),
        BAD_LINE: (833, 835, 1, 1, 0),
    }
    for name, cap in caps.items():
        s = cap.stats
        assert (len(cap), s.records, s.malformed, s.skipped, s.truncated) == expected[name], name
        assert cap.format == "esp32"
        assert cap.shapes() == {(64, 1, 1): len(cap)}


def test_bad_line_is_the_only_one_skipped(caps: dict[str, Capture]) -> None:
    idx = list(caps[BAD_LINE].meta["record_index"])
    # record 0 is the header; file line 19 (1-based) is record 18.
    assert idx == [*range(1, 18), *range(19, 835)]


@pytest.mark.parametrize("name", ALL)
def test_values_equal_csikit_with_iq_swapped(caps: dict[str, Capture], name: str) -> None:
    # CSIKit turns each pair [a b] into a + b*j. Espressif's documentation and ESP32-CSI-Tool's own
    # plotting script treat the FIRST number as the imaginary part, so our csi = b + a*j: our real part
    # is CSIKit's imaginary part and vice versa (same amplitude, mirrored phase).
    n_frames, samples, sums = CSIKIT[name]
    ours = _stack(caps[name])
    as_csikit = ours.imag + 1j * ours.real
    assert len(ours) == n_frames
    for i, vals in samples.items():
        np.testing.assert_array_equal(as_csikit[i, SUBS], vals)
    assert _checksums(as_csikit) == sums
    np.testing.assert_array_equal(np.abs(ours), np.abs(as_csikit))


@pytest.mark.parametrize("name", ALL)
def test_every_frame_matches_an_independent_reading(csi_dir: Path, caps: dict[str, Capture], name: str) -> None:
    cap = caps[name]
    ref = _reference_rows((csi_dir / "esp32" / name).read_text())
    assert len(ref) == len(cap)
    m = cap.meta
    for i, r in enumerate(ref):
        np.testing.assert_array_equal(cap.csi[i][:, 0, 0], r["csi"])
        assert bytes(m["mac"][i]) == r["mac"]
        for key in ("rssi", "rate", "bandwidth_mhz", "noise", "channel"):
            assert int(m[key][i]) == r[key], key
        assert int(m["timestamp_raw"][i]) == r["local"]
        # real_timestamp (s) when the node's clock was set, else the local µs counter.
        assert m["timestamp"][i] == (r["real"] if r["real"] != 0 else r["local"] * 1e-6)
        assert int(m["seq"][i]) == -1  # ESP32-CSI-Tool rows carry no sequence number


def test_first_frame_metadata(caps: dict[str, Capture]) -> None:
    f = caps[NOHEADER].frame(0)
    assert (f.mac, f.rssi, f.noise, f.channel, f.bandwidth_mhz) == ("3c:71:bf:6d:2a:78", -73, -93, 1, 40)
    assert f.timestamp == 80.363225
    f = caps[EXAMPLE].frame(0)
    assert (f.mac, f.rssi, f.noise, f.channel, f.bandwidth_mhz) == ("d0:6e:de:27:6b:63", -77, -97, 6, 20)
    assert int(caps[EXAMPLE].meta["rate"][0]) == 4  # HT row: mcs
    assert int(caps[BAD_LINE].meta["rate"][0]) == 30  # non-HT row: rate
    assert int(caps[BAD_LINE].meta["timestamp_raw"][0]) == 7313


def test_header_and_no_header_are_equivalent(csi_dir: Path) -> None:
    with_header = (csi_dir / "esp32" / EXAMPLE).read_bytes()
    header, body = with_header.split(b"\n", 1)
    _same_frames(parse_bytes(body, "esp32"), parse_bytes(with_header, "esp32"))
    no_header = (csi_dir / "esp32" / NOHEADER).read_bytes()
    _same_frames(parse_bytes(header + b"\n" + no_header, "esp32"), parse_bytes(no_header, "esp32"))


def test_crlf_and_missing_final_newline(csi_dir: Path) -> None:
    data = (csi_dir / "esp32" / EXAMPLE).read_bytes()
    plain = parse_bytes(data, "esp32")
    crlf = parse_bytes(data.replace(b"\n", b"\r\n"), "esp32")
    _same_frames(crlf, plain)
    assert crlf.stats.malformed == 0
    unterminated = parse_bytes(data.rstrip(b"\n"), "esp32")
    _same_frames(unterminated, plain)
    assert unterminated.stats.truncated == 0


def test_chunked_stream_equals_one_shot(csi_dir: Path) -> None:
    data = (csi_dir / "esp32" / BAD_LINE).read_bytes()
    whole = parse_bytes(data, "esp32")
    rng = np.random.default_rng(11)
    reader = StreamReader("esp32")
    got: list[np.ndarray] = []
    stamps: list[float] = []
    pos = 0
    while pos < len(data):
        step = int(rng.integers(1, 3000))
        part = reader.feed(data[pos : pos + step])
        got += part.csi
        stamps += list(part.meta["timestamp"])
        pos += step
    got += reader.finish().csi
    assert len(got) == len(whole) == 833
    for a, b in zip(got, whole.csi, strict=True):
        np.testing.assert_array_equal(a, b)
    assert stamps == list(whole.meta["timestamp"][: len(stamps)])
    assert reader.stats == whole.stats


def _esp_csi_lines(text: str) -> list[str]:
    """ESP32-CSI-Tool rows rewritten as espressif/esp-csi rows: seq instead of role, no real-time fields,
    a first_word column and the array quoted with commas."""
    out = []
    for i, line in enumerate(text.splitlines()[1:]):
        f = line.split(",")
        vals = f[25].strip().strip("[]").split()
        out.append(",".join(["CSI_DATA", str(i), f[2], *f[3:22], f[24], "0", '"[' + ",".join(vals) + ']"']))
    return out


ESP_CSI_HEADER = (
    "type,seq,mac,rssi,rate,sig_mode,mcs,bandwidth,smoothing,not_sounding,aggregation,stbc,fec_coding,sgi,"
    "noise_floor,ampdu_cnt,channel,secondary_channel,local_timestamp,ant,sig_len,rx_state,len,first_word,data"
)


@pytest.mark.parametrize("with_header", [True, False])
def test_esp_csi_variant(csi_dir: Path, with_header: bool) -> None:
    text = (csi_dir / "esp32" / EXAMPLE).read_text()
    lines = _esp_csi_lines(text)
    if with_header:
        lines.insert(0, ESP_CSI_HEADER)
    cap = parse_bytes(("\n".join(lines) + "\n").encode(), "esp32")
    tool = parse_bytes(text.encode(), "esp32")
    assert (len(cap), cap.stats.malformed, cap.stats.skipped) == (60, 0, int(with_header))
    _same_frames(cap, tool, fields=("timestamp_raw", "rssi", "noise", "channel", "bandwidth_mhz", "mac", "rate"))
    assert list(cap.meta["seq"]) == list(range(60))
    # no real_timestamp column: seconds come from the local µs counter
    np.testing.assert_array_equal(cap.meta["timestamp"], cap.meta["timestamp_raw"] * 1e-6)


def _corrupt_variants(row: str) -> dict[str, str]:
    head, arr = row.rsplit(",", 1)
    vals = arr.strip().strip("[]").split()
    f = row.split(",")
    return {
        "odd number of values": head + ",[" + " ".join(vals[:-1]) + " ]",
        "field missing": ",".join(f[:5] + f[6:]),
        "field added": ",".join(f[:5] + ["0"] + f[5:]),
        "non-numeric rssi": ",".join(f[:3] + ["-7x"] + f[4:]),
        "empty rssi": ",".join(f[:3] + [""] + f[4:]),
        "value beyond int8": head + ",[" + " ".join(["300", *vals[1:]]) + " ]",
        "non-numeric value": head + ",[" + " ".join(["1a", *vals[1:]]) + " ]",
        "no closing bracket": head + ",[" + " ".join(vals[:40]),
        "text after array": row + " x",
        "empty array": head + ",[]",
        "bad mac": ",".join(f[:2] + ["D0:6E:DE:27:6B"] + f[3:]),
    }


def test_corrupt_rows_are_counted_and_skipped(csi_dir: Path) -> None:
    lines = (csi_dir / "esp32" / EXAMPLE).read_text().splitlines()
    good = lines[1]
    for why, bad in _corrupt_variants(good).items():
        cap = parse_bytes(f"{lines[0]}\n{good}\n{bad}\n{good}\n".encode(), "esp32")
        s = cap.stats
        assert (len(cap), s.malformed, s.skipped, s.records) == (2, 1, 1, 4), why


def test_truncated_file_counts_a_cut_last_row(csi_dir: Path) -> None:
    data = (csi_dir / "esp32" / EXAMPLE).read_bytes()
    cap = parse_bytes(data[:-200], "esp32")
    s = cap.stats
    assert (len(cap), s.malformed, s.truncated) == (59, 0, 1)
    reader = StreamReader("esp32")
    reader.feed(data[:-200])
    reader.finish()
    assert reader.stats == s


@pytest.mark.parametrize("seed", range(4))
def test_garbage_bytes_do_not_crash(csi_dir: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    garbage = rng.integers(0, 256, size=int(rng.integers(1, 30000)), dtype=np.uint8).tobytes()
    data = (csi_dir / "esp32" / NOHEADER).read_bytes()
    cap = parse_bytes(garbage + b"\n" + data.rstrip(b"\n") + b"\n" + garbage, "esp32")
    s = cap.stats
    assert s.records == s.frames + s.malformed + s.skipped
    assert len(cap) >= 13  # every real row survives the garbage around it
    _same_frames(
        Capture(
            format="esp32",
            csi=cap.csi[:13],
            meta={k: v[:13] for k, v in cap.meta.items()},
            subcarrier_index=cap.subcarrier_index[:13],
            stats=cap.stats,
        ),
        parse_bytes(data, "esp32"),
    )


def test_overlong_line_is_dropped_and_parsing_resumes(csi_dir: Path) -> None:
    data = (csi_dir / "esp32" / NOHEADER).read_bytes()
    blob = b"CSI_DATA," + b"7 " * 150_000  # 300 KB without a newline
    stream = blob + b"\n" + data
    one_shot = parse_bytes(stream, "esp32")
    assert (len(one_shot), one_shot.stats.malformed) == (13, 1)
    reader = StreamReader("esp32")
    frames = 0
    for pos in range(0, len(stream), 4096):
        frames += len(reader.feed(stream[pos : pos + 4096]))
    frames += len(reader.finish())
    assert frames == 13
    assert reader.stats == one_shot.stats


def test_serial_noise_lines_are_skipped(csi_dir: Path) -> None:
    data = (csi_dir / "esp32" / NOHEADER).read_text().splitlines()
    noisy = ["I (1234) wifi: connected", "", data[0], "boot: ESP-IDF v4.4", "xx" + data[1], *data[2:]]
    cap = parse_bytes(("\n".join(noisy) + "\n").encode(), "esp32")
    assert (len(cap), cap.stats.skipped, cap.stats.malformed) == (13, 2, 0)
    _same_frames(cap, parse_bytes("\n".join(data).encode(), "esp32"))


def test_format_is_sniffed_without_the_csv_suffix(csi_dir: Path, tmp_path: Path) -> None:
    for name in ALL:
        copy = tmp_path / (name + ".log")
        copy.write_bytes((csi_dir / "esp32" / name).read_bytes())
        assert detect_format(copy) == "esp32"
    copy = tmp_path / "serial.log"
    copy.write_bytes(b"\xef\xbb\xbfboot message\n" + (csi_dir / "esp32" / NOHEADER).read_bytes())
    assert detect_format(copy) == "esp32"


def test_datagram_parser(csi_dir: Path) -> None:
    text = (csi_dir / "esp32" / EXAMPLE).read_text()
    lines = text.splitlines()
    whole = parse_bytes(text.encode(), "esp32")
    parser = _native.DatagramParser("esp32")
    for i in (0, 1, 59):
        got = parser.parse((lines[i + 1] + "\n").encode())
        assert got is not None
        np.testing.assert_array_equal(got["csi"][0], whole.csi[i])
        assert int(got["timestamp_raw"][0]) == int(whole.meta["timestamp_raw"][i])
    # header + two rows in one datagram: the first row is the frame
    got = parser.parse(f"{lines[0]}\r\n{lines[2]}\r\n{lines[3]}".encode())
    np.testing.assert_array_equal(got["csi"][0], whole.csi[1])
    assert parser.parse(b"I (10) wifi: hello\n") is None
    assert parser.parse(b"") is None
    assert parser.parse(_corrupt_variants(lines[1])["odd number of values"].encode()) is None
    assert parser.parse(bytes(range(256))) is None
    s = parser.stats
    assert (s["records"], s["frames"], s["skipped"], s["malformed"]) == (8, 4, 3, 1)
