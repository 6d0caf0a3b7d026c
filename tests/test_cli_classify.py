"""`wdp classify FILE [--model M] [--format F] [--mac MAC] [--json]`: one record per model window of the capture's
link (its dominant transmitter), the shipped model picked by frame shape when none is given, and clear errors
(exit 3) when no model takes the capture's frames."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from activity_support import motion_model

from wdp.activity import window_ends
from wdp.activity_offline import NoMatchingModel, classify_capture
from wdp.cli import main
from wdp.data.real import fixtures_dir
from wdp.sensing.offline import link_frames

D1_FALL = "D1/Original Data/0512/fall down/qiang_falldown1.dat"  # Intel 5300, 30x3x1, one transmitter
D2_STANDUP = "D2/standup_user1_rm1/standup_user1_rm1_1.pcap"  # nexmon 256x1x1: 417 frames of the link, 83 stray
D2_LINK, D2_STRAY = "b8:27:eb:03:e1:9f", "ec:41:18:4c:1f:6a"
D4_EMPTY = "D4/dataset_update/training/kosong/kosong_22.csv"  # ESP32 64x1x1: no shipped model family
KEYS = {"t", "activity", "p_activity", "p_fall", "fall"}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "intel": motion_model(root / "intel", (30, 3, 1), rate_hz=20.0, window_s=4.0, hop_s=1.0),
        "nexmon": motion_model(root / "nexmon", (256, 1, 1), rate_hz=50.0, window_s=2.0, hop_s=0.5, bins=4),
    }


def test_json_records_one_per_window(models: dict[str, Path]) -> None:
    path = fixtures_dir() / D1_FALL
    out = subprocess.run(
        [sys.executable, "-m", "wdp", "classify", str(path), "--model", str(models["intel"]), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    recs = [json.loads(line) for line in out.stdout.splitlines()]
    link = link_frames(path)
    ends = window_ends(float(link.times[-1]), 4.0, 1.0)
    assert len(recs) == len(ends) and all(set(r) == KEYS for r in recs)
    assert [r["t"] for r in recs] == pytest.approx(ends.tolist(), abs=1e-3)
    assert all(
        r["activity"] in ("still", "fall") and 0 <= r["p_fall"] <= 1 and 0.5 <= r["p_activity"] <= 1 for r in recs
    )
    assert all(r["fall"] == (r["p_fall"] >= 0.5) for r in recs)
    assert "qiang_falldown1.dat: intel5300, link no MAC in this format, frames 313 of 313" in out.stderr


def test_table_and_the_transmitter_filter(models: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    path = str(fixtures_dir() / D2_STANDUP)
    assert main(["classify", path, "--model", str(models["nexmon"])]) == 0
    out = capsys.readouterr()
    assert "t (s)" in out.out and "activity" in out.out
    assert f"link {D2_LINK}, frames 417 of 500 (other senders 83" in out.err  # the dominant sender only
    notes: list[str] = []
    stray = list(classify_capture(path, model=models["nexmon"], mac=D2_STRAY.upper(), notes=notes))
    assert f"link {D2_STRAY}, frames 83 of 500 (other senders 417" in notes[0]
    assert len(stray) == len(window_ends(float(link_frames(path, mac=D2_STRAY).times[-1]), 2.0, 0.5))
    assert main(["classify", path, "--model", str(models["nexmon"]), "--mac", "00:11:22:33:44:55"]) == 2
    assert "no frame from 00:11:22:33:44:55" in capsys.readouterr().err


def test_no_matching_model_is_a_clear_error(models: dict[str, Path], tmp_path: Path, capsys) -> None:
    # no shipped model for ESP32 frames
    assert main(["classify", str(fixtures_dir() / D4_EMPTY)]) == 3
    err = capsys.readouterr().err
    assert "no shipped activity model matches frames of shape 64x1x1" in err and "--model" in err
    # a model for other hardware
    assert main(["classify", str(fixtures_dir() / D1_FALL), "--model", str(models["nexmon"])]) == 3
    assert "expects frames of shape 256x1x1" in capsys.readouterr().err
    # nothing shipped at all
    with pytest.raises(NoMatchingModel, match=r"shape 30x3x1 .*shipped: none"):
        list(classify_capture(fixtures_dir() / D1_FALL, shipped_root=tmp_path))
    # the shipped model whose card matches is picked without --model
    motion_model(tmp_path / "nexmon80", (256, 1, 1), rate_hz=50.0, window_s=2.0, hop_s=0.5, bins=4)
    motion_model(tmp_path / "intel5300", (30, 3, 1))
    notes: list[str] = []
    recs = list(classify_capture(fixtures_dir() / D1_FALL, shipped_root=tmp_path, notes=notes))
    assert recs and f"model {tmp_path / 'intel5300'} (test:" in notes[0]
    assert main(["classify", str(tmp_path / "missing.dat")]) == 2
    assert "no such file" in capsys.readouterr().err
