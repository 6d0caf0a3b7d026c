from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from wdp.cli import main, summarize_capture


def test_replay_summary_counts_bad_line_and_sanitizes(csi_dir: Path) -> None:
    s = summarize_capture(csi_dir / "esp32" / "esp32_csikit_100hz_pitraffic_one_bad_line.csv")
    assert (s.format, s.frames, s.malformed) == ("esp32", 833, 1)
    assert s.shapes == {"64x1x1": 833}
    assert s.sanitized == 833
    assert s.rate_hz is not None and 10 < s.rate_hz < 200


def test_replay_intel_skips_non_csi_records(csi_dir: Path) -> None:
    s = summarize_capture(csi_dir / "intel5300" / "intel5300_csiread_monitor_ch64_0x5_3000pkts.dat")
    assert (s.frames, s.skipped, s.malformed) == (2998, 2998, 0)
    assert s.rate_hz == pytest.approx(1000, rel=0.01)  # captured at 1000 packets/s (MANIFEST)
    # Hampel floors keep the outlier filter to real outliers (< 1% of the 269,820 amplitude samples).
    assert s.hampel_replaced < 0.01 * 2998 * 90


def test_replay_cli_json_and_errors(csi_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = csi_dir / "atheros" / "atheros_csiread_ath_csi_1_3rx2tx.dat"
    out = subprocess.run(
        [sys.executable, "-m", "wdp", "replay", "--json", str(path)], capture_output=True, text=True, check=True
    ).stdout
    summary = json.loads(out)
    assert summary["format"] == "atheros" and summary["frames"] == 401 and summary["shapes"] == {"56x3x2": 401}

    assert main(["replay", str(tmp_path / "missing.dat")]) == 2
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x00\x01garbage" * 100)
    assert main(["replay", str(garbage)]) == 2
    assert "cannot tell the CSI format" in capsys.readouterr().err


def test_replay_reads_an_espectre_npz_and_the_replay_source_streams_it():
    from wdp.csi.sources import ReplaySource
    from wdp.data.real import fixtures_dir

    npz = fixtures_dir() / "D3/micro-espectre/data/test/test_c3_64sc_20260329_130804.npz"
    out = subprocess.run([sys.executable, "-m", "wdp", "replay", str(npz)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "espectre_npz" in out.stdout and "6068" in out.stdout
    src = ReplaySource(npz, realtime=False)
    src.open(0.0)
    n = 0
    while not src.exhausted:
        n += sum(len(b) for b in src.read(0.1))
    src.close()
    assert n == 6068
