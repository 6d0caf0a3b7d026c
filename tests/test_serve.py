"""`wdp serve`: Hydra composition of conf/serve.yaml, building the engine from it, running until a signal."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from engine_fixtures import cached_tiny_model

from wdp.cli import main
from wdp.csi.sources import LiveUdpSource, ReplaySource, SimulatorSource
from wdp.engine.config import (
    build_engine,
    compose_serve_config,
    engine_config,
    load_model,
    room_warnings,
    serve,
    trained_rooms,
)
from wdp.store import Store

REPO = Path(__file__).resolve().parents[1]
INTEL = "intel5300/intel5300_csiread_monitor_ch64_0x5_3000pkts.dat"


def test_compose_defaults_and_overrides(tmp_path) -> None:
    cfg = compose_serve_config()
    assert cfg.source._target_ == "wdp.csi.sources.SimulatorSource" and cfg.detector == "model"
    assert cfg.window.hop is None and cfg.store.path == "wdp_history.duckdb"  # None: 20 windows/s at the card rate
    cfg = compose_serve_config(
        [
            "source=replay",
            f"source.path={tmp_path / 'x.dat'}",
            "source.realtime=false",
            "engine.max_batch=4",
            "detector=ground_truth",
        ]
    )
    assert cfg.source._target_ == "wdp.csi.sources.ReplaySource" and cfg.source.realtime is False
    assert cfg.engine.max_batch == 4
    assert compose_serve_config(["source=live", "source.port=0"]).source.port == 0
    with pytest.raises(Exception, match="nonsense"):
        compose_serve_config(["source=nonsense"])


def test_build_engine_from_config(csi_dir, tmp_path_factory) -> None:
    model = cached_tiny_model(tmp_path_factory)
    zones = "[{id: door, name: Door, polygon: [[0, 0], [1, 0], [1, 1]], restricted: true}]"
    cfg = compose_serve_config(
        [
            f"model.path={model}",
            "engine.fusion_wait_s=0.05",
            "window.max_gap_s=0.2",
            f"zones={zones}",
            "+analytics.falls.trigger_speed=0.7",
        ]
    )
    engine = build_engine(cfg)
    src = engine.sources[0]
    assert isinstance(src, SimulatorSource) and src.router_ids == ["sim-0"] and src.room_id == 101
    assert engine.config.fusion_wait_s == 0.05 and engine.window_spec.max_gap_s == 0.2
    assert engine.model.info.name == "wdpnet" and engine.pipeline.falls.config.trigger_speed == 0.7
    assert [z.id for z in engine.pipeline.zones.zones] == ["door"]
    cfg = compose_serve_config(
        ["source=replay", f"source.path={csi_dir / INTEL}", "detector=model", f"model.path={model}"]
    )
    assert isinstance(build_engine(cfg).sources[0], ReplaySource)
    cfg = compose_serve_config(
        ["source=live", "source.port=0", f"model.path={model}", "source.routers=[{id: a, host: 10.0.0.2}]"]
    )
    live = build_engine(cfg).sources[0]
    assert isinstance(live, LiveUdpSource) and [r.id for r in live.routers()] == ["a"]


def test_serve_warns_when_the_simulated_room_is_not_the_models(tmp_path, tmp_path_factory, caplog) -> None:
    """A model card lists the rooms its net was trained in; a simulator source in another room gets a warning
    at start (few detections expected), the matching room none."""
    model = tmp_path / "model"
    shutil.copytree(cached_tiny_model(tmp_path_factory), model)
    card = json.loads((model / "model_card.json").read_text())
    assert trained_rooms(card) is None  # the tiny model's card says nothing: no warning possible
    card["training"] = {"data": {"splits": {"train": {"rooms": [0, 1, 2]}}}}
    (model / "model_card.json").write_text(json.dumps(card))
    cfg = compose_serve_config([f"model.path={model}"])
    runner = load_model(cfg, engine_config(cfg))
    assert trained_rooms(runner.model.card) == {0, 1, 2}
    caplog.set_level(logging.WARNING, logger="wdp.engine.config")
    build_engine(cfg, model=runner)
    assert any("room 101, which it never saw" in r.getMessage() for r in caplog.records)
    assert room_warnings(runner, [SimulatorSource(room_id=2)]) == []
    assert room_warnings(None, [SimulatorSource()]) == []


def test_serve_replays_a_capture_into_the_store(csi_dir, tmp_path, tmp_path_factory) -> None:
    db = tmp_path / "h.duckdb"
    cfg = compose_serve_config(
        [
            "source=replay",
            f"source.path={csi_dir / INTEL}",
            "source.realtime=false",
            f"model.path={cached_tiny_model(tmp_path_factory)}",
            f"store.path={db}",
        ]
    )
    out = io.StringIO()
    assert serve(cfg, out=out, install_signals=False) == 0
    assert "stopped (end of stream); 60 frames" in out.getvalue() and "stored 60 frames" in out.getvalue()
    with Store(db, read_only=True) as store:
        assert store.cursor().execute("SELECT count(*), min(source) FROM pose_frames").fetchone() == (
            60,
            "replay",
        )


def test_serve_reports_configuration_errors(tmp_path, capsys) -> None:
    args = ["serve", "--engine-only", "model.name=no-such-model", f"model.models_dir={tmp_path}", "store.path=null"]
    assert main(args) == 2
    assert "no model 'no-such-model'" in capsys.readouterr().err
    assert main(["serve", "--engine-only", "source=replay", "store.path=null", "detector=ground_truth"]) == 2
    assert "Missing mandatory value" in capsys.readouterr().err
    assert main(["serve", "--engine-only", "source=nonsense"]) == 2


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_wdp_serve_runs_until_signalled_and_flushes(tmp_path, tmp_path_factory, sig: signal.Signals) -> None:
    """The real command: the simulator default with a model, stopped by a signal; the store has everything."""
    db = tmp_path / "serve.duckdb"
    env = {**os.environ, "PYTHONPATH": str(REPO / "python"), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "wdp",
        "serve",
        "--engine-only",
        f"model.path={cached_tiny_model(tmp_path_factory)}",
        f"store.path={db}",
        "store.flush_interval_s=60",
        "status_interval_s=0",
        "source.speed=2",
    ]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("wdp serve: source simulator"), first + proc.stderr.read()
        time.sleep(1.5)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert f"stopped (signal {sig.name})" in out
    with Store(db, read_only=True) as store:
        cur = store.cursor()
        frames, sources = cur.execute("SELECT count(*), list(DISTINCT source) FROM pose_frames").fetchone()
        assert frames > 20 and sources == ["simulator"]  # flush interval 60 s: only the stop flushed them
        kinds = {r[0] for r in cur.execute("SELECT DISTINCT type FROM events").fetchall()}
        assert {"system.started", "system.stopped", "router.connected", "router.disconnected"} <= kinds
    assert f"stored {frames} frames" in out


def test_wdp_serve_prints_a_status_line_every_status_interval(capfd) -> None:
    base = ["serve", "--engine-only", "detector=ground_truth", "store.path=null", "duration_s=1.6"]
    assert main([*base, "status_interval_s=0.25"]) == 0
    out, err = capfd.readouterr()
    lines = [x for x in err.splitlines() if x.startswith("wdp serve: [simulator]")]
    assert len(lines) >= 3, err
    for field in (" fps, ", " frames, ", "/1 connected (sim-0:", "motion sim-0:", "queue ", "dropped "):
        assert field in lines[-1], lines[-1]
    assert any("routers 1/1 connected" in x for x in lines), lines
    assert "stopped (duration reached)" in out
    assert main([*base, "status_interval_s=0"]) == 0
    assert "wdp serve: [" not in capfd.readouterr().err


def test_wdp_serve_with_the_api_prints_the_status_line(tmp_path) -> None:
    """The default `wdp serve` (engine + API in uvicorn) prints it too: the engine is built by the app."""
    from server_process import free_port, stop_process

    env = {**os.environ, "WDP_DEV_MODE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "wdp", "serve", "--port", str(free_port()), "detector=ground_truth"]
    cmd += [f"store.path={tmp_path / 'h.duckdb'}", "status_interval_s=0.3"]
    log = tmp_path / "server.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=fh)
    try:
        deadline = time.monotonic() + 60
        while "wdp serve: [simulator]" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "wdp serve: [simulator]" in log.read_text(), log.read_text()
    finally:
        stop_process(proc, timeout=20)


def test_history_store_memory_is_bounded_by_config(tmp_path):
    """DuckDB's buffer pool defaults to 80 % of RAM; the serve config bounds it (soak: RSS stays flat)."""
    from wdp.engine.config import compose_serve_config, duckdb_config
    from wdp.store import Store

    cfg = compose_serve_config(["store.duckdb_memory_limit=128MB"])
    conf = duckdb_config(cfg.store)
    assert conf == {"threads": 1, "memory_limit": "128MB"}
    with Store(tmp_path / "h.duckdb", config=conf) as store:
        limit = store.cursor().execute("SELECT current_setting('memory_limit')").fetchone()[0]
    assert limit == "122.0 MiB"  # 128 MB as DuckDB reports it (MiB)
