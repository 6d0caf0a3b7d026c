"""An ESP32 streaming CSI rows over USB serial (ESP32-CSI-Tool, espressif/esp-csi), read with pyserial.

A reader thread owns the port. Bytes go through a line assembler that hands only complete lines to the
native esp32 parser (a read may end mid-line; the first line after an (re)open usually starts mid-line and
is dropped unless it is a whole row). Packets are stamped with the host clock when their bytes arrive: the
ESP32's own clock is not synchronised with anything.

Unplugging the board (or a USB hub reset) makes reads fail; the thread then closes the port, counts a
disconnect and reopens it with backoff until the device is back, without ending the source. A board reset
with the port open only prints boot text, which the parser skips.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from wdp.csi.capture_file import StreamReader, parse_bytes
from wdp.csi.sources import RouterInfo
from wdp.csi.threaded_source import ThreadedLiveSource

__all__ = ["SerialSource", "SerialStats"]

# Longest line kept while waiting for its newline (an esp-csi HT40 row is ~2.5 kB); longer: noise.
_MAX_LINE = 1 << 16


@dataclass(frozen=True)
class SerialStats:
    """Counters of a SerialSource since it was created."""

    bytes: int = 0  # read from the port
    lines: int = 0  # complete lines given to the parser
    frames: int = 0  # CSI rows decoded (and queued)
    malformed: int = 0  # CSI rows that did not decode (cut, corrupt, overlong)
    skipped: int = 0  # other text: headers, boot and log messages
    partial_dropped: int = 0  # lines cut by an (re)open or a disconnect
    opens: int = 0  # successful opens of the port
    reconnects: int = 0  # opens after a disconnect
    disconnects: int = 0  # the open port failed (device unplugged, hub reset)
    lost: int = 0  # frames dropped because the reader fell behind (queue full)
    connected: bool = False


class SerialSource(ThreadedLiveSource):
    """One ESP32 on a serial port (``port``: device path such as /dev/ttyUSB0 or a /dev/serial/by-id link).

    ``baud``: the firmware's UART rate (ESP32-CSI-Tool and esp-csi builds use 115200 or 921600; USB-CDC
    boards ignore it). ``format``: "esp32", the only line format (both firmware families and their header
    lines). Timestamps: host epoch seconds at arrival, strictly increasing.
    """

    thread_label = "serial"
    counters = tuple("bytes lines frames malformed skipped partial_dropped opens reconnects disconnects".split())
    formats = ("esp32",)

    def __init__(
        self,
        *,
        port: str,
        baud: int = 921600,
        format: str = "esp32",
        router_id: str | None = None,
        expected_rate_hz: float | None = 100.0,
        capacity: int = 8192,
        read_chunk: int = 65536,
        backoff_s: tuple[float, float] = (0.2, 2.0),
        name: str | None = None,
    ) -> None:
        if format not in self.formats:
            raise ValueError(f"serial format must be one of {self.formats}, not {format!r}")
        if int(baud) <= 0:
            raise ValueError("baud must be > 0")
        self.port = str(port)
        super().__init__(router_id or f"serial-{Path(self.port).name}", capacity)
        self.baud = int(baud)
        self.format = format
        self.name = name or self.port
        self.expected_rate_hz = expected_rate_hz
        self.read_chunk = int(read_chunk)
        self.backoff_s = (float(backoff_s[0]), float(backoff_s[1]))
        self._serial: Any = None
        self._connected = False
        self._last_error = ""
        # line assembly state (reader thread only)
        self._reader = StreamReader(format)
        self._pending = b""
        self._first_line = True  # the next complete line may be cut (just (re)opened)
        self._discarding = False  # inside an overlong line: drop up to its newline

    # ------------------------------------------------------------------------------ CsiSource

    def open(self, origin: float) -> None:
        import serial  # pyserial; here rather than in the thread, so a missing install fails loudly

        self._serial = serial
        super().open(origin)

    def routers(self) -> list[RouterInfo]:
        return [RouterInfo(self.router_id, self.name, self.format, self.port, 0, self.expected_rate_hz)]

    # ---------------------------------------------------------------------------- status

    def stats(self) -> SerialStats:
        with self._lock:
            return SerialStats(**self._counts, lost=self._queue.lost, connected=self._connected)

    def status_details(self) -> dict[str, Any]:
        """Port, settings and counters, for system status pages."""
        return {
            "port": self.port,
            "baud": self.baud,
            "format": self.format,
            "last_error": self._last_error,
            **asdict(self.stats()),
        }

    # ------------------------------------------------------------------------ reader thread

    def _run(self) -> None:
        serial = self._serial
        delay = self.backoff_s[0]
        ever_opened = False
        while not self._stop.is_set():
            ser = serial.Serial()
            ser.port = self.port
            ser.baudrate = self.baud
            ser.timeout = 0.05
            # Keep DTR/RTS released: on ESP32 dev boards they drive EN/IO0 (auto-reset), and asserting
            # them on open would reset the board or hold it in the bootloader.
            ser.dtr = False
            ser.rts = False
            try:
                ser.open()
            except (serial.SerialException, OSError, ValueError) as e:
                self._last_error = f"open: {e}"
                self._stop.wait(delay)
                delay = min(delay * 2, self.backoff_s[1])
                continue
            delay = self.backoff_s[0]
            self._pending, self._first_line, self._discarding = b"", True, False
            with self._lock:
                self._connected = True
                self._counts["opens"] += 1
                self._counts["reconnects"] += int(ever_opened)
            ever_opened = True
            try:
                while not self._stop.is_set():
                    waiting = ser.in_waiting
                    data = ser.read(min(max(1, waiting), self.read_chunk))
                    if data:
                        self._on_bytes(data, time.time(), time.perf_counter())
            except (serial.SerialException, OSError, TypeError) as e:
                # TypeError: pyserial reading a port closed under it (fd None) on some versions
                self._last_error = f"read: {e}"
                with self._lock:
                    self._counts["disconnects"] += 1
                    self._counts["partial_dropped"] += int(bool(self._pending.strip()))
            finally:
                self._pending = b""
                with self._lock:
                    self._connected = False
                try:
                    ser.close()
                except (serial.SerialException, OSError):
                    pass
            if not self._stop.is_set():
                self._stop.wait(delay)

    def _on_bytes(self, data: bytes, now: float, perf: float) -> None:
        self._count(bytes=len(data))
        buf = self._pending + data
        end = buf.rfind(b"\n")
        if end < 0:
            self._pending = buf
            if len(buf) > _MAX_LINE:  # noise without newlines: drop it and the rest of its line
                self._pending, self._discarding = b"", True
                self._count(malformed=1)
            return
        complete, self._pending = buf[: end + 1], buf[end + 1 :]
        if self._discarding:
            complete = complete[complete.find(b"\n") + 1 :]
            self._discarding = False
        if self._first_line:
            nl = complete.find(b"\n")
            first, complete = complete[: nl + 1], complete[nl + 1 :]
            if first.strip():
                self._first_line = False
                if parse_bytes(first, self.format).stats.frames == 1:
                    complete = first + complete  # it was whole after all
                else:
                    self._count(partial_dropped=1)
        if not complete:
            return
        before = self._reader.stats
        cap = self._reader.feed(complete)
        after = self._reader.stats
        frames = [c for c in cap.csi if c.size]
        self._queue.put([now] * len(frames), perf, frames)
        self._count(
            lines=complete.count(b"\n"),
            frames=len(frames),
            malformed=after.malformed - before.malformed,
            skipped=after.skipped - before.skipped,
        )
