"""CSI sources behind one interface: the simulator, replay of a capture file (or of arrays), live UDP.

A source delivers packets of one or more routers as :class:`PacketBatch` es from ``read(timeout)``. Every
packet carries a timestamp on the engine's clock (epoch seconds) and the ``time.perf_counter()`` instant it
arrived, from which the engine measures latency.

* ``realtime`` sources deliver packets at their own pace (live radio; a simulator or a replay at the
  recorded rate: each packet is released at its due time and its arrival is that due time, so a late
  reader shows up as latency). A realtime stream cannot wait for the engine: the engine drops windows
  when it falls behind.
* Other sources (replay or simulation "as fast as possible") hand out packets as fast as the engine takes
  them; the engine blocks them instead of dropping.

``kind`` ("simulator", "replay", "live") ends up in every PoseFrame's ``source`` field.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from wdp.schemas import FrameSource

__all__ = [
    "ArraySource",
    "CsiSource",
    "LiveUdpSource",
    "PacketBatch",
    "ReplaySource",
    "RouterInfo",
    "SimulatorSource",
    "router_room",
]


@dataclass(frozen=True)
class RouterInfo:
    """A router (CSI receiver) as a source knows it."""

    id: str
    name: str
    kind: str  # csi format or "simulator"
    host: str = ""
    port: int = 0
    expected_rate_hz: float | None = 100.0  # nominal packet rate, for the loss estimate (None: unknown)


@dataclass(frozen=True, eq=False)
class PacketBatch:
    """Consecutive packets of one router. ``csi`` holds one complex64 (subcarriers, rx, tx) array per
    packet (shapes may differ between packets of a mixed capture)."""

    router_id: str
    timestamps: np.ndarray  # (k,) float64, engine clock (epoch seconds)
    csi: Sequence[np.ndarray]
    arrival: np.ndarray  # (k,) float64 time.perf_counter() when each packet arrived
    truth: Sequence[Any] | None = None  # simulator only: per packet, tuple of PersonTruth
    # (k,) int64: each packet's transmitter MAC as a 48-bit number (-1: unknown); None when the source has none
    mac: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.timestamps)


class CsiSource(ABC):
    kind: ClassVar[FrameSource]
    realtime: bool = True

    @abstractmethod
    def open(self, origin: float) -> None:
        """Start producing. ``origin``: the engine-clock time (epoch s) of the stream's t = 0 (sources with
        their own clock, live capture, ignore it)."""

    @abstractmethod
    def routers(self) -> list[RouterInfo]:
        """Routers known so far (a live source adds senders as they appear)."""

    @abstractmethod
    def read(self, timeout: float) -> list[PacketBatch]:
        """Packets available now, waiting up to ``timeout`` s for some; [] if none came."""

    @property
    @abstractmethod
    def exhausted(self) -> bool:
        """True once the source will produce nothing more (end of a file or finite scene)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (idempotent)."""

    def lost_packets(self) -> Mapping[str, int]:
        """Packets known to be lost before the engine saw them (e.g. a capture ring overflow), per router."""
        return {}

    def floor_projector(self) -> Any:
        """A wdp.tracking.FloorProjector for the source's camera view, if it knows one (the simulator)."""
        return None

    def stream_time(self) -> float | None:
        """Now on the packets' clock (engine clock), for realtime sources; None when the source is not
        realtime (its packets come as fast as they are taken, the clock says nothing about them)."""
        return None

    def __enter__(self) -> CsiSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------------------------- timed streams

# (t relative to the stream start, router id, csi, truth, transmitter MAC as a 48-bit number or -1)
_Packet = tuple[float, str, np.ndarray, Any, int]


