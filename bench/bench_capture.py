"""Live UDP capture throughput on loopback: a separate sender process (sendmmsg through ctypes, C speed)
against wdp's native receiver thread + ring, with a Python consumer draining zero-copy batches.

Steps: 10k packets/s paced for 3 s (target: zero loss); a ladder of paced rates to find the highest rate
received with zero loss; an unpaced blast for the maximum received rate. Payloads are real nexmon_csi UDP
payloads (bcm43455c0, 80 MHz, 1042 B) when the nexmon_udp parser is built in, else wdp "raw" relay datagrams
of 128 x 1 x 1 complex64 (1040 B, about the same size).

Loss is counted where it happens: in the kernel (socket receive buffer full: /proc/net/udp "drops" of our
socket) and in the ring (consumer too slow: stats.dropped_overflow).
Usage: python bench/bench_capture.py [--shared ../shared/data/csi] [--quick]
"""

from __future__ import annotations

import argparse
import ctypes
import multiprocessing as mp
import socket
import struct
import time
from pathlib import Path

import numpy as np

from wdp import _native
from wdp.csi import UdpSource, encode_relay_datagram

HERE = Path(__file__).resolve().parent
SEND_BATCH = 64


# ---------------------------------------------------------------- sender process (sendmmsg via ctypes)


class _IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
                ("msg_iov", ctypes.POINTER(_IoVec)), ("msg_iovlen", ctypes.c_size_t),
                ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int)]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint)]


