"""Router status: connected / disconnected, packet rate and loss, with router.connected/disconnected events.

A router is *connected* from its first packet and *disconnected* once no packet came for
``disconnect_after_s`` (or its source ended or failed); each transition is one event. Packet rate is
packets over the last ``rate_window_s`` seconds; loss is 1 - received / expected over the same window
when the nominal rate is known (plus packets the capture layer reported lost), else 0.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from wdp import schemas
from wdp.csi.sources import RouterInfo


@dataclass
class _RouterState:
    info: RouterInfo
    status: schemas.RouterStatus = "unknown"
    packets: int = 0
    first_packet: float | None = None  # monotonic
    last_packet: float | None = None  # monotonic
    last_seen_epoch: float | None = None
    lost_reported: int = 0


class RouterMonitor:
    def __init__(
        self,
        *,
        disconnect_after_s: float = 2.0,
        rate_window_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.disconnect_after_s = disconnect_after_s
        self.rate_window_s = rate_window_s
        self._clock = clock
        self._wall = wall
        self._routers: dict[str, _RouterState] = {}
        self._arrivals: dict[str, deque[tuple[float, int]]] = {}
        self._lock = threading.Lock()

    def register(self, info: RouterInfo) -> None:
        with self._lock:
            if info.id not in self._routers:
                self._routers[info.id] = _RouterState(info)
                self._arrivals[info.id] = deque()

    def on_packets(self, info: RouterInfo, n: int) -> schemas.RouterConnected | None:
        """Count n packets just received; returns a router.connected event on a (re)connection."""
        now = self._clock()
        self.register(info)
        with self._lock:
            st = self._routers[info.id]
            st.packets += n
            st.first_packet = now if st.first_packet is None else st.first_packet
            st.last_packet = now
            st.last_seen_epoch = self._wall()
            q = self._arrivals[info.id]
            q.append((now, n))
            while q and now - q[0][0] > self.rate_window_s:
                q.popleft()
            if st.status != "connected":
                st.status = "connected"
                return schemas.RouterConnected(timestamp=self._wall(), router_id=info.id, host=info.host)
        return None

    def set_lost(self, router_id: str, lost_total: int) -> None:
        with self._lock:
            if router_id in self._routers:
                self._routers[router_id].lost_reported = lost_total

    def check_timeouts(self, applies: Callable[[str], bool] | None = None) -> list[schemas.RouterDisconnected]:
        """Routers silent for longer than disconnect_after_s (wall clock), among those ``applies`` accepts."""
        now = self._clock()
        out = []
        with self._lock:
            for rid, st in self._routers.items():
                if (
                    (applies is None or applies(rid))
                    and st.status == "connected"
                    and st.last_packet is not None
                    and now - st.last_packet > self.disconnect_after_s
                ):
                    st.status = "disconnected"
                    out.append(
                        schemas.RouterDisconnected(
                            timestamp=self._wall(),
                            router_id=rid,
                            reason=f"no packets for {self.disconnect_after_s:g} s",
                        )
                    )
        return out

    def disconnect(self, router_id: str, reason: str) -> schemas.RouterDisconnected | None:
        with self._lock:
            st = self._routers.get(router_id)
            if st is None or st.status != "connected":
                return None
            st.status = "disconnected"
            return schemas.RouterDisconnected(timestamp=self._wall(), router_id=router_id, reason=reason)

    def connected(self) -> set[str]:
        with self._lock:
            return {rid for rid, st in self._routers.items() if st.status == "connected"}

    def awaited(self) -> set[str]:
        """Routers registered by their source that have not sent a packet yet (status still unknown)."""
        with self._lock:
            return {rid for rid, st in self._routers.items() if st.status == "unknown"}

    def status(self) -> list[schemas.Router]:
        now = self._clock()
        out = []
        with self._lock:
            for rid, st in self._routers.items():
                q = self._arrivals[rid]
                while q and now - q[0][0] > self.rate_window_s:
                    q.popleft()
                n = sum(k for _, k in q)
                span = min(self.rate_window_s, now - st.first_packet) if st.first_packet is not None else 0.0
                rate = n / span if span > 0.05 else 0.0
                loss = 0.0
                exp = st.info.expected_rate_hz
                if exp and span > 0.5 and st.status == "connected":
                    loss = max(0.0, 1.0 - rate / exp)
                if st.lost_reported and st.packets:
                    loss = max(loss, st.lost_reported / (st.lost_reported + st.packets))
                out.append(
                    schemas.Router(
                        id=rid,
                        name=st.info.name,
                        kind=st.info.kind,
                        host=st.info.host,
                        port=st.info.port,
                        status=st.status,
                        packet_rate=round(rate, 3),
                        loss=round(min(loss, 1.0), 4),
                        last_seen=st.last_seen_epoch,
                    )
                )
        return out