class _TimedStreamSource(CsiSource):
    """A source reading a time-ordered packet iterator, paced (realtime) or as fast as possible."""

    max_batch = 256

    def __init__(self, realtime: bool, speed: float = 1.0) -> None:
        if not speed > 0:
            raise ValueError("speed must be > 0")
        self.realtime = bool(realtime)
        self.speed = float(speed)
        self._it: Iterator[_Packet] | None = None
        self._next: _Packet | None = None
        self._done = False
        self._origin = 0.0
        self._perf0 = 0.0
        self._wall0 = 0.0
        self._closed = threading.Event()

    @abstractmethod
    def _packets(self) -> Iterator[_Packet]: ...

    def open(self, origin: float) -> None:
        self._origin = float(origin)
        self._wall0 = time.time()
        self._perf0 = time.perf_counter()
        self._it = self._packets()
        self._done = False
        self._advance()

    def _advance(self) -> None:
        assert self._it is not None
        self._next = next(self._it, None)
        if self._next is None:
            self._done = True

    def stream_time(self) -> float | None:
        if not self.realtime or self._it is None:
            return None
        return self._origin + (time.perf_counter() - self._perf0 - (self._origin - self._wall0)) * self.speed

    def _due(self, t_rel: float) -> float:
        """perf_counter instant a packet at stream time t_rel is due (realtime pacing). Timestamps stay on
        the stream's own time axis whatever the speed, so windows and motion are the same at any speed."""
        return self._perf0 + (self._origin + t_rel / self.speed - self._wall0)

    @property
    def exhausted(self) -> bool:
        return self._done

    def read(self, timeout: float) -> list[PacketBatch]:
        if self._it is None:
            raise RuntimeError("source not opened")
        out: list[_Packet] = []
        arrivals: list[float] = []
        if self.realtime:
            if self._next is not None:
                wait = self._due(self._next[0]) - time.perf_counter()
                if wait > 0:
                    self._closed.wait(min(wait, timeout))
            now = time.perf_counter()
            while self._next is not None and len(out) < self.max_batch:
                due = self._due(self._next[0])
                if due > now:
                    break
                out.append(self._next)
                arrivals.append(due)
                self._advance()
        else:
            now = time.perf_counter()
            while self._next is not None and len(out) < self.max_batch:
                out.append(self._next)
                arrivals.append(now)
                self._advance()
        return self._group(out, arrivals)

    def _group(self, packets: list[_Packet], arrivals: list[float]) -> list[PacketBatch]:
        by_router: dict[str, list[int]] = {}
        for i, p in enumerate(packets):
            by_router.setdefault(p[1], []).append(i)
        batches = []
        for rid, idx in by_router.items():
            truth = [packets[i][3] for i in idx]
            mac = np.array([packets[i][4] for i in idx], np.int64)
            batches.append(
                PacketBatch(
                    router_id=rid,
                    timestamps=np.array([self._origin + packets[i][0] for i in idx]),
                    csi=[packets[i][2] for i in idx],
                    arrival=np.array([arrivals[i] for i in idx]),
                    truth=truth if any(t is not None for t in truth) else None,
                    mac=mac if (mac >= 0).any() else None,
                )
            )
        return batches

    def close(self) -> None:
        self._closed.set()


# ------------------------------------------------------------------------------------------ simulator

_ROUTER_SALT = 0x52545253  # "RTRS"


def router_room(room: Any, index: int) -> Any:
    """The room seen by simulated router ``index``: router 0 is the room as generated; further routers get
    their own TX/RX arrays (half-wavelength linear arrays on two walls, as wdp.csi.simulator.room places
    them), the same walls, clutter and camera."""
    if index == 0:
        return room
    from wdp.csi.simulator.room import linear_array

    rng = np.random.default_rng([_ROUTER_SALT, int(room.room_id), int(index)])
    w, d, _ = room.size
    spacing = float(np.linalg.norm(room.tx[1] - room.tx[0])) if len(room.tx) > 1 else 0.06

    def wall_point(wall: int) -> tuple[np.ndarray, np.ndarray]:
        z = rng.uniform(0.8, 2.0)
        if wall in (0, 1):
            return np.array([0.1 if wall == 0 else w - 0.1, rng.uniform(0.2, 0.8) * d, z]), np.array([0, 1.0, 0])
        return np.array([rng.uniform(0.2, 0.8) * w, 0.1 if wall == 2 else d - 0.1, z]), np.array([1.0, 0, 0])

    tx_wall = int(rng.integers(4))
    rx_wall = {0: 1, 1: 0, 2: 3, 3: 2}[tx_wall]
    tx_c, tx_axis = wall_point(tx_wall)
    rx_c, rx_axis = wall_point(rx_wall)
    tx = linear_array(tx_c, tx_axis, len(room.tx), spacing)
    rx = linear_array(rx_c, rx_axis, len(room.rx), spacing)
    for a in (tx, rx):
        a.flags.writeable = False
    return dataclasses.replace(room, tx=tx, rx=rx)