def send_process(port: int, payloads: list[bytes], rate: float, duration: float, conn) -> None:  # noqa: ANN001
    """Send payloads (cycled) to 127.0.0.1:port for duration s at rate packets/s (0: as fast as possible)."""
    libc = ctypes.CDLL(None, use_errno=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    sock.connect(("127.0.0.1", port))
    k = len(payloads)
    bufs = [ctypes.create_string_buffer(p, len(p)) for p in payloads]
    iov = (_IoVec * k)(*[_IoVec(ctypes.cast(b, ctypes.c_void_p), len(p))
                         for b, p in zip(bufs, payloads, strict=True)])
    msgs = (_MMsgHdr * k)()
    for i in range(k):
        msgs[i].msg_hdr.msg_iov = ctypes.pointer(iov[i])
        msgs[i].msg_hdr.msg_iovlen = 1
    size = ctypes.sizeof(_MMsgHdr)
    base = ctypes.addressof(msgs)
    sent = 0
    t0 = time.perf_counter()
    while True:
        elapsed = time.perf_counter() - t0
        if elapsed >= duration:
            break
        if rate > 0:
            due = int(elapsed * rate) + 1 - sent
            if due <= 0:
                time.sleep(min(0.0005, (sent + 1) / rate - elapsed))
                continue
        else:
            due = SEND_BATCH
        pos = sent % k
        n = min(due, SEND_BATCH, k - pos)
        got = libc.sendmmsg(sock.fileno(), ctypes.c_void_p(base + pos * size), n, 0)
        if got < 0:
            err = ctypes.get_errno()
            if err in (11, 105):  # EAGAIN / ENOBUFS: the kernel is full, try again
                continue
            raise OSError(err, "sendmmsg")
        sent += got
    conn.send((sent, time.perf_counter() - t0))
    sock.close()


# ---------------------------------------------------------------- receiver side


def socket_drops(port: int) -> int:
    """Datagrams the kernel dropped for our socket (receive buffer full), from /proc/net/udp{,6}."""
    total = 0
    for name in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if int(f[1].rsplit(":", 1)[1], 16) == port:
                total += int(f[-1])
    return total


def run_step(payloads: list[bytes], fmt: str, shape: tuple[int, int, int], rate: float, duration: float,
             senders: int = 1) -> dict:
    ctx = mp.get_context("spawn")
    with UdpSource(host="127.0.0.1", port=0, format=fmt, shape=shape, capacity=16384) as src:
        pipes, procs = [], []
        for _ in range(senders):
            parent, child = ctx.Pipe()
            procs.append(ctx.Process(target=send_process,
                                     args=(src.port, payloads, rate / senders, duration, child)))
            pipes.append(parent)
        for proc in procs:
            proc.start()
        received = 0
        first_ns = last_ns = 0
        checksum = 0.0
        idle_since = None
        while True:
            batch = src.read(timeout=0.05)
            if len(batch):
                with batch:
                    received += len(batch)
                    if not first_ns:
                        first_ns = int(batch.arrival_ns[0])
                    last_ns = int(batch.arrival_ns[-1])
                    checksum += float(batch.csi[:, 0].real.sum())  # touch the data like a consumer would
                idle_since = None
                continue
            if any(proc.is_alive() for proc in procs):
                continue
            # Sender done: drain what is still in flight, then stop.
            idle_since = idle_since or time.perf_counter()
            if time.perf_counter() - idle_since > 0.3:
                break
        for proc in procs:
            proc.join()
        if any(proc.exitcode != 0 for proc in procs):
            raise RuntimeError("a sender process failed (see its traceback above)")
        results = [parent.recv() for parent in pipes]
        sent = sum(n for n, _ in results)
        send_s = max(t for _, t in results)
        kernel_drops = socket_drops(src.port)
        s = src.stats
    span = (last_ns - first_ns) / 1e9
    return {
        "rate": rate, "sent": sent, "send_rate": sent / send_s, "received": received, "packets": s.packets,
        "malformed": s.malformed, "kernel_drops": kernel_drops, "ring_drops": s.dropped_overflow,
        "lost": sent - received, "recv_rate": received / span if span > 0 else float("nan"),
    }


def payload_set(shared: Path) -> tuple[list[bytes], str, tuple[int, int, int], str]:
    try:
        _native.DatagramParser("nexmon_udp")
    except Exception:  # parser branch not merged yet
        rng = np.random.default_rng(0)
        size = (64, 128, 1, 1)
        frames = (rng.normal(size=size) + 1j * rng.normal(size=size)).astype(np.complex64)
        return ([encode_relay_datagram(f, i * 0.01) for i, f in enumerate(frames)], "raw", (128, 1, 1),
                "wdp raw relay datagrams, 128x1x1 complex64, 1040 B")
    pcap = (shared / "nexmon" / "nexmon_bcm43455c0_80mhz_csikit_example.pcap").read_bytes()
    payloads, off = [], 24
    while off + 16 <= len(pcap):
        incl = struct.unpack_from("<I", pcap, off + 8)[0]
        pkt = pcap[off + 16: off + 16 + incl]
        off += 16 + incl
        payload = pkt[14 + (pkt[14] & 0x0F) * 4 + 8:]
        if len(payload) == 1042:
            payloads.append(payload)
    what = f"real nexmon_csi payloads (bcm43455c0 80 MHz, {len(payloads)} x 1042 B)"
    return payloads, "nexmon_udp", (256, 1, 1), what


def row(label: str, r: dict) -> str:
    loss = r["lost"] / r["sent"] * 100 if r["sent"] else 0.0
    return (f"{label:<22} {r['sent']:>9d} {r['send_rate']:>11.0f} {r['received']:>9d} "
            f"{r['recv_rate']:>11.0f} {r['lost']:>7d} {loss:>6.2f}% {r['kernel_drops']:>8d} "
            f"{r['ring_drops']:>6d}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared" / "data" / "csi")
    ap.add_argument("--quick", action="store_true", help="shorter steps")
    ap.add_argument("--senders", type=int, default=2, help="sender processes in the unpaced blast")
    args = ap.parse_args()
    payloads, fmt, shape, what = payload_set(args.shared)
    step_s = 0.7 if args.quick else 1.5
    print(f"payloads: {what}; receiver: UdpSource(format={fmt!r}, shape={shape}, capacity=16384)")
    header = (f"{'step':<22} {'sent':>9} {'sent/s':>11} {'received':>9} {'recv/s':>11} {'lost':>7} "
              f"{'loss':>7} {'kernel':>8} {'ring':>6}")
    print(header)
    paced = run_step(payloads, fmt, shape, 10_000, 3.0)
    print(row("paced 10k/s, 3 s", paced))
    best_zero = paced["send_rate"] if paced["lost"] == 0 else 0.0
    for rate in (25_000, 50_000, 100_000, 200_000, 400_000, 800_000):
        r = run_step(payloads, fmt, shape, rate, step_s)
        print(row(f"paced {rate // 1000}k/s", r))
        if r["lost"] == 0:
            best_zero = max(best_zero, r["send_rate"])
        if r["lost"] > 0 or r["send_rate"] < 0.9 * rate:  # lossy, or the paced sender cannot go faster
            break
    blast = run_step(payloads, fmt, shape, 0, step_s * 2, senders=args.senders)
    print(row(f"unpaced x{args.senders} senders", blast))
    if blast["lost"] == 0:  # the receiver kept up with everything the senders could produce
        best_zero = max(best_zero, blast["recv_rate"])
    print()
    print(f"10k/s paced for 3 s: received {paced['received']}/{paced['sent']} "
          f"({'zero loss' if paced['lost'] == 0 else str(paced['lost']) + ' lost'})")
    print(f"highest rate received with zero loss: {best_zero:,.0f} packets/s")
    print(f"maximum received rate (unpaced senders at {blast['send_rate']:,.0f}/s): "
          f"{blast['recv_rate']:,.0f} packets/s ({blast['lost']} of {blast['sent']} lost: "
          f"{blast['kernel_drops']} in the kernel, {blast['ring_drops']} in the ring)")
    print("kernel = datagrams dropped by the socket (receive buffer full); ring = frames dropped because the "
          "Python consumer fell behind. Loopback, sender and receiver share this machine's cores.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
