"""StoreBase: what the DuckDB Store and the PostgreSQL PgStore share — one open connection, a cached cursor per
thread, owned writers and cursors closed with the store, the context-manager protocol. Subclasses set
``self._con`` in ``open()``; ``close()`` and everything else is here."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any, Self

from wdp.store.writer import PoseWriter


class StoreBase:
    def __init__(self) -> None:
        self._con: Any = None
        self._local = threading.local()
        self._cursors: list[Any] = []
        self._writers: list[PoseWriter] = []
        self._lock = threading.Lock()

    def open(self) -> Self:
        raise NotImplementedError

    def close(self) -> None:
        """Flush and close writers, close every cursor, then the connection."""
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

    def __enter__(self) -> Self:
        return self.open() if self._con is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        return self._con is not None

    def _open_con(self) -> Any:
        if self._con is None:
            raise RuntimeError("store is not open")
        return self._con

    def cursor(self) -> Any:
        """This thread's connection to the database (created on first use, closed by close()). Meant for
        long-lived threads (event loop, worker pools); a short-lived thread should use new_cursor()."""
        con = self._open_con()
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = con.cursor()
            self._local.cursor = cur
            with self._lock:
                self._cursors.append(cur)
        return cur

    def new_cursor(self) -> Any:
        """A fresh connection owned by the caller (close it yourself), e.g. for a worker thread pool."""
        return self._open_con().cursor()

    def writer(self, **options: Any) -> PoseWriter:
        """A PoseWriter on its own connection; closed (and flushed) by close() if not before."""
        writer = PoseWriter(self._open_con().cursor(), owns_connection=True, **options)
        with self._lock:
            self._writers.append(writer)
        return writer

    def schema_version(self) -> int:
        from wdp.store import schema

        return schema.current_version(self.cursor())