class SimulatorSource(_TimedStreamSource):
    """Simulated routers watching one scene (wdp.csi.simulator), each with its own antenna placement,
    impairments and packet losses; ground truth rides along with every packet.

    ``scene``: a ready Scene (e.g. ``scripted_scene(...)``), played once (or looped with ``loop``);
    otherwise random scenes ``random_scene(room_id, seed + n)`` follow each other (``loop`` plays forever).
    ``realtime``: 100 Hz wall-clock pacing (``speed`` times faster) or as fast as the engine takes packets.
    """

    kind: ClassVar[FrameSource] = "simulator"

    def __init__(
        self,
        *,
        routers: int | Sequence[str] = 1,
        scene: Any = None,
        room_id: int = 201,
        seed: int = 0,
        people: int | None = 2,
        scene_duration_s: float = 30.0,
        loop: bool = True,
        realtime: bool = True,
        speed: float = 1.0,
        chunk_s: float = 0.1,
        config: Any = None,
    ) -> None:
        super().__init__(realtime, speed)
        from wdp.csi.simulator import SimConfig

        if isinstance(routers, int):
            if routers < 1:
                raise ValueError("need at least one simulated router")
            ids = [f"sim-{i}" for i in range(routers)]
        else:
            ids = [str(r) for r in routers]
        if len(set(ids)) != len(ids) or not ids:
            raise ValueError("router ids must be unique and non-empty")
        self.router_ids = ids
        base = SimConfig.coerce(config)
        if scene is None:
            base = dataclasses.replace(base, scene_duration_s=float(scene_duration_s))
        self.config = base
        self.scene = scene
        self.room_id = int(scene.room_id if scene is not None else room_id)
        self.seed = int(seed)
        self.people = people
        self.loop = bool(loop)
        self.chunk_s = float(chunk_s)
        self.scenes_played = 0

    def routers(self) -> list[RouterInfo]:
        return [
            RouterInfo(rid, f"simulated router {i}", "simulator", expected_rate_hz=self.config.rate_hz)
            for i, rid in enumerate(self.router_ids)
        ]

    def _scene(self, n: int) -> Any:
        from wdp.csi.simulator import random_scene

        if self.scene is not None:
            return self.scene
        return random_scene(self.room_id, self.seed + n, self.config, n_people=self.people)

    def current_room(self) -> Any:
        from wdp.csi.simulator import room_from_id

        return self.scene.room if self.scene is not None else room_from_id(self.room_id, self.config)

    def floor_projector(self) -> Any:
        from wdp.tracking import FloorProjector

        cam = self.current_room().camera
        k = np.array([[cam.focal, 0.0, cam.width / 2], [0.0, cam.focal, cam.height / 2], [0.0, 0.0, 1.0]])
        r = np.asarray(cam.rotation)
        # simulated ankle joints sit ~7 cm above the floor: map them on that plane (no parallax)
        return FloorProjector.from_camera(k, r, -r @ np.asarray(cam.position), plane_height=0.07)

    def _packets(self) -> Iterator[_Packet]:
        from wdp.csi.simulator import Scene, SceneSimulator

        offset = 0.0
        for n in itertools.count():
            scene = self._scene(n)
            streams = []
            for k, rid in enumerate(self.router_ids):
                variant = Scene(router_room(scene.room, k), scene.people, scene.duration, scene.seed + 7919 * k)
                sim = SceneSimulator(variant, self.config)
                streams.append(_tagged(sim.stream(chunk_s=self.chunk_s, seed=k), offset, k, rid))
            for t, _, rid, csi, persons in heapq.merge(*streams, key=lambda p: (p[0], p[1])):
                yield t, rid, csi, persons, -1
            self.scenes_played += 1
            offset += scene.duration
            if not self.loop:
                return


def _tagged(frames: Iterator[Any], offset: float, k: int, rid: str) -> Iterator[tuple[float, int, str, Any, Any]]:
    for f in frames:
        yield offset + f.timestamp, k, rid, f.csi, f.persons


# ------------------------------------------------------------------------------------------ replay


