"""Live sources real users have: an ESP32 on a serial port (through a real pseudo-terminal) and a capture
file that is still being written (real recordings appended in odd-sized chunks).

Recordings come from ../shared/data/real/fixtures (no licence: read in place, never copied into the repo).
Nothing here asserts on timing: waits are for counts, with generous deadlines.
"""

from __future__ import annotations

import os
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from wdp.csi import FollowSource, SerialSource, read_capture
from wdp.engine.config import compose_serve_config

AN1 = "fixtures/D5/datasets/AN1_Normal_Take05_BPM17_20260418_102525.csv"  # ESP32-CSI-Tool, header + 615 rows
PCAP = "fixtures/D2/nm_user1_rm1/nm_user1_rm1_1.pcap"  # nexmon_csi tcpdump, 500 records
DAT = "fixtures/D1/Original Data/0510/jump/qiang_jump1.dat"  # Intel 5300 log_to_file, 344 records
DEADLINE_S = 20.0


def _real_dir() -> Path:
    for parent in Path(__file__).resolve().parents:
        cand = parent / "shared" / "data" / "real"
        if cand.is_dir():
            return cand
    pytest.fail("../shared/data/real not found")


@pytest.fixture(scope="module")
def real() -> Path:
    return _real_dir()


def wait_for(pred: Callable[[], bool], what: str, timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


class Collector:
    """Drains a source on a thread (as the engine would) and keeps what it read."""

    def __init__(self, src) -> None:
        self.src = src
        self.csi: list[np.ndarray] = []
        self.t: list[float] = []
        self.arrival: list[float] = []
        self.router_ids: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for b in self.src.read(0.05):
                self.router_ids.add(b.router_id)
                self.csi += list(b.csi)
                self.t += list(b.timestamps)
                self.arrival += list(b.arrival)

    def wait(self, n: int, timeout: float = DEADLINE_S) -> None:
        wait_for(lambda: len(self.csi) >= n, f"{n} frames (have {len(self.csi)})", timeout)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def assert_same_frames(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert a.shape == b.shape
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------------------ serial


class Pty:
    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo, no line discipline: bytes as a USB-serial adapter delivers them
        self.path = os.ttyname(self.slave)
        self.written = 0

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.master, view)
            view = view[n:]
        self.written += len(data)

    def close(self) -> None:
        os.close(self.master)
        os.close(self.slave)


def point(link: Path, target: str) -> None:
    tmp = link.with_suffix(".new")
    os.symlink(target, tmp)
    os.replace(tmp, link)  # atomic repoint, as udev does for /dev/serial/by-id


BOOT = (
    b"ets Jul 29 2019 12:21:46\r\n\r\n"
    b"rst:0x1 (POWERON_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)\r\n"
    b"configsip: 0, SPIWP:0xee\r\n"
    b"mode:DIO, clock div:1\r\n"
    b"load:0x3fff0030,len:6612\r\n"
    b"entry 0x400806a8\r\n"
    b"I (29) boot: ESP-IDF v4.4 2nd stage bootloader\r\n"
)
BOOT_TEXT_LINES = 6  # non-blank lines after the first (which joins the cut row)


def test_serial_source_over_a_pty(real: Path, tmp_path: Path) -> None:
    path = real / AN1
    want = read_capture(path)
    lines = path.read_bytes().splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    assert len(rows) == len(want) == 615
    rec_t = [float(r.split(b",")[23]) for r in rows]  # real_timestamp: the recorded pacing
    speed = 20.0

    link = tmp_path / "ttyESP"
    pty1, pty2 = Pty(), Pty()
    point(link, pty1.path)
    src = SerialSource(port=str(link), baud=115200, router_id="esp")
    assert src.routers()[0].id == "esp" and src.routers()[0].expected_rate_hz == 100.0
    t_open = time.time()
    src.open(t_open)
    got = Collector(src)
    counts = {"skipped": 0, "malformed": 0}
    try:
        wait_for(lambda: src.stats().opens == 1, "the port to open")
        t0, r0 = time.perf_counter(), rec_t[0]

        def paced(pty: Pty, i: int) -> None:
            due = t0 + (rec_t[i] - r0) / speed
            if (wait := due - time.perf_counter()) > 0:
                time.sleep(wait)
            pty.write(rows[i])

        pty1.write(b"52 -3 1 ]\r\n")  # opened mid-line: the first line is cut
        pty1.write(header)
        counts["skipped"] += 1
        for i in range(300):
            if i == 10:  # one row in two writes
                pty1.write(rows[i][:333])
                time.sleep(0.01)
                pty1.write(rows[i][333:])
                continue
            if i == 50:  # line noise, then a corrupt row
                pty1.write(b"\x00\xff\xfe\x81\x00noise\r\n")
                pty1.write(rows[i].replace(b"[", b"[300 "))
                counts["skipped"] += 1
                counts["malformed"] += 1
            if i == 120:  # the board resets mid-row and prints its boot messages
                pty1.write(rows[i][:400])
                pty1.write(BOOT)
                counts["malformed"] += 1
                counts["skipped"] += BOOT_TEXT_LINES
            paced(pty1, i)
        got.wait(300)

        # unplug mid-row, replug as a new device under the same link
        pty1.write(rows[300][:250])
        wait_for(lambda: src.stats().bytes == pty1.written, "the cut row to be read")
        point(link, pty2.path)
        os.close(pty1.master)
        wait_for(lambda: src.stats().opens == 2, "the port to reopen")
        assert src.stats().disconnects == 1
        pty2.write(rows[299][-300:])  # the new device is again read from mid-line
        t0, r0 = time.perf_counter(), rec_t[300]
        for i in range(300, len(rows)):
            paced(pty2, i)
        got.wait(len(rows))
    finally:
        got.stop()
        src.close()
        src.close()  # idempotent
        os.close(pty1.slave)
        pty2.close()
    t_end = time.time()

    assert_same_frames(got.csi, want.csi)
    assert {c.shape for c in got.csi} == {(64, 1, 1)}
    assert got.router_ids == {"esp"}
    t = np.array(got.t)
    assert (np.diff(t) > 0).all() and t_open <= t[0] and t[-1] <= t_end  # host clock at arrival
    s = src.stats()
    assert s.frames == 615 and s.lost == 0
    assert s.malformed == counts["malformed"]
    assert s.skipped == counts["skipped"]
    assert s.partial_dropped == 3  # first line of each open, and the row cut by the unplug
    assert (s.opens, s.reconnects, s.disconnects) == (2, 1, 1)
    assert s.bytes == pty1.written + pty2.written
    assert not s.connected and src.exhausted
    d = src.status_details()
    assert d["port"] == str(link) and d["reconnects"] == 1 and d["frames"] == 615


def test_serial_waits_for_a_missing_device_and_rejects_other_formats(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="format"):
        SerialSource(port="/dev/null", format="intel5300")
    link = tmp_path / "ttyUSB9"
    src = SerialSource(port=str(link), backoff_s=(0.01, 0.05))
    src.open(0.0)
    try:
        assert src.read(0.05) == []
        wait_for(lambda: "open" in src.status_details()["last_error"], "a failed open")
        pty = Pty()
        point(link, pty.path)
        wait_for(lambda: src.stats().opens == 1, "the device to appear")
        assert src.stats().reconnects == 0  # appearing is not a reconnect
    finally:
        src.close()
        pty.close()


def test_serial_frames_keep_coming_when_the_shape_changes(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    v64, v192 = rng.integers(-128, 128, 128), rng.integers(-128, 128, 384)
    row64 = "CSI_DATA,AP,68:FE:71:12:53:8C,-32,11,1,7,0,1,1,0,0,0,0,-96,0,6,1,6821882,0,84,0,0,6.8219,128,[{} ]\n"
    row192 = 'CSI_DATA,3,68:fe:71:12:53:8c,-52,11,1,7,1,1,1,1,0,0,0,-93,0,6,1,123456,0,67,0,384,0,"[{}]"\n'
    pty = Pty()
    src = SerialSource(port=pty.path)
    src.open(0.0)
    got = Collector(src)
    try:
        wait_for(lambda: src.stats().opens == 1, "the port to open")
        pty.write(b"\n")  # so that the first row is not taken for a cut line
        for row in (row64.format(" ".join(map(str, v64))), row192.format(",".join(map(str, v192)))) * 2:
            pty.write(row.encode())
        got.wait(4)
    finally:
        got.stop()
        src.close()
        pty.close()
    assert [c.shape for c in got.csi] == [(64, 1, 1), (192, 1, 1)] * 2
    np.testing.assert_array_equal(got.csi[1][:, 0, 0], v192[1::2] + 1j * v192[0::2])
    assert src.stats().partial_dropped == 0


# ------------------------------------------------------------------------------------------ follow


def append_in_chunks(dst: Path, data: bytes, *, seed: int, cut_at: int | None = None) -> None:
    """Append ``data`` in odd-sized chunks (1..4999 bytes), flushing each; ``cut_at``: also end a chunk there
    and pause, so the reader surely sees that cut."""
    rng = np.random.default_rng(seed)
    pos = 0
    with dst.open("ab") as fh:
        while pos < len(data):
            n = int(rng.integers(1, 5000))
            if cut_at is not None and pos < cut_at < pos + n:
                n = cut_at - pos
            fh.write(data[pos : pos + n])
            fh.flush()
            pos += n
            if pos == cut_at:
                time.sleep(0.1)
            elif rng.random() < 0.2:
                time.sleep(0.002)


@pytest.mark.parametrize(
    ("rel", "name", "cut_record"),
    [(PCAP, "live.pcap", 137), (DAT, "live.dat", 201), (AN1, "live.csv", 77)],
    ids=["nexmon_pcap", "intel5300", "esp32"],
)
def test_follow_a_growing_capture(real: Path, tmp_path: Path, rel: str, name: str, cut_record: int) -> None:
    path = real / rel
    want = read_capture(path)
    data = path.read_bytes()
    # a cut inside a record: a little past where record `cut_record` starts (its offset from the parser)
    starts = _record_offsets(path, want.format)
    cut = starts[cut_record] + 7
    dst = tmp_path / name
    src = FollowSource(path=dst, from_start=False, poll_s=0.01, router_id="f")
    src.open(time.time())  # the file does not exist yet: waited for, then read from its start
    got = Collector(src)
    try:
        wait_for(lambda: "open" in src.status_details()["last_error"], "the source to wait for the file")
        append_in_chunks(dst, data, seed=len(name), cut_at=cut)
        got.wait(len(want))
        time.sleep(0.05)  # nothing more may come (a duplicate would show up here)
    finally:
        got.stop()
        src.close()
        src.close()
    assert src.format == want.format
    assert_same_frames(got.csi, want.csi)
    assert got.router_ids == {"f"}
    assert (np.diff(got.t) > 0).all()
    s = src.stats()
    assert (s.frames, s.malformed, s.opens, s.truncations, s.rotations) == (len(want), 0, 1, 0, 0)
    assert s.bytes == len(data)


def _record_offsets(path: Path, fmt: str) -> list[int]:
    data = path.read_bytes()
    if fmt == "nexmon_pcap":  # 24-byte global header, then 16-byte record headers with incl_len at +8
        off, out = 24, []
        while off < len(data):
            out.append(off)
            off += 16 + int.from_bytes(data[off + 8 : off + 12], "little")
        return out
    if fmt == "esp32":  # the rows' line starts
        out, off = [], 0
        for line in data.splitlines(keepends=True):
            if line.startswith(b"CSI_DATA,"):
                out.append(off)
            off += len(line)
        return out
    off, out = 0, []  # intel5300: u16 big-endian length, then that many bytes (code 0xbb first)
    while off + 2 <= len(data):
        out.append(off)
        off += 2 + int.from_bytes(data[off : off + 2], "big")
    return out


def test_follow_starts_at_the_end_like_tail(real: Path, tmp_path: Path) -> None:
    path = real / PCAP
    want = read_capture(path)
    data = path.read_bytes()
    starts = _record_offsets(path, "nexmon_pcap")
    dst = tmp_path / "cap.pcap"
    dst.write_bytes(data[: starts[200] + 30])  # 200 whole records and a cut one are there already
    src = FollowSource(path=dst, poll_s=0.01)
    src.open(time.time())
    got = Collector(src)
    try:
        wait_for(lambda: src.stats().following, "the file to be opened")
        append_in_chunks(dst, data[starts[200] + 30 :], seed=3)
        got.wait(len(want) - 200)
        time.sleep(0.05)
    finally:
        got.stop()
        src.close()
    assert_same_frames(got.csi, want.csi[200:])  # the cut record is delivered once completed
    assert src.stats().frames == 300


def test_follow_from_start_maps_the_capture_clock(real: Path, tmp_path: Path) -> None:
    path = real / PCAP
    want = read_capture(path)
    dst = tmp_path / "done.pcap"
    dst.write_bytes(path.read_bytes())
    src = FollowSource(path=dst, from_start=True, poll_s=0.01)
    before = time.time()
    src.open(before)
    got = Collector(src)
    try:
        got.wait(len(want))
    finally:
        got.stop()
        src.close()
    assert_same_frames(got.csi, want.csi)
    # one backlog read: spacing from the capture clock, the newest packet at its arrival
    cap_t = np.asarray(want.meta["timestamp"], np.float64)
    np.testing.assert_allclose(np.diff(got.t), np.diff(cap_t), atol=1e-5)
    assert before <= got.t[-1] <= time.time()
    assert src.stats().reanchors == 1


def test_follow_truncation_and_rotation(real: Path, tmp_path: Path) -> None:
    path = real / DAT
    want = read_capture(path)
    data = path.read_bytes()
    starts = _record_offsets(path, "intel5300")
    dst = tmp_path / "csi.dat"
    dst.write_bytes(b"")
    src = FollowSource(path=dst, format="intel5300", from_start=True, poll_s=0.01)
    src.open(time.time())
    got = Collector(src)
    try:
        wait_for(lambda: src.stats().following, "the file to be opened")
        append_in_chunks(dst, data, seed=5)
        got.wait(len(want))
        # `> csi.dat` and a new log: read again from the start
        dst.write_bytes(b"")
        wait_for(lambda: src.stats().truncations == 1, "the truncation to be seen")
        append_in_chunks(dst, data[: starts[100]], seed=6)
        got.wait(len(want) + 100)
        # logrotate: the file is renamed and a new one created under the name
        dst.rename(tmp_path / "csi.dat.1")
        append_in_chunks(dst, data[: starts[50]], seed=7)
        got.wait(len(want) + 150)
        time.sleep(0.05)
    finally:
        got.stop()
        src.close()
    assert_same_frames(got.csi, want.csi + want.csi[:100] + want.csi[:50])
    s = src.stats()
    assert (s.truncations, s.rotations, s.opens, s.malformed) == (1, 1, 3, 0)
    assert (np.diff(got.t) > 0).all()


# ------------------------------------------------------------------------------------------ config


def test_serve_config_builds_both_sources(tmp_path: Path) -> None:
    from hydra.utils import instantiate

    cfg = compose_serve_config(["source=serial", "source.port=/dev/ttyUSB0", "source.baud=115200"])
    src = instantiate(cfg.source, _convert_="all")
    assert isinstance(src, SerialSource)
    assert (src.port, src.baud, src.format, src.router_id) == ("/dev/ttyUSB0", 115200, "esp32", "serial-ttyUSB0")
    src.close()
    cfg = compose_serve_config(["source=follow", f"source.path={tmp_path / 'x.pcap'}", "source.from_start=true"])
    src = instantiate(cfg.source, _convert_="all")
    assert isinstance(src, FollowSource)
    assert src.from_start and src.format is None and src.router_id == "follow-x.pcap"
    src.close()
