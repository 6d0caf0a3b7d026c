from __future__ import annotations

import os
from pathlib import Path

import pytest


def _find_shared_csi() -> Path | None:
    env = os.environ.get("WDP_SHARED_CSI")
    if env:
        return Path(env)
    # The repo sits beside ../shared (CI clones main with shared next to it).
    for parent in Path(__file__).resolve().parents:
        cand = parent / "shared" / "data" / "csi"
        if cand.is_dir():
            return cand
    return None


@pytest.fixture(scope="session")
def csi_dir() -> Path:
    d = _find_shared_csi()
    if d is None:
        pytest.fail("../shared/data/csi not found (set WDP_SHARED_CSI)")
    return d