class ReplaySource(_TimedStreamSource):
    """A capture file streamed through the native parser, at its recorded rate (``realtime``, ``speed``)
    or as fast as possible; memory stays bounded (the file is read in chunks).

    Time axis: the capture's own timestamps relative to its first packet. Packets whose timestamp does not
    advance (files without a usable clock, e.g. csitool's FAQ sample) are spaced at ``nominal_rate_hz``.
    """

    kind: ClassVar[FrameSource] = "replay"
    chunk_bytes = 256 * 1024

    def __init__(
        self,
        path: str | Path,
        *,
        format: str | None = None,
        router_id: str = "replay-0",
        realtime: bool = True,
        speed: float = 1.0,
        loop: bool = False,
        nominal_rate_hz: float = 100.0,
    ) -> None:
        super().__init__(realtime, speed)
        from wdp.csi import detect_format

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no such capture file: {self.path}")
        self.format = format or detect_format(self.path)
        self.router_id = router_id
        self.loop = bool(loop)
        self.nominal_rate_hz = float(nominal_rate_hz)
        self.packets = 0

    def routers(self) -> list[RouterInfo]:
        return [RouterInfo(self.router_id, self.path.name, self.format, expected_rate_hz=None)]

    def _packets(self) -> Iterator[_Packet]:
        step = 1.0 / self.nominal_rate_hz
        offset = 0.0
        last = -math.inf
        while True:
            first: float | None = None
            n_before = self.packets
            for cap in self._captures():
                ts = cap.meta["timestamp"]
                macs = mac_numbers(cap.meta.get("mac"), len(ts))
                for csi, t, mac in zip(cap.csi, ts, macs, strict=True):
                    if csi.size == 0:
                        continue
                    t = float(t)
                    if first is None and math.isfinite(t):
                        first = t
                    rel = offset + (t - first) if first is not None and math.isfinite(t) else -math.inf
                    rel = rel if rel > last else (0.0 if last == -math.inf else last + step)
                    last = rel
                    self.packets += 1
                    yield rel, self.router_id, csi, None, int(mac)
            if not self.loop or self.packets == n_before:
                return
            offset = last + step
            last = offset - step

    def _captures(self) -> Iterator[Any]:
        """The file as parsed batches: streamed in chunks, or whole for file-only formats (ESPectre npz)."""
        from wdp.csi import StreamReader
        from wdp.csi.capture_file import FILE_ONLY_FORMATS, read_capture

        if self.format in FILE_ONLY_FORMATS:
            yield read_capture(self.path, self.format)
            return
        reader = StreamReader(self.format)
        with self.path.open("rb") as fh:
            while True:
                chunk = fh.read(self.chunk_bytes)
                yield reader.feed(chunk) if chunk else reader.finish()
                if not chunk:
                    return


class ArraySource(_TimedStreamSource):
    """Replay of CSI held in memory: {router id: (times (N,) s from 0, csi (N, S, R, T))}; for benchmarks and
    tests that must not pay for simulation or parsing while they measure."""

    kind: ClassVar[FrameSource] = "replay"

    def __init__(
        self,
        streams: Mapping[str, tuple[np.ndarray, np.ndarray]],
        *,
        realtime: bool = True,
        speed: float = 1.0,
        kind: FrameSource = "replay",
    ) -> None:
        super().__init__(realtime, speed)
        self.streams = {rid: (np.asarray(t, np.float64), np.asarray(c)) for rid, (t, c) in streams.items()}
        self.kind = kind  # type: ignore[misc]

    def routers(self) -> list[RouterInfo]:
        return [RouterInfo(rid, rid, "array") for rid in self.streams]

    def _packets(self) -> Iterator[_Packet]:
        iters = [_array_stream(t, c, k, rid) for k, (rid, (t, c)) in enumerate(self.streams.items())]
        for t, _, rid, csi in heapq.merge(*iters, key=lambda p: (p[0], p[1])):
            yield t, rid, csi, None, -1


def mac_numbers(mac: Any, n: int) -> np.ndarray:
    """(n, 6) MAC bytes -> (n,) int64 48-bit numbers (-1 where the format carries none: all zero bytes)."""
    if mac is None:
        return np.full(n, -1, np.int64)
    b = np.asarray(mac, np.uint8).reshape(n, 6).astype(np.int64)
    out = np.zeros(n, np.int64)
    for i in range(6):
        out = (out << 8) | b[:, i]
    out[out == 0] = -1
    return out


