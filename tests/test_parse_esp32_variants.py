"""ESP32 CSI line variants users' firmware and loggers produce, built from known int arrays.

ESP32-CSI-Tool (26 fields, space-separated array), espressif/esp-csi on ESP32/S2/S3/C3 (25 fields, quoted
comma-separated array) and on the Wi-Fi 6 chips C5/C6 (15 fields with the gains, 13 without), with and
without their header line, wrapped in a logger's CSV row (columns before, after, quoted), and cut lines.
Pairs are (imag, real): csi[k] = v[2k+1] + 1j * v[2k].
"""

from __future__ import annotations

import numpy as np
import pytest

from wdp.csi import StreamReader, parse_bytes

MAC = "68:fe:71:12:53:8c"
RNG = np.random.default_rng(20240611)

CSI_TOOL_HEADER = (
    "type,role,mac,rssi,rate,sig_mode,mcs,bandwidth,smoothing,not_sounding,aggregation,stbc,fec_coding,sgi,"
    "noise_floor,ampdu_cnt,channel,secondary_channel,local_timestamp,ant,sig_len,rx_state,real_time_set,"
    "real_timestamp,len,CSI_DATA"
)
ESP_CSI_HEADER = (
    "type,id,mac,rssi,rate,sig_mode,mcs,bandwidth,smoothing,not_sounding,aggregation,stbc,fec_coding,sgi,"
    "noise_floor,ampdu_cnt,channel,secondary_channel,local_timestamp,ant,sig_len,rx_state,len,first_word,data"
)
ESP_CSI_HE_HEADER = (
    "type,id,mac,rssi,rate,noise_floor,fft_gain,agc_gain,channel,local_timestamp,sig_len,rx_state,len,first_word,data"
)


def values(pairs: int) -> np.ndarray:
    return RNG.integers(-128, 128, size=2 * pairs).astype(np.int64)


def expected(v: np.ndarray) -> np.ndarray:
    return (v[1::2] + 1j * v[0::2]).astype(np.complex64).reshape(-1, 1, 1)


def csi_tool_row(v: np.ndarray, *, rssi: int = -40, channel: int = 6, ts: int = 6821882, bw: int = 0) -> str:
    arr = "[" + " ".join(str(x) for x in v) + " ]"  # the tool leaves a space before the bracket
    return (
        f"CSI_DATA,AP,{MAC.upper()},{rssi},11,1,7,{bw},1,1,0,0,0,0,-96,0,{channel},1,{ts},0,84,0,0,6.8219,"
        f"{len(v)},{arr}"
    )


def esp_csi_row(
    v: np.ndarray, *, seq: int = 7, rssi: int = -52, channel: int = 11, ts: int = 123456, bw: int = 0
) -> str:
    arr = '"[' + ",".join(str(x) for x in v) + ']"'
    return f"CSI_DATA,{seq},{MAC},{rssi},11,1,7,{bw},1,1,1,0,0,0,-93,0,{channel},1,{ts},0,67,0,{len(v)},0,{arr}"


def esp_csi_he_row(
    v: np.ndarray, *, seq: int = 9, rssi: int = -61, channel: int = 6, ts: int = 98765, gains: bool = True
) -> str:
    arr = '"[' + ",".join(str(x) for x in v) + ']"'
    gain = "12,40," if gains else ""
    return f"CSI_DATA,{seq},{MAC},{rssi},11,-372,{gain}{channel},{ts},68,0,{len(v)},0,{arr}"


def parse(text: str):
    return parse_bytes(text.encode(), "esp32")


