"""The MQTT bridge's durable queue: its QoS1/2 backlog in a small SQLite file (stdlib sqlite3), so messages
queued while the broker is away survive a restart or a crash of the process.

Why SQLite: one file, atomic batched commits and a write-ahead log that ``synchronous=FULL`` fsyncs at every
commit, with no server; rows are keyed by the bridge's sequence number, so reading them back in key order is
the original publish order. The bridge records adds and removes in memory (cheap, on the event loop) and
``sync()`` writes them in one transaction from a worker thread. A message added and acknowledged before a
sync is never written at all, so a connected bridge barely touches the disk; during an outage the backlog
costs one fsync per sync interval, not per message. A crash loses at most the adds since the last sync.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY,    -- the bridge's sequence number: publish order
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    person INTEGER NOT NULL     -- a person update (counts against max_queued_person_updates)
)"""


@dataclass(frozen=True, slots=True)
class SpooledMessage:
    seq: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    person: bool


class MessageSpool:
    """Thread-safe: ``add``/``remove`` from the event loop, ``sync`` from one worker thread at a time."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()  # guards the pending adds/removes
        self._io = threading.Lock()  # one sync (or load/close) at a time
        self._adds: dict[int, SpooledMessage] = {}
        self._removes: set[int] = set()
        self._con: sqlite3.Connection | None = None
        self.stored = 0  # messages on disk after the last sync

    def _connect(self) -> sqlite3.Connection:
        if self._con is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")  # a committed batch survives a power cut too
            con.execute(_SCHEMA)
            self._con = con
        return self._con

    def load(self) -> list[SpooledMessage]:
        """Everything on disk, in publish order (call before the first add)."""
        with self._io:
            rows = (
                self._connect()
                .execute("SELECT seq, topic, payload, qos, retain, person FROM messages ORDER BY seq")
                .fetchall()
            )
        self.stored = len(rows)
        return [SpooledMessage(s, t, bytes(p), int(q), bool(r), bool(pe)) for s, t, p, q, r, pe in rows]

    def add(self, message: SpooledMessage) -> None:
        with self._lock:
            self._adds[message.seq] = message

    def remove(self, seq: int) -> None:
        with self._lock:
            if self._adds.pop(seq, None) is None:  # not written yet: it never will be
                self._removes.add(seq)

    @property
    def pending(self) -> int:
        """Adds and removes not yet on disk."""
        with self._lock:
            return len(self._adds) + len(self._removes)

    def sync(self) -> None:
        """Write the pending adds and removes in one transaction (fsynced). On an error they stay pending."""
        with self._io:
            with self._lock:
                adds, self._adds = self._adds, {}
                removes, self._removes = self._removes, set()
            if not adds and not removes:
                return
            try:
                con = self._connect()
                con.execute("BEGIN IMMEDIATE")
                try:
                    con.executemany(
                        "INSERT OR REPLACE INTO messages VALUES (?, ?, ?, ?, ?, ?)",
                        [(m.seq, m.topic, m.payload, m.qos, int(m.retain), int(m.person)) for m in adds.values()],
                    )
                    con.executemany("DELETE FROM messages WHERE seq = ?", [(s,) for s in removes])
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
            except BaseException:
                with self._lock:  # keep them for the next sync; a remove that came meanwhile still applies
                    self._adds = adds | self._adds
                    self._removes |= removes
                raise
            row = con.execute("SELECT count(*) FROM messages").fetchone()
            self.stored = int(row[0]) if row else 0

    def close(self) -> None:
        """Sync what is pending, then close the file (a later sync reopens it)."""
        self.sync()
        with self._io:
            if self._con is not None:
                self._con.close()
                self._con = None
