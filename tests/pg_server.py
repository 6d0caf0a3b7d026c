"""A real PostgreSQL server for tests (Debian's ``postgresql`` package): initdb + pg_ctl in a temporary
directory on a free 127.0.0.1 port, run as an unprivileged user when the tests run as root, restartable
(``stop(mode)`` / ``start()``) on the same port and data directory. ``fresh_database()`` gives each test its
own empty database. Skips (via ``available()``) where the binaries are missing.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg
from server_process import free_port


def _bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(versions[-1]).parent if versions else None


BINDIR = _bindir()


def available() -> bool:
    return BINDIR is not None and (BINDIR / "initdb").exists()


class PostgresServer:
    """One cluster. ``dsn(db)`` is a libpq URI for database ``db`` (user ``wdp``, trust auth on loopback)."""

    def __init__(self, port: int | None = None) -> None:
        if not available():
            raise RuntimeError("PostgreSQL binaries (initdb, pg_ctl) not found")
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="wdp-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._user: str | None = None
        if os.geteuid() == 0:  # postgres refuses to run as root
            self._user = "nobody"
            ids = pwd.getpwnam(self._user)
            os.chown(self.root, ids.pw_uid, ids.pw_gid)
        self._run([str(BINDIR / "initdb"), "-D", str(self.data), "-U", "wdp", "--auth=trust", "-E", "UTF8",
                   "--locale=C", "--no-sync"])  # fmt: skip

    def _run(self, cmd: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C"}
        return subprocess.run(cmd, user=self._user, env=env, cwd=self.root, capture_output=True, text=True, check=check)

    def start(self) -> PostgresServer:
        opts = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} "
            "-c fsync=off -c full_page_writes=off -c max_connections=200 -c shared_buffers=64MB"
        )
        res = self._run([str(BINDIR / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w",
                         "-t", "30", "start"], check=False)  # fmt: skip
        if res.returncode != 0:
            raise RuntimeError(f"postgres did not start: {res.stderr}\n{self.log.read_text()[-2000:]}")
        return self

    def stop(self, mode: str = "fast") -> None:
        """``fast``: clean shutdown; ``immediate``: like a crash (recovery replays the WAL at next start)."""
        self._run([str(BINDIR / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"], check=False)

    def dsn(self, db: str = "postgres") -> str:
        return f"postgresql://wdp@127.0.0.1:{self.port}/{db}"

    def fresh_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.dsn(), autocommit=True) as con:
            con.execute(f"CREATE DATABASE {name}")
        return self.dsn(name)

    def cleanup(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
