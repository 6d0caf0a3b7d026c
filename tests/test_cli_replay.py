from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
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


def test_replay_errors_name_the_cli_flag_and_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from wdp.csi import UnknownFormatError, detect_format

    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x00\x01garbage" * 100)
    for command in ("replay", "sense"):
        assert main([command, str(garbage)]) == 2
        err = capsys.readouterr().err
        assert "pass --format" in err and "format=" not in err, err
        assert main([command, str(tmp_path)]) == 2
        assert f"{tmp_path} is a directory" in capsys.readouterr().err
    # the library's own message names its own keyword
    with pytest.raises(UnknownFormatError, match="pass format="):
        detect_format(garbage)


@pytest.mark.parametrize("fmt", ["esp32", "intel5300", "nexmon_pcap", "atheros", "picoscenes"])
def test_replay_random_bytes_fail_alike_in_every_format(
    fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    noise = tmp_path / "noise.bin"
    noise.write_bytes(np.random.default_rng(12).bytes(20_000))
    assert main(["replay", "-q", "--format", fmt, str(noise)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("wdp replay: "), err
    if fmt in ("esp32", "intel5300"):  # parsers that skip what they cannot read: the stats say why
        assert f"no CSI frames in {noise} as {fmt}" in err and "records" in err and "non-CSI skipped" in err
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert main(["replay", "-q", "--format", "esp32", str(empty)]) == 2
    assert "an empty file" in capsys.readouterr().err


def test_replay_nexmon_residual_phase_std_is_an_angle(csi_dir: Path) -> None:
    # 256 subcarriers unwrapped through nulls and noise drift by whole turns: a linear std gave 10.9 rad here
    s = summarize_capture(csi_dir / "nexmon" / "nexmon_bcm4339_80mhz_csikit_example.pcap")
    assert s.frames == 2850 and s.residual_phase_std is not None
    assert 0.5 < s.residual_phase_std <= 2 * np.pi
    # the Intel 5300 phase stays well below a uniform phase's spread
    s = summarize_capture(csi_dir / "intel5300" / "intel5300_csiread_monitor_ch64_0x5_3000pkts.dat")
    assert s.residual_phase_std is not None and s.residual_phase_std < 1.0


def test_circular_phase_std_ignores_whole_turns_and_null_subcarriers() -> None:
    from wdp.cli import circular_phase_std

    rng = np.random.default_rng(3)
    phase = rng.normal(0.0, 0.1, (4, 64, 2, 1))
    turns = phase + 2 * np.pi * rng.integers(-5, 6, phase.shape)
    valid = np.ones(phase.shape, bool)
    assert circular_phase_std(turns, valid) == pytest.approx(circular_phase_std(phase, valid))
    assert np.all(np.abs(circular_phase_std(phase, valid) - 0.1) < 0.03)
    valid[:, :8] = False
    turns[:, :8] = rng.uniform(-np.pi, np.pi, (4, 8, 2, 1))  # nulls: phase of 0 + 0j means nothing
    assert np.all(circular_phase_std(turns, valid) < 0.15)
    valid[0] = False
    assert np.isnan(circular_phase_std(turns, valid)[0])
