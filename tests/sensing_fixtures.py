"""Helpers for the sensing tests (engine, store, API): the shared real recordings, a synthetic ESP32-shaped
stream with a clear quiet -> motion -> quiet change, and a source of packets of mixed shapes and times."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wdp.csi.sources import CsiSource, PacketBatch, RouterInfo

D5_NORMAL = "D5/datasets/AN1_Normal_Take05_BPM17_20260418_102525.csv"  # ESP32 64x1x1, ~10 Hz, 60 s, a sleeper
D3_TEST = "D3/micro-espectre/data/test/test_c3_64sc_20260329_130804.npz"  # C3, 30 s quiet then 30 s movement
D1_WALKING = "D1/Original Data/0510/walking/qiang_walking1.dat"  # Intel 5300 30x3x1, 17 s of walking

MOTION_FROM_S, MOTION_UNTIL_S = 25.0, 40.0


def real_fixtures() -> Path:
    """../shared/data/real/fixtures beside the repo (WDP_SHARED_REAL overrides), as conftest finds csi."""
    env = os.environ.get("WDP_SHARED_REAL")
    if env:
        return Path(env) / "fixtures"
    for parent in Path(__file__).resolve().parents:
        cand = parent / "shared" / "data" / "real" / "fixtures"
        if cand.is_dir():
            return cand
    pytest.fail("../shared/data/real/fixtures not found (set WDP_SHARED_REAL)")


def synthetic_stream(
    seconds: float = 60.0, rate_hz: float = 50.0, *, moves: bool = True, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(times from 0, csi (N, 64, 1, 1)): a still channel with receiver noise; with ``moves`` every subcarrier
    swings strongly (a person walking by) from MOTION_FROM_S to MOTION_UNTIL_S."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate_hz)) / rate_hz
    base = rng.uniform(5, 20, 64) * np.exp(1j * rng.uniform(0, 2 * np.pi, 64))
    amp = np.ones((len(t), 64))
    if moves:
        on = (t >= MOTION_FROM_S) & (t < MOTION_UNTIL_S)
        k = np.arange(64)
        phase = rng.uniform(0, 2 * np.pi, 64)
        amp[on] = 1 + 0.6 * np.sin(2 * np.pi * 1.3 * t[on, None] + phase) * np.cos(
            2 * np.pi * 0.7 * t[on, None] + 0.3 * k
        )
    noise = (rng.normal(size=amp.shape) + 1j * rng.normal(size=amp.shape)) * 0.05
    csi = (base * amp + noise).astype(np.complex64)[:, :, None, None]
    return t, csi


class ListSource(CsiSource):
    """Packets of one router given as lists (shapes may differ, times may jump), as fast as the engine takes
    them; reports ``details`` through status_details() like the serial and follow sources do."""

    kind = "replay"
    realtime = False

    def __init__(
        self, router_id: str, times: Sequence[float], csi: Sequence[np.ndarray], details: Mapping[str, Any]
    ) -> None:
        self.router_id = router_id
        self.times = np.asarray(times, np.float64)
        self.csi = list(csi)
        self.details = dict(details)
        self._i = 0
        self._origin = 0.0

    def open(self, origin: float) -> None:
        self._origin = origin
        self._i = 0

    def routers(self) -> list[RouterInfo]:
        return [RouterInfo(self.router_id, self.router_id, "esp32", expected_rate_hz=None)]

    def read(self, timeout: float) -> list[PacketBatch]:
        i, j = self._i, min(self._i + 64, len(self.times))
        self._i = j
        if i == j:
            return []
        return [
            PacketBatch(
                router_id=self.router_id,
                timestamps=self._origin + self.times[i:j],
                csi=self.csi[i:j],
                arrival=np.full(j - i, time.perf_counter()),
            )
        ]

    @property
    def exhausted(self) -> bool:
        return self._i >= len(self.times)

    def status_details(self) -> dict[str, Any]:
        return dict(self.details)
