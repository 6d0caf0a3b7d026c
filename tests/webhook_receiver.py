"""Start/stop the webhook receiver process (tests/_webhook_receiver.py) and read what it recorded."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


class Receiver:
    def __init__(
        self,
        log: Path | None,
        port: int = 0,
        *,
        fail_first: int = 0,
        fail_status: int = 500,
        retry_after: str | None = None,
        delay_ms: float = 0.0,
        tls: tuple[Path, Path] | None = None,
        dedup: bool = False,
    ) -> None:
        self.log = log
        self.port = port
        self.args = [
            "--fail-first",
            str(fail_first),
            "--fail-status",
            str(fail_status),
            "--delay-ms",
            str(delay_ms),
        ]
        if retry_after is not None:
            self.args += ["--retry-after", retry_after]
        if log is not None:
            self.args += ["--log", str(log)]
        if tls is not None:
            self.args += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
        if dedup:
            self.args.append("--dedup")
        self.proc: subprocess.Popen[str] | None = None
        self.count: int | None = None

    def start(self) -> Receiver:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "_webhook_receiver.py"), "--port", str(self.port), *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("listening"):
            err = self.proc.stderr.read() if self.proc.stderr else ""
            self.stop()
            raise RuntimeError(f"receiver did not start: {line!r} {err}")
        self.port = int(line.split()[1])
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        for line in out.splitlines():
            if line.startswith("count "):
                self.count = int(line.split()[1])
        self.proc = None

    def records(self) -> list[dict[str, Any]]:
        if self.log is None or not self.log.exists():
            return []
        out = []
        for line in self.log.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # the line being written right now
                pass
        return out

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
