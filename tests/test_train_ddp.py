"""trainer=ddp: two CPU processes under torchrun (gloo), the way a multi-node run starts on each node."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from contract_data import write_dataset_dirs

TORCHRUN = Path(sys.executable).with_name("torchrun")


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun not installed next to the interpreter")
def test_ddp_two_cpu_processes_train(tmp_path: Path) -> None:
    from server_process import free_port

    data = write_dataset_dirs(tmp_path / "data", {"train": 16, "val": 8, "test": 8}, max_people=2)
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WDP_DATA_DIR": str(tmp_path / "data")}
    cmd = [
        str(TORCHRUN),
        "--nnodes=1",
        "--nproc-per-node=2",
        "--master-addr=127.0.0.1",
        f"--master-port={free_port()}",
        "-m",
        "wdp.train",
        "experiment=smoke",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.max_epochs=2",
        f"data.root={data}",
        f"paths.output_dir={out}",
        "export.enabled=false",
        "plots.enabled=false",
        "test=false",
    ]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    log = res.stdout[-4000:] + res.stderr[-4000:]
    assert res.returncode == 0, log
    assert "GLOBAL_RANK: 1" in log or "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in log, log
    ckpts = list(out.rglob("*.ckpt"))
    assert ckpts, log  # rank 0 saved the checkpoint of the data-parallel run
