"""The server caps glibc's malloc arenas at start (wdp.process_memory), unless the user chose a value."""

from __future__ import annotations

import subprocess
import sys

PROBE = "from wdp.process_memory import limit_malloc_arenas; print(limit_malloc_arenas())"


def test_arenas_are_capped_on_glibc_and_a_user_setting_wins():
    import platform

    applied = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert applied.returncode == 0, applied.stderr
    expected = "True" if platform.libc_ver()[0] == "glibc" else "False"
    assert applied.stdout.strip() == expected
    kept = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, env={"MALLOC_ARENA_MAX": "4"}
    )
    assert kept.stdout.strip() == "False"