def check_one(cap, v: np.ndarray) -> None:
    assert cap.stats.frames == 1 and cap.stats.malformed == 0, cap.stats
    assert cap.csi[0].shape == (len(v) // 2, 1, 1)
    np.testing.assert_array_equal(cap.csi[0], expected(v))


# ------------------------------------------------------------------------- firmware rows, headerless


@pytest.mark.parametrize("pairs", [64, 128, 192])
def test_csi_tool_rows(pairs: int) -> None:
    v = values(pairs)
    cap = parse(csi_tool_row(v, rssi=-33, channel=3, ts=555, bw=int(pairs > 64)) + "\n")
    check_one(cap, v)
    f = cap.frame(0)
    assert (f.rssi, f.channel, f.mac, f.bandwidth_mhz) == (-33, 3, MAC, 40 if pairs > 64 else 20)
    assert f.timestamp == pytest.approx(6.8219)  # real_timestamp
    assert int(cap.meta["timestamp_raw"][0]) == 555


@pytest.mark.parametrize("pairs", [64, 128, 192])  # S2/S3/C3: HT20 LLTF (+HT-LTF), HT40 LLTF+HT-LTF(+STBC)
def test_esp_csi_rows(pairs: int) -> None:
    v = values(pairs)
    cap = parse(esp_csi_row(v, seq=41, rssi=-52, channel=11, ts=123456, bw=int(pairs == 192)) + "\n")
    check_one(cap, v)
    f = cap.frame(0)
    assert (f.seq, f.rssi, f.channel, f.mac) == (41, -52, 11, MAC)
    assert int(cap.meta["timestamp_raw"][0]) == 123456
    assert f.timestamp == pytest.approx(0.123456)  # local_timestamp, µs


@pytest.mark.parametrize("pairs", [53, 64, 106, 128, 242, 256])  # C5/C6: HT/HE LTF arrays of several lengths
@pytest.mark.parametrize("gains", [True, False])
def test_esp_csi_wifi6_rows(pairs: int, gains: bool) -> None:
    v = values(pairs)
    cap = parse(esp_csi_he_row(v, seq=3, rssi=-61, channel=6, ts=98765, gains=gains) + "\n")
    check_one(cap, v)
    f = cap.frame(0)
    assert (f.seq, f.rssi, f.channel, f.mac) == (3, -61, 6, MAC)
    assert int(cap.meta["timestamp_raw"][0]) == 98765


# ------------------------------------------------------------------------------------ with a header


def test_headers_then_rows_and_a_switch_of_firmware() -> None:
    v1, v2, v3 = values(64), values(128), values(242)
    text = "\n".join(
        [
            ESP_CSI_HEADER,
            esp_csi_row(v1, seq=1),
            ESP_CSI_HE_HEADER,
            esp_csi_he_row(v3, seq=2),
            # a row from other firmware than the last header: read by its field count
            csi_tool_row(v2),
            CSI_TOOL_HEADER,
            csi_tool_row(v1),
        ]
    )
    cap = parse(text + "\n")
    assert cap.stats.frames == 4 and cap.stats.malformed == 0 and cap.stats.skipped == 3
    for got, v in zip(cap.csi, [v1, v3, v2, v1], strict=True):
        np.testing.assert_array_equal(got, expected(v))
    assert [int(s) for s in cap.meta["seq"][:2]] == [1, 2]


def test_named_header_with_own_column_set() -> None:
    # firmware that names its columns: a reduced set, the array not last (a host column after it)
    v = values(64)
    header = "type,seq,mac,rssi,channel,local_timestamp,data,host_time"
    row = f"CSI_DATA,5,{MAC},-47,13,4242,[{' '.join(map(str, v))}],1699999999.25"
    cap = parse(f"{header}\n{row}\n")
    check_one(cap, v)
    f = cap.frame(0)
    assert (f.seq, f.rssi, f.channel) == (5, -47, 13)
    assert int(cap.meta["timestamp_raw"][0]) == 4242


# -------------------------------------------------------------------------- rows inside a logger's CSV


@pytest.mark.parametrize("make", [csi_tool_row, esp_csi_row, esp_csi_he_row])
def test_logger_columns_before_and_after(make) -> None:
    v = values(64)
    row = make(v)
    lines = [
        f"123,1699999999.5,{row}",  # host index and epoch before
        f"{row},1699999999.5,extra",  # columns after the array
        f"7,1699999999.5,{row},42",  # both
    ]
    cap = parse("\n".join(lines) + "\n")
    assert cap.stats.frames == 3 and cap.stats.malformed == 0
    for got in cap.csi:
        np.testing.assert_array_equal(got, expected(v))


def test_row_wrapped_in_a_dataset_row() -> None:
    # as in D4 (kosong_22.csv): packet_idx,epoch_s,sub30_amplitude,rssi_dbm,raw_line with an unquoted raw line
    v1, v2 = values(64), values(64)
    text = (
        "packet_idx,epoch_s,sub30_amplitude,rssi_dbm,raw_line\n"
        f"1,1782978305.909738,18.0278,-77,{csi_tool_row(v1, rssi=-77)}\n"
        f"2,1782978305.940902,15.6525,-77,{csi_tool_row(v2, rssi=-78)}\n"
    )
    cap = parse(text)
    assert cap.stats.frames == 2 and cap.stats.malformed == 0 and cap.stats.skipped == 1
    np.testing.assert_array_equal(cap.csi[0], expected(v1))
    np.testing.assert_array_equal(cap.csi[1], expected(v2))
    assert [cap.frame(i).rssi for i in range(2)] == [-77, -78]


def test_row_quoted_by_a_csv_writer() -> None:
    # Python's csv module quotes a field with commas and doubles the inner quotes of esp-csi's array
    import csv
    import io

    v1, v2 = values(128), values(106)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["idx", "epoch", "type", "role", "mac", "raw"])  # not a firmware header (no [ but no CSI row)
    w.writerow([1, 1699999999.5, csi_tool_row(v1)])
    w.writerow([2, 1699999999.6, esp_csi_he_row(v2), "tail"])
    cap = parse(buf.getvalue())
    assert cap.stats.frames == 2 and cap.stats.malformed == 0, cap.stats
    np.testing.assert_array_equal(cap.csi[0], expected(v1))
    np.testing.assert_array_equal(cap.csi[1], expected(v2))


