"""The Store: owns one DuckDB database, hands each thread its own cursor, runs migrations on open.

DuckDB connections are not safe to share between threads; ``con.cursor()`` makes a new connection to the
same database that is. ``Store.cursor()`` caches one per thread (per Store, not a module global) and
``Store.close()`` closes them all. Every function in ``wdp.store`` takes such a connection as its first
argument, so tests and callers decide which thread uses which connection.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from wdp.store.base import StoreBase
from wdp.store.transaction import transaction

__all__ = ["Store", "transaction"]


class Store(StoreBase):
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
        super().__init__()
        self.path = str(path)
        self.read_only = read_only
        self._migrate = migrate and not read_only
        self._config = dict(config or {})

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

    def checkpoint(self) -> None:
        """Fold the WAL into the database file (DuckDB also does this on its own past a size threshold)."""
        self.cursor().execute("CHECKPOINT")
