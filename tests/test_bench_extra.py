"""The benchmarks' Python baselines are installable: every third-party import under bench/ is a dependency of
wdp or of its `bench` extra, and the README says to install that extra."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# import name -> distribution, where they differ
DISTRIBUTION = {
    "jwt": "pyjwt",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "pytorch_lightning": "pytorch-lightning",
    "hydra": "hydra-core",
    "sklearn": "scikit-learn",
    "grpc": "grpcio",
}
# imported only inside bench_parse.py's own venv (CSIKit needs numpy<1.24), not from .venv
OWN_VENV = {"CSIKit"}


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


def test_every_bench_import_is_installed_by_the_bench_extra() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["bench"]}
    local = {p.stem for d in ("bench", "tests") for p in (REPO / d).glob("*.py")} | {"wdp", "bench"}
    missing = {}
    for path in sorted((REPO / "bench").glob("*.py")):
        for mod in _imports(path) - local - set(sys.stdlib_module_names) - OWN_VENV:
            dist = DISTRIBUTION.get(mod, mod).lower().replace("_", "-")
            if dist not in declared:
                missing.setdefault(dist, []).append(path.name)
    assert not missing, f"bench/ imports what neither wdp nor wdp[bench] installs: {missing}"


def test_readme_benchmarks_start_with_the_install_line() -> None:
    section = (REPO / "README.md").read_text().split("\n## Benchmarks\n", 1)[1]
    assert "pip install -e .[bench]" in section.split("\n### ", 1)[0]
