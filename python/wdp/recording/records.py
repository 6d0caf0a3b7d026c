"""Append-only record files: a short magic line, then records ``u32 length | u32 crc32 | payload``.

A writer only ever appends; every record is complete and checked on reading. A process killed mid-write
(kill -9, power cut after the page cache) leaves at most one torn record at the end: the reader returns the
records before it and says how many bytes it ignored, so a crash costs the tail, never the whole file.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_HEAD = struct.Struct("<II")
MAX_RECORD = 64 << 20  # a length beyond this is a torn / foreign header, not a record


class RecordFileError(ValueError):
    """The file is not a record file of the expected kind."""


class RecordWriter:
    """Appends records to ``path`` (created with ``magic``; an existing file of the same magic is appended to)."""

    def __init__(self, path: str | Path, magic: bytes, fsync_every_s: float | None = 5.0) -> None:
        self.path = Path(path)
        self.magic = magic
        new = not self.path.exists() or self.path.stat().st_size == 0
        if not new:
            with self.path.open("rb") as fh:
                if fh.read(len(magic)) != magic:
                    raise RecordFileError(f"{self.path} is not a {magic!r} record file")
        self._fh: io.BufferedWriter = self.path.open("ab")  # type: ignore[assignment]
        if new:
            self._fh.write(magic)
        self.bytes_written = self._fh.tell()
        self.records = 0
        self._fsync_every = fsync_every_s

    def append(self, payload: bytes) -> None:
        if len(payload) > MAX_RECORD:
            raise ValueError(f"record of {len(payload)} bytes exceeds {MAX_RECORD}")
        self._fh.write(_HEAD.pack(len(payload), zlib.crc32(payload)))
        self._fh.write(payload)
        self.bytes_written += _HEAD.size + len(payload)
        self.records += 1

    def flush(self, fsync: bool = False) -> None:
        """Hand buffered records to the kernel (they then survive the process); fsync: also to the disk."""
        self._fh.flush()
        if fsync:
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self.flush(fsync=True)
            self._fh.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class ReadStats:
    records: int = 0
    bytes_read: int = 0
    torn_tail_bytes: int = 0  # bytes after the last complete record (a write cut short)


def iter_records(path: str | Path, magic: bytes, stats: ReadStats | None = None) -> Iterator[bytes]:
    """The complete records of ``path`` in order; stops at the first torn or corrupt one (counted in stats)."""
    st = stats if stats is not None else ReadStats()
    with Path(path).open("rb") as fh:
        head = fh.read(len(magic))
        if head != magic:
            if len(head) < len(magic) and magic.startswith(head):  # killed before the magic was out
                st.torn_tail_bytes = len(head)
                return
            raise RecordFileError(f"{path} is not a {magic!r} record file")
        st.bytes_read = len(magic)
        while True:
            h = fh.read(_HEAD.size)
            if len(h) < _HEAD.size:
                st.torn_tail_bytes += len(h)
                return
            n, crc = _HEAD.unpack(h)
            payload = fh.read(n) if n <= MAX_RECORD else b""
            if n > MAX_RECORD or len(payload) < n or zlib.crc32(payload) != crc:
                st.torn_tail_bytes += _HEAD.size + len(payload) + len(fh.read())
                return
            st.records += 1
            st.bytes_read += _HEAD.size + n
            yield payload