def test_header_after_logger_columns() -> None:
    v = values(64)
    header = "host_idx,host_epoch,type,seq,mac,rssi,channel,local_timestamp,data"
    row = f"9,1699999999.5,CSI_DATA,77,{MAC},-44,1,31337,[{' '.join(map(str, v))}]"
    cap = parse(f"{header}\n{row}\n")
    check_one(cap, v)
    assert (cap.frame(0).seq, cap.frame(0).rssi, cap.frame(0).channel) == (77, -44, 1)


# ----------------------------------------------------------------------------- cut and corrupt lines


def test_stream_joined_mid_line() -> None:
    v1, v2, v3 = values(64), values(64), values(64)
    full = [csi_tool_row(v) for v in (v1, v2, v3)]
    text = "\n".join([full[0][40:], full[1], full[2]]) + "\n"  # the first line lost its start
    cap = parse(text)
    assert cap.stats.frames == 2 and cap.stats.malformed == 0 and cap.stats.skipped == 1
    np.testing.assert_array_equal(cap.csi[0], expected(v2))
    cut = esp_csi_row(v1)[:-40]  # a cut row that runs into the next one (reset, lost bytes)
    cap = parse(cut + esp_csi_row(v2) + "\n" + cut + "\n")
    assert cap.stats.frames == 1 and cap.stats.malformed == 1
    np.testing.assert_array_equal(cap.csi[0], expected(v2))


def test_boot_messages_and_corrupt_rows_are_skipped() -> None:
    v = values(64)
    good = csi_tool_row(v)
    text = "\n".join(
        [
            good,
            "ets Jul 29 2019 12:21:46",
            "rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)",
            "I (123) wifi:mode : sta (24:0a:c4:00:00:01)",
            "\x00\xff\xfe\x81garbage",
            good.replace("[", "[300 "),  # value out of int8 range
            good.replace(" ]", " 5 ]"),  # odd count
            good[:-20],  # truncated
            good,
        ]
    )
    cap = parse_bytes(text.encode("latin-1") + b"\n", "esp32")
    assert cap.stats.frames == 2
    assert cap.stats.malformed == 3
    assert cap.stats.skipped == 4
    for got in cap.csi:
        np.testing.assert_array_equal(got, expected(v))


def test_streaming_in_small_chunks_matches_one_parse() -> None:
    rows = [csi_tool_row(values(64)), esp_csi_row(values(128)), esp_csi_he_row(values(242)), "junk"]
    text = ("\r\n".join(rows * 5) + "\r\n").encode()
    whole = parse_bytes(text, "esp32")
    reader = StreamReader("esp32")
    got = []
    for i in range(0, len(text), 7):
        got += reader.feed(text[i : i + 7]).csi
    got += reader.finish().csi
    assert len(got) == len(whole) == 15
    for a, b in zip(got, whole.csi, strict=True):
        np.testing.assert_array_equal(a, b)
    assert reader.stats.malformed == 0 and reader.stats.skipped == 5
