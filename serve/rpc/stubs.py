"""Python stubs generated from proto/wdp/v1/wdp.proto with grpcio-tools at first use, into a cache keyed by the
.proto's hash (nothing generated is committed; a changed .proto regenerates).

The .proto is found beside the package (a wheel ships it as ``wdp/proto``) or in the source checkout
(``proto/`` at the repository root, for the editable install). Cache: ``$WDP_CACHE_DIR/grpc``, else
``$XDG_CACHE_HOME/wdp/grpc``, else ``~/.cache/wdp/grpc``. The modules are imported under their own top-level
names ``wdp_v1_pb2`` / ``wdp_v1_pb2_grpc`` (generating under the proto path ``wdp/v1`` would clash with the
``wdp`` package).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

PROTO_REL = Path("wdp") / "v1" / "wdp.proto"
MODULE = "wdp_v1"  # generated: wdp_v1_pb2.py, wdp_v1_pb2_grpc.py


class Stubs(NamedTuple):
    pb2: ModuleType
    grpc: ModuleType
    proto_path: Path


def proto_root() -> Path:
    """The directory holding ``wdp/v1/wdp.proto``."""
    import wdp

    here = Path(wdp.__file__).resolve().parent
    candidates = [here / "proto", Path(__file__).resolve().parents[2] / "proto", here.parents[1] / "proto"]
    for c in candidates:
        if (c / PROTO_REL).is_file():
            return c
    raise FileNotFoundError(f"{PROTO_REL} not found in {', '.join(map(str, candidates))}")


def cache_dir() -> Path:
    if os.environ.get("WDP_CACHE_DIR"):
        return Path(os.environ["WDP_CACHE_DIR"]) / "grpc"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "wdp" / "grpc"


def generate(proto: Path, out: Path) -> None:
    """Run protoc (grpcio-tools) on ``proto`` into ``out`` (made atomically: a temp dir renamed into place)."""
    from grpc_tools import protoc

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".gen-", dir=out.parent))
    try:
        src = tmp / f"{MODULE}.proto"
        shutil.copyfile(proto, src)
        include = str(Path(protoc.__file__).parent / "_proto")  # the well-known types
        rc = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{tmp}",
                f"-I{include}",
                f"--python_out={tmp}",
                f"--grpc_python_out={tmp}",
                str(src),
            ]
        )
        if rc != 0:
            raise RuntimeError(f"protoc failed on {proto} (exit {rc})")
        try:
            tmp.rename(out)
        except OSError:  # another process generated it first
            if not (out / f"{MODULE}_pb2.py").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _import(name: str, path: Path) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before exec: the _grpc module imports the _pb2 one by this name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


@functools.cache
def load() -> Stubs:
    """The generated message and service modules (generated on the first call for this .proto)."""
    proto = proto_root() / PROTO_REL
    digest = hashlib.sha256(proto.read_bytes()).hexdigest()[:16]
    out = cache_dir() / digest
    if not (out / f"{MODULE}_pb2_grpc.py").is_file():
        generate(proto, out)
    pb2 = _import(f"{MODULE}_pb2", out / f"{MODULE}_pb2.py")
    grpc_mod = _import(f"{MODULE}_pb2_grpc", out / f"{MODULE}_pb2_grpc.py")
    return Stubs(pb2, grpc_mod, proto)
