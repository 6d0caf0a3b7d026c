"""Process-wide memory settings for the long-running server.

glibc gives every thread that allocates concurrently its own malloc arena (up to 8 x cores) and rarely returns
their free pages: under REST history queries beside the engine's threads, `bench/soak.py` measured the server's
RSS growing 7-10 MB a minute with the Python heap flat, and flat (+5 MB in 4 min) with two arenas. The server
therefore caps the arenas at start, before its threads exist, unless the user set MALLOC_ARENA_MAX.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_ARENA_MAX = -8  # glibc's mallopt parameter number


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas (``mallopt(M_ARENA_MAX)``); True if applied. A no-op where the C library is
    not glibc, or when the environment already sets MALLOC_ARENA_MAX (glibc read it at start)."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, int(arenas)))
