"""PostgreSQL binary COPY of numpy columns, assembled with numpy instead of one Python call per row.

Why: ``PgConnection.register`` fills a TEMP table per batch; with psycopg's ``write_row`` a pose row (62
columns: 51 keypoint values, box, position...) cost ~40 us of the hub's CPU, most of a stored frame. Here
every column is written for all rows at once: its 4-byte big-endian lengths and values are scattered into one
buffer at per-row offsets (a NULL is length -1 and no bytes), so a batch costs a few numpy operations per
column.

Format (PostgreSQL "COPY ... (FORMAT BINARY)"): the 11-byte signature, a 4-byte flags field and a 4-byte
header extension length (both 0); per row a 2-byte field count, then per field a 4-byte length and the value
in network byte order; a 2-byte -1 trailer. Column types are those ``postgres._pg_type`` declares: REAL and
DOUBLE PRECISION (NaN -> NULL, as DuckDB's numpy scan reads it), SMALLINT/INTEGER/BIGINT, BOOLEAN, TEXT (str
or None) and BYTEA (bytes). ``binary_copy`` returns None for anything else (the caller then COPYs row by row).
"""

from __future__ import annotations

import numpy as np

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_HEADER = SIGNATURE + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
# (dtype kind, itemsize) -> the big-endian numpy type of the declared PostgreSQL type (postgres._pg_type)
_FIXED = {
    ("f", 4): ">f4",
    ("f", 8): ">f8",
    ("i", 1): ">i2",
    ("i", 2): ">i2",
    ("i", 4): ">i4",
    ("i", 8): ">i8",
    ("b", 1): "u1",
}


def _var_values(a: np.ndarray) -> list[bytes | None] | None:
    """Text (str -> UTF-8) or bytea (bytes) values of an object/str/bytes column; None if another type is in."""
    out: list[bytes | None] = []
    for v in a.tolist():
        if v is None:
            out.append(None)
        elif isinstance(v, str):
            out.append(v.encode())
        elif isinstance(v, bytes) and a.dtype.kind == "S":
            out.append(v)
        else:
            return None
    return out


def binary_copy(columns: list[np.ndarray]) -> bytes | None:
    """The COPY BINARY stream of equal-length 1-D ``columns``, or None when a column's type is not handled."""
    n = len(columns[0]) if columns else 0
    fields: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (lengths, value bytes, bytes per row)
    for a in columns:
        kind = a.dtype.kind
        if (kind, a.dtype.itemsize) in _FIXED:
            width = np.dtype(_FIXED[(kind, a.dtype.itemsize)]).itemsize
            values = np.ascontiguousarray(a.astype(_FIXED[(kind, a.dtype.itemsize)])).view(np.uint8).reshape(n, width)
            sizes = np.full(n, width, dtype=np.int64)
            if kind == "f":
                null = np.isnan(a)
                if null.any():
                    sizes[null] = 0
                    values = values[~null]
            lengths = np.where(sizes > 0, sizes, -1) if kind == "f" else sizes
            fields.append((lengths, values.reshape(-1), sizes))
        elif kind in "OUS":
            var = _var_values(a)
            if var is None:
                return None
            sizes = np.array([0 if v is None else len(v) for v in var], dtype=np.int64)
            lengths = np.array([-1 if v is None else len(v) for v in var], dtype=np.int64)
            blob = b"".join(v for v in var if v)
            fields.append((lengths, np.frombuffer(blob, dtype=np.uint8), sizes))
        else:
            return None
    row_sizes = 2 + sum(4 + sizes for _, _, sizes in fields) if fields else np.full(n, 2, dtype=np.int64)
    row_start = len(_HEADER) + np.cumsum(row_sizes) - row_sizes
    total = len(_HEADER) + int(np.sum(row_sizes)) + 2
    buf = np.zeros(total, dtype=np.uint8)
    buf[: len(_HEADER)] = np.frombuffer(_HEADER, dtype=np.uint8)
    buf[-2:] = 0xFF
    count = np.frombuffer(np.array(len(columns), dtype=">i2").tobytes(), dtype=np.uint8)
    buf[row_start[:, None] + np.arange(2)] = count
    pos = row_start + 2
    four = np.arange(4)
    for lengths, values, sizes in fields:
        buf[pos[:, None] + four] = lengths.astype(">i4").view(np.uint8).reshape(n, 4)
        pos = pos + 4
        has = sizes > 0
        if values.size:
            # destination of every value byte: its row's field offset plus its index inside the field
            starts = pos[has]
            widths = sizes[has]
            within = np.arange(values.size) - np.repeat(np.cumsum(widths) - widths, widths)
            buf[np.repeat(starts, widths) + within] = values
        pos = pos + sizes
    return buf.tobytes()
