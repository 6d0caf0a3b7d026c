"""Issue 12 items 5 and 8: a real uvicorn (access log on) must write no forged line, no raw control or bidi
character and no credential, whatever a request puts in its path, query or headers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
from api_support import SECRET
from server_process import free_port, password_token, stop_process, wait_healthy
from websockets.sync.client import connect as ws_connect

ADMIN_PASSWORD = "admin-password-for-log-tests"
FORGED = "INFO - 2026-12-06 FORGED"
API_KEY = "wdp_0123456789ab_" + "S3cretKeyMaterial" * 2


def _serve_and_probe(log: Path) -> tuple[str, str]:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        "WDP_JWT_SECRET": SECRET,
        "WDP_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "WDP_API__AUTH__ARGON2_TIME_COST": "1",
        "WDP_API__AUTH__ARGON2_MEMORY_KIB": "8192",
        "WDP_API__AUTH__ARGON2_PARALLELISM": "1",
    }
    cmd = [sys.executable, "-m", "uvicorn", "log_probe_app:create_probe_app", "--factory", "--host", "127.0.0.1"]
    with log.open("wb") as out:  # access log on, info level: every line uvicorn and the app can write
        proc = subprocess.Popen([*cmd, "--port", str(port), "--log-level", "info"], env=env, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc, log, timeout=30)
        token = password_token(base, ADMIN_PASSWORD)
        forged = f"%00%0a{FORGED.replace(' ', '%20')}%0d%1b%5b31m%e2%80%ae"
        with httpx.Client(base_url=base, timeout=5.0) as client:
            client.get(f"/dashboard/x{forged}...")  # the request, whatever status it gets
            client.get(
                f"/probe/x{forged}",
                params={"token": token, "api_key": API_KEY, "q": f"a\n{FORGED}"},
                headers={"Authorization": f"Bearer {token}", "X-API-Key": API_KEY, "X-Note": "a\u202eb".encode()},
            )
            client.get(f"/ws/v1/stream?token={token}")  # the stream URL with its token, as a plain GET
            client.get("/api/v1/auth/verify", params={"access_token": token})
        with ws_connect(f"ws://127.0.0.1:{port}/ws/v1/stream?token={token}") as ws:  # a real stream session
            assert json.loads(ws.recv(timeout=5))["type"] == "connection"
    finally:
        stop_process(proc, timeout=10)
    return log.read_text(encoding="utf-8", errors="replace"), token


def test_log_has_no_forged_line_and_no_credentials(tmp_path: Path) -> None:
    text, token = _serve_and_probe(tmp_path / "server.log")
    lines = text.splitlines()
    probe_lines = [line for line in lines if "probe" in line]
    assert probe_lines, text  # the probe's own lines are there ...
    assert any("\\n" + FORGED in line for line in probe_lines), text  # ... with the input escaped in them
    assert not [line for line in lines if line.lstrip().startswith(FORGED)], text  # no forged record
    for raw in ("\x00", "\x1b", "\r", "\u202e"):
        assert raw not in text, (repr(raw), text)
    assert "Traceback" in text and "RuntimeError: cannot open /x\\x00\\n" + FORGED in text  # message escaped
    assert '"WebSocket /ws/v1/stream?token=[REDACTED]" [accepted]' in text  # the access line stays, not the token
    for secret in (token, token.split(".")[2], "S3cretKeyMaterial", ADMIN_PASSWORD):
        assert secret not in text, secret


def test_sanitizer_redacts_credential_shapes_and_keeps_format_args() -> None:
    import logging

    from wdp.serve.log_sanitizer import clean, install_log_sanitizer

    assert clean('{"username": "bob", "password": "hunter2"}') == '{"username": "bob", "password": "[REDACTED]"}'
    assert clean("Authorization: Basic dXNlcjpwYXNz") == "Authorization: Basic [REDACTED]"
    assert clean(f"key {API_KEY} used") == "key wdp_0123456789ab_[REDACTED] used"
    assert clean("2 tokens left; token expired") == "2 tokens left; token expired"  # words are not secrets
    install_log_sanitizer()
    install_log_sanitizer()  # idempotent
    record = logging.getLogger("wdp.test").makeRecord(
        "wdp.test", logging.INFO, __file__, 1, "%s %d %.1f", ("a\nb", 3, 2.25), None
    )
    assert record.getMessage() == "a\\nb 3 2.2"
