"""CPU inference benchmark of both pose nets: eager vs TorchScript vs ONNX Runtime.

Latency at batch 1 (median ms per window) and throughput at batch 64 (windows/s), default model sizes, random
weights (speed does not depend on training). Ratios are against the named baseline: paper net, eager.

    PYTHONPATH=python python bench/bench_inference.py [--threads 2] [--repeats 30]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

import wdp

if importlib.util.find_spec("wdp.train") is None:  # source checkout: use the installed wheel's layout
    wdp.__path__.append(str(Path(__file__).resolve().parents[1]))

from wdp.model import NETS, load_exported  # noqa: E402
from wdp.model.spec import INPUT_SHAPE  # noqa: E402
from wdp.train.export import export_net  # noqa: E402

BASELINE = ("paper", "eager")


def _time(fn: Callable[[], object], repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime intra-op threads")
    ap.add_argument("--repeats", type=int, default=30, help="timed calls per case (batch 64: a third)")
    ap.add_argument(
        "--warmup", type=int, default=5, help="untimed calls first (TorchScript optimises after a few)"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, cls in NETS.items():
            net = cls().eval()
            export_net(net, Path(tmp) / name, net_name=name)
            runners = {
                "eager": lambda a, p, net=net: net(a, p),
                "torchscript": load_exported(Path(tmp) / name, backend="torchscript"),
                "onnxruntime": load_exported(Path(tmp) / name, backend="onnx"),
            }
            params = sum(p.numel() for p in net.parameters())
            for backend, run in runners.items():
                a1, p1 = torch.rand(1, *INPUT_SHAPE) + 0.5, torch.randn(1, *INPUT_SHAPE)
                a64, p64 = torch.rand(64, *INPUT_SHAPE) + 0.5, torch.randn(64, *INPUT_SHAPE)
                with torch.inference_mode():
                    lat = _time(lambda run=run, a=a1, p=p1: run(a, p), args.repeats, args.warmup)
                    big = _time(lambda run=run, a=a64, p=p64: run(a, p), max(3, args.repeats // 3), 1)
                rows.append((name, backend, params, lat * 1e3, 64 / big))

    base = next(r for r in rows if (r[0], r[1]) == BASELINE)
    print(
        f"CPU inference, {args.threads} thread(s), torch {torch.__version__}; baseline = {'/'.join(BASELINE)}"
    )
    head = (
        f"{'net':<8} {'backend':<12} {'params':>9} {'b1 ms':>8} {'x base':>7} {'b64 win/s':>10} {'x base':>7}"
    )
    print(head)
    print("-" * len(head))
    for name, backend, params, lat, thr in rows:
        print(
            f"{name:<8} {backend:<12} {params / 1e6:>8.2f}M {lat:>8.2f} {base[3] / lat:>6.2f}x "
            f"{thr:>10.0f} {thr / base[4]:>6.2f}x"
        )


if __name__ == "__main__":
    main()
