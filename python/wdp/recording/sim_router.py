"""Simulated routers streaming CSI over UDP (wdp's raw relay datagrams), each from its own socket, paced at
their packet rate: a stand-in for real routers when trying `wdp record`, in tests and in the benchmark.
The CSI comes from the room simulator (wdp.csi.sources.SimulatorSource), generated ahead and then sent."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from wdp.csi.udp import encode_relay_datagram


def simulated_packets(routers: int, seconds: float, *, room_id: int = 101, seed: int = 0, people: int = 1):
    """Per router: (t relative to the start, list of (S, R, T) complex64 CSI) of ``seconds`` of simulation."""
    from wdp.csi.sources import SimulatorSource

    src = SimulatorSource(
        routers=routers,
        room_id=room_id,
        seed=seed,
        people=people,
        scene_duration_s=max(seconds, 1.0),
        loop=False,
        realtime=False,
    )
    src.open(0.0)
    t: dict[str, list[float]] = {}
    csi: dict[str, list[np.ndarray]] = {}
    while not src.exhausted:
        for b in src.read(0.1):
            keep = np.asarray(b.timestamps) < seconds
            t.setdefault(b.router_id, []).extend(np.asarray(b.timestamps)[keep].tolist())
            csi.setdefault(b.router_id, []).extend(c for c, k in zip(b.csi, keep, strict=True) if k)
        if t and min(max(v) for v in t.values()) >= seconds - 0.02:
            break
    src.close()
    return {r: (np.array(t[r]), csi[r]) for r in sorted(t)}


@dataclass
class SenderStats:
    sent: dict[int, int] = field(default_factory=dict)  # router index -> datagrams sent
    skipped: dict[int, int] = field(default_factory=dict)  # router index -> packets left out on purpose


class SimulatedRouters:
    """Sends ``routers`` streams to host:port at ``rate_hz`` each until stop() or ``duration_s``, looping the
    pre-generated CSI. ``skip`` = {router index: [(t0, t1), ...]}: time spans (s since start) not sent (gaps)."""

    def __init__(
        self,
        port: int,
        *,
        host: str = "127.0.0.1",
        routers: int = 1,
        rate_hz: float = 100.0,
        duration_s: float | None = None,
        packets: dict[str, tuple[np.ndarray, list[np.ndarray]]] | None = None,
        skip: dict[int, Sequence[tuple[float, float]]] | None = None,
    ) -> None:
        self.addr = (host, int(port))
        self.rate_hz = float(rate_hz)
        self.duration_s = duration_s
        pk = packets if packets is not None else simulated_packets(routers, 4.0)
        self.streams = [pk[r][1] for r in sorted(pk)][:routers]
        if len(self.streams) < routers:
            raise ValueError(f"{routers} routers asked, CSI for {len(self.streams)} given")
        self.datagrams = [[encode_relay_datagram(c) for c in s] for s in self.streams]
        self.skip = {int(k): list(v) for k, v in (skip or {}).items()}
        self.socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(routers)]
        for s in self.socks:
            s.bind((host, 0))
        self.source_ports = [s.getsockname()[1] for s in self.socks]  # the routers' addresses seen by a receiver
        self.stats = SenderStats()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sim-routers", daemon=True)
        self.t0 = 0.0

    def start(self) -> SimulatedRouters:
        self.t0 = time.perf_counter()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        self._close()

    def _close(self) -> None:
        for s in self.socks:
            s.close()

    def wait(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _skipped(self, r: int, t: float) -> bool:
        return any(a <= t < b for a, b in self.skip.get(r, ()))

    def _run(self) -> None:
        try:
            self._send()
        finally:
            self._close()

    def _send(self) -> None:
        period = 1.0 / self.rate_hz
        k = 0
        while not self._stop.is_set():
            due = self.t0 + k * period
            if self.duration_s is not None and k * period >= self.duration_s:
                break
            wait = due - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            for r, sock in enumerate(self.socks):
                if self._skipped(r, k * period):
                    self.stats.skipped[r] = self.stats.skipped.get(r, 0) + 1
                    continue
                dg = self.datagrams[r][k % len(self.datagrams[r])]
                try:
                    sock.sendto(dg, self.addr)
                    self.stats.sent[r] = self.stats.sent.get(r, 0) + 1
                except OSError:
                    pass
            k += 1


def main(argv: list[str] | None = None) -> int:
    """python -m wdp.recording.sim_router --port 5500 [--routers 1] [--seconds 60]: stand-in routers."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m wdp.recording.sim_router", description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5500)
    ap.add_argument("--routers", type=int, default=1)
    ap.add_argument("--rate", type=float, default=100.0, help="packets per second per router")
    ap.add_argument("--seconds", type=float, default=None, help="stop after this long (default: until Ctrl-C)")
    ap.add_argument("--people", type=int, default=1, help="people in the simulated room")
    args = ap.parse_args(argv)
    pk = simulated_packets(args.routers, 10.0, people=args.people)
    s = SimulatedRouters(
        args.port, host=args.host, routers=args.routers, rate_hz=args.rate, duration_s=args.seconds, packets=pk
    ).start()
    print(f"sending {args.routers} router(s) x {args.rate:g} Hz to {args.host}:{args.port}", flush=True)
    try:
        s.wait()
    except KeyboardInterrupt:
        s.stop()
    print(f"sent {sum(s.stats.sent.values())} datagrams", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