def _array_stream(t: np.ndarray, c: np.ndarray, k: int, rid: str) -> Iterator[tuple[float, int, str, np.ndarray]]:
    for i in range(len(t)):
        yield float(t[i]), k, rid, c[i]


# ------------------------------------------------------------------------------------------ live UDP


class LiveUdpSource(CsiSource):
    """Routers sending CSI over UDP to one port, through the native receiver (wdp.csi.UdpSource).

    Every sender address is a router: ``routers`` maps addresses to ids ([{id, host[, port][, name]}]);
    unlisted senders become ``udp-<ip>:<port>``. Timestamps are the kernel receive times (router clocks are
    not synchronised with each other, the receiving host's clock is common to all of them).
    """

    kind: ClassVar[FrameSource] = "live"
    realtime = True

    def __init__(
        self,
        *,
        host: str = "0.0.0.0",
        port: int = 5500,
        format: str = "nexmon_udp",
        shape: Sequence[int] = (256, 1, 1),
        capacity: int = 4096,
        routers: Sequence[Mapping[str, Any]] = (),
        expected_rate_hz: float | None = 100.0,
    ) -> None:
        self.host, self.requested_port, self.format = host, int(port), format
        self.shape = tuple(int(v) for v in shape)
        self.capacity = int(capacity)
        self.expected_rate_hz = expected_rate_hz
        self._configured = [dict(r) for r in routers]
        self._known: dict[str, RouterInfo] = {}
        for r in self._configured:
            rid = str(r["id"])
            self._known[rid] = RouterInfo(
                rid,
                str(r.get("name", rid)),
                format,
                str(r.get("host", "")),
                int(r.get("port", 0)),
                expected_rate_hz,
            )
        self._by_address: dict[int, str] = {}  # source_id -> router id
        self._udp: Any = None
        self._closed = False

    @property
    def port(self) -> int:
        return self._udp.port if self._udp is not None else self.requested_port

    def open(self, origin: float) -> None:
        from wdp.csi.udp import UdpSource

        self._udp = UdpSource(
            host=self.host,
            port=self.requested_port,
            format=self.format,
            shape=self.shape,
            capacity=self.capacity,
        )
        self._udp.start()

    def routers(self) -> list[RouterInfo]:
        return list(self._known.values())

    def _router_for(self, source_id: int) -> str:
        rid = self._by_address.get(source_id)
        if rid is not None:
            return rid
        addrs = self._udp.sources
        addr = addrs[source_id] if 0 <= source_id < len(addrs) else "unknown"
        ip, _, port = addr.rpartition(":")
        for r in self._configured:
            if r.get("host") == ip and int(r.get("port", 0)) in (0, int(port or 0)):
                rid = str(r["id"])
                break
        else:
            rid = f"udp-{addr}"
            self._known[rid] = RouterInfo(rid, addr, self.format, ip, int(port or 0), self.expected_rate_hz)
        self._by_address[source_id] = rid
        return rid

    def read(self, timeout: float) -> list[PacketBatch]:
        if self._udp is None:
            raise RuntimeError("source not opened")
        with self._udp.read(timeout=timeout) as batch:
            if not len(batch):
                return []
            csi = np.array(batch.csi)
            arrival_ns = np.array(batch.arrival_ns)
            sid = np.array(batch.source_id)
            mac = mac_numbers(np.array(batch.mac), len(sid))
        # kernel receive time (epoch) -> perf_counter instant
        t = arrival_ns.astype(np.float64) * 1e-9
        arrival = time.perf_counter() - (time.time() - t)
        out = []
        for s in np.unique(sid):
            m = sid == s
            mm = mac[m]
            out.append(
                PacketBatch(
                    self._router_for(int(s)), t[m], list(csi[m]), arrival[m], mac=mm if (mm >= 0).any() else None
                )
            )
        return out

    @property
    def exhausted(self) -> bool:
        return self._closed

    def stream_time(self) -> float | None:
        return time.time()  # packets carry kernel receive times on the same clock

    def lost_packets(self) -> Mapping[str, int]:
        if self._udp is None:
            return {}
        dropped = self._udp.stats.dropped_overflow
        # the ring does not know whose frames it dropped: charge them to every router alike
        return {rid: dropped for rid in self._known} if dropped else {}

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._udp is not None:
                self._udp.stop()
