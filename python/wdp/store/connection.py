"""The Store: owns one DuckDB database, hands each thread its own cursor, runs migrations on open.

DuckDB connections are not safe to share between threads; ``con.cursor()`` makes a new connection to the
same database that is. ``Store.cursor()`` caches one per thread (per Store, not a module global) and
``Store.close()`` closes them all. Every function in ``wdp.store`` takes such a connection as its first
argument, so tests and callers decide which thread uses which connection.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb

from wdp.store.transaction import transaction
from wdp.store.writer import PoseWriter

__all__ = ["Store", "transaction"]


class Store:
    """A DuckDB history database. Use as a context manager or call open()/close() explicitly.

    ``path`` is a file (":memory:" for tests). ``config`` is passed to ``duckdb.connect`` (e.g.
    ``{"threads": 2, "checkpoint_threshold": "64MB"}``). ``migrate=False`` opens without upgrading (fails if
    the schema is newer than this code either way).
    """

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        read_only: bool = False,
        migrate: bool = True,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.path = str(path)
        self.read_only = read_only
        self._migrate = migrate and not read_only
        self._config = dict(config or {})
        self._con: duckdb.DuckDBPyConnection | None = None
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._writers: list[PoseWriter] = []
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------------ lifecycle
    def open(self) -> Store:
        from wdp.store import schema

        if self._con is not None:
            raise RuntimeError("store already open")
        con = duckdb.connect(self.path, read_only=self.read_only, config=self._config)
        try:
            if self._migrate:
                schema.migrate(con)
            else:
                schema.check_version(con)
        except BaseException:
            con.close()
            raise
        self._con = con
        return self

    def close(self) -> None:
        """Flush and close writers, close every cursor, then the database (which checkpoints the WAL)."""
        if self._con is None:
            return
        with self._lock:
            writers, self._writers = self._writers, []
            cursors, self._cursors = self._cursors, []
        for writer in writers:
            writer.close()
        for cur in cursors:
            cur.close()
        self._con.close()
        self._con = None
        self._local = threading.local()

    def __enter__(self) -> Store:
        return self.open() if self._con is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        return self._con is not None

    # ------------------------------------------------------------------------------------------ access
    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's connection to the database (created on first use, closed by close()). Meant for
        long-lived threads (event loop, worker pools); a short-lived thread should use new_cursor()."""
        if self._con is None:
            raise RuntimeError("store is not open")
        cur: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._con.cursor()
            self._local.cursor = cur
            with self._lock:
                self._cursors.append(cur)
        return cur

    def new_cursor(self) -> duckdb.DuckDBPyConnection:
        """A fresh connection owned by the caller (close it yourself), e.g. for a worker thread pool."""
        if self._con is None:
            raise RuntimeError("store is not open")
        return self._con.cursor()

    def writer(self, **options: Any) -> PoseWriter:
        """A PoseWriter on its own connection; closed (and flushed) by Store.close() if not before."""
        if self._con is None:
            raise RuntimeError("store is not open")
        writer = PoseWriter(self._con.cursor(), owns_connection=True, **options)
        with self._lock:
            self._writers.append(writer)
        return writer

    def schema_version(self) -> int:
        from wdp.store import schema

        return schema.current_version(self.cursor())

    def checkpoint(self) -> None:
        """Fold the WAL into the database file (DuckDB also does this on its own past a size threshold)."""
        self.cursor().execute("CHECKPOINT")
