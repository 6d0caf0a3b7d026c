"""``transaction(con)``: BEGIN ... COMMIT on one DuckDB connection, ROLLBACK on any exception."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN ... COMMIT, or ROLLBACK on any exception. DuckDB has no nested transactions: don't nest."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    try:
        con.execute("COMMIT")
    except BaseException:
        # A failed COMMIT (e.g. a write-write conflict) may leave the transaction open; end it.
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass
        raise
