"""A recording's CSI as an engine source: `wdp serve source=recording source.path=rec1` replays every router of
a `wdp record` folder at its recorded pace (or as fast as possible), e.g. only its held-out last minutes
(``start_fraction: 0.8``) to watch a model trained on the rest."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np

from wdp.csi.sources import RouterInfo, _Packet, _TimedStreamSource
from wdp.recording.layout import chunk_arrays
from wdp.recording.reader import iter_csi_chunks, read_info
from wdp.schemas import FrameSource

LOOKAHEAD_S = 1.0  # chunks of different routers are written as they arrive: sort within this much time


class RecordingSource(_TimedStreamSource):
    kind: ClassVar[FrameSource] = "replay"

    def __init__(
        self,
        path: str | Path,
        *,
        realtime: bool = True,
        speed: float = 1.0,
        start_fraction: float = 0.0,
        end_fraction: float = 1.0,
    ) -> None:
        super().__init__(realtime, speed)
        self.path = Path(path)
        read_info(self.path)  # a clear error for a folder that is not a recording
        if not 0.0 <= start_fraction < end_fraction <= 1.0:
            raise ValueError("need 0 <= start_fraction < end_fraction <= 1")
        t_min, t_max = np.inf, -np.inf
        self._routers: dict[str, int] = {}
        for c in iter_csi_chunks(self.path):
            t = np.frombuffer(c.t, np.float64)
            t_min, t_max = min(t_min, float(t.min())), max(t_max, float(t.max()))
            self._routers[c.router] = self._routers.get(c.router, 0) + len(t)
        if not self._routers:
            raise ValueError(f"{self.path} holds no CSI")
        span = t_max - t_min
        self.t_from = t_min + start_fraction * span
        self.t_to = t_min + end_fraction * span
        self.packets = 0

    def routers(self) -> list[RouterInfo]:
        return [RouterInfo(r, r, "recording", expected_rate_hz=None) for r in sorted(self._routers)]

    def _packets(self) -> Iterator[_Packet]:
        heap: list[tuple[float, int, str, np.ndarray, int]] = []
        serial = 0
        newest = -np.inf
        for c in iter_csi_chunks(self.path):
            t, csi, mac = chunk_arrays(c)
            for i in range(len(t)):
                if self.t_from <= t[i] <= self.t_to:
                    m = -1 if mac is None else int(mac[i])
                    heapq.heappush(heap, (float(t[i]), serial, c.router, np.array(csi[i]), m))
                    serial += 1
                    newest = max(newest, float(t[i]))
            while heap and heap[0][0] < newest - LOOKAHEAD_S:
                yield self._out(heapq.heappop(heap))
        while heap:
            yield self._out(heapq.heappop(heap))

    def _out(self, item: tuple[float, int, str, np.ndarray, int]) -> _Packet:
        self.packets += 1
        return item[0] - self.t_from, item[2], item[3], None, item[4]
