"""Command line: `wdp replay <capture>` (summarize a capture), `wdp sense <capture>` (training-free motion,
presence and breathing, one record a second), `wdp classify <capture>` (activities and falls, one record per
model window), `wdp serve [overrides]` (engine + API + dashboard), `wdp record OUT_DIR` (CSI + camera for
training a model for one's own room) and `wdp label OUT_DIR` (a pose teacher on the recorded camera frames)."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from wdp.csi import StreamReader, UnknownFormatError, detect_format, read_capture, stream_formats
from wdp.csi.capture_file import FILE_ONLY_FORMATS
from wdp.csi.sanitize import Sanitizer

CHUNK = 256 * 1024


class ReplaySummary(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    format: str
    frames: int
    records: int
    malformed: int
    skipped: int
    truncated: bool
    duration_s: float | None
    rate_hz: float | None
    shapes: dict[str, int]  # "subcarriers x rx x tx" -> frame count
    mean_amplitude: float | None
    sanitized: int  # frames through unwrap + linear phase removal + Hampel + amplitude normalization
    hampel_replaced: int  # amplitude samples the Hampel filter replaced as outliers
    # mean over frames of the circular std (radians, at most 2*pi) of the sanitized phase over the subcarriers
    # that carry signal, averaged over links
    residual_phase_std: float | None


def circular_phase_std(phase: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per frame of (N, S, R, T) phases: the circular std sqrt(-2 ln R) over the subcarriers (axis 1) where
    ``valid``, averaged over the links (nan where a frame has no valid subcarrier). Phase is an angle: an
    unwrapped residual that drifts by whole turns (nexmon's 256 subcarriers) is as spread as its wrapped
    value, not tens of radians."""
    w = valid.astype(np.float64)
    n = w.sum(axis=1)
    resultant = np.abs((w * np.exp(1j * phase)).sum(axis=1)) / np.maximum(n, 1)
    # R = 0 (perfect cancellation) would be infinite: cap at 2*pi (R ~ 1/sqrt(S) for a uniform phase ~ 2.4 rad)
    std = np.sqrt(-2.0 * np.log(np.clip(resultant, np.exp(-2.0 * np.pi**2), 1.0)))
    std = np.where(n > 0, std, np.nan).reshape(len(phase), -1)
    out = np.full(len(phase), np.nan)
    has = np.isfinite(std).any(axis=1)
    out[has] = np.nanmean(std[has], axis=1)
    return out


def summarize_capture(path: Path, fmt: str | None = None, progress: bool = False) -> ReplaySummary:
    """Stream a capture through the native parser and summarize it, without holding all frames."""
    fmt = fmt or detect_format(path)
    reader = StreamReader(fmt) if fmt not in FILE_ONLY_FORMATS else None
    shapes: Counter[str] = Counter()
    ts_first: float | None = None
    ts_last: float | None = None
    amp_sum = 0.0
    amp_n = 0
    # One stateful sanitizer per stream: frames of one shape from one (core, spatial stream) — nexmon
    # interleaves several streams in one capture, and mixing them would corrupt the Hampel history.
    sanitizers: dict[tuple[int, ...], Sanitizer] = {}
    phase_std_sum = 0.0
    phase_std_n = 0

    def consume(batch) -> None:
        nonlocal ts_first, ts_last, amp_sum, amp_n, phase_std_sum, phase_std_n
        by_stream: dict[tuple[int, ...], list[np.ndarray]] = {}
        cores, streams = batch.meta["core"], batch.meta["spatial_stream"]
        for i, arr in enumerate(batch.csi):
            shapes["x".join(map(str, arr.shape))] += 1
            amp_sum += float(np.abs(arr).mean()) if arr.size else 0.0
            amp_n += 1
            if arr.size:
                key = (*arr.shape, int(cores[i]), int(streams[i]))
                by_stream.setdefault(key, []).append(arr)
        for key, frames in by_stream.items():
            san = sanitizers.get(key) or sanitizers.setdefault(key, Sanitizer(frames[0].shape))
            block = np.stack(frames)
            if fmt.startswith("nexmon"):
                # nexmon stores subcarriers in FFT-bin order; unwrap needs them in frequency order.
                block = np.fft.fftshift(block, axes=1)
            _, phase = san.process_batch(block)
            std = circular_phase_std(phase, np.abs(block) > 0)
            std = std[np.isfinite(std)]
            phase_std_sum += float(std.sum())
            phase_std_n += len(std)
        ts = batch.meta["timestamp"]
        ts = ts[np.isfinite(ts)]
        if ts.size:
            ts_first = float(ts[0]) if ts_first is None else ts_first
            ts_last = float(ts[-1])

    if fmt in FILE_ONLY_FORMATS:  # a whole archive (ESPectre npz), not a byte stream
        whole = read_capture(path, fmt)
        consume(whole)
        st = whole.stats
    else:
        size = path.stat().st_size
        with path.open("rb") as fh, _progress(progress, size, path.name) as advance:
            while chunk := fh.read(CHUNK):
                consume(reader.feed(chunk))
                advance(len(chunk))
            consume(reader.finish())
        st = reader.stats
    duration = (ts_last - ts_first) if ts_first is not None and ts_last is not None else None
    rate = (st.frames - 1) / duration if duration and duration > 0 and st.frames > 1 else None
    return ReplaySummary(
        path=str(path),
        format=fmt,
        frames=st.frames,
        records=st.records,
        malformed=st.malformed,
        skipped=st.skipped,
        truncated=bool(st.truncated),
        duration_s=duration,
        rate_hz=rate,
        shapes=dict(shapes.most_common()),
        mean_amplitude=amp_sum / amp_n if amp_n else None,
        sanitized=sum(shapes.values()),
        hampel_replaced=sum(s.hampel_replaced for s in sanitizers.values()),
        residual_phase_std=phase_std_sum / phase_std_n if phase_std_n else None,
    )


class _progress:
    """A rich progress bar over bytes, or nothing when disabled (non-tty, --quiet)."""

    def __init__(self, enabled: bool, total: int, label: str) -> None:
        self.enabled = enabled
        self.total = total
        self.label = label

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

        self._p = Progress(
            "[bold]{task.description}", BarColumn(), DownloadColumn(), TimeRemainingColumn(), transient=True
        )
        self._p.__enter__()
        task = self._p.add_task(self.label, total=self.total)
        return lambda n: self._p.advance(task, n)

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self._p.__exit__(*exc)


def _print_summary(s: ReplaySummary) -> None:
    print(f"{s.path}")
    print(f"  format      {s.format}")
    print(
        f"  frames      {s.frames}  (records {s.records}, malformed {s.malformed}, "
        f"non-CSI skipped {s.skipped}{', truncated tail' if s.truncated else ''})"
    )
    if s.duration_s is not None:
        rate = f"{s.rate_hz:.1f} Hz" if s.rate_hz else "n/a"
        print(f"  duration    {s.duration_s:.3f} s   rate {rate}")
    for shape, n in s.shapes.items():
        sub, rx, tx = shape.split("x")
        print(f"  shape       {n} frames of {sub} subcarriers x {rx} rx x {tx} tx")
    if s.mean_amplitude is not None:
        print(f"  mean |CSI|  {s.mean_amplitude:.3f}")
    if s.residual_phase_std is not None:
        print(
            f"  sanitized   {s.sanitized} frames: Hampel replaced {s.hampel_replaced} amplitude outliers, "
            f"residual phase std {s.residual_phase_std:.3f} rad after linear-fit removal"
        )


def _capture_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as a capture (None: it can be opened as a file)."""
    if path.is_dir():
        return f"{path} is a directory, not a capture file"
    if not path.exists():
        return f"no such file: {path}"
    if not path.is_file():
        return f"{path} is not a regular file"
    return None


def _format_hint(e: UnknownFormatError) -> str:
    return f"cannot tell the CSI format of {e.path}; pass --format (one of {', '.join(e.formats)})"


def _cmd_replay(args: argparse.Namespace) -> int:
    path = Path(args.capture)
    if (problem := _capture_problem(path)) is not None:
        print(f"wdp replay: {problem}", file=sys.stderr)
        return 2
    try:
        summary = summarize_capture(path, args.format, progress=not args.quiet and sys.stderr.isatty())
    except UnknownFormatError as e:
        print(f"wdp replay: {_format_hint(e)}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as e:
        print(f"wdp replay: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(msgspec.json.encode(summary).decode())
    else:
        _print_summary(summary)
    if summary.frames == 0:
        # every format alike: a parser that finds nothing in a file is told the wrong format (or a broken file)
        what = "an empty file" if path.stat().st_size == 0 else "not a capture in this format?"
        print(
            f"wdp replay: no CSI frames in {path} as {summary.format} ({what}): {summary.records} records, "
            f"{summary.malformed} malformed, {summary.skipped} non-CSI skipped"
            + (", truncated tail" if summary.truncated else ""),
            file=sys.stderr,
        )
        return 2
    return 0


def _print_records(
    cmd: str,
    capture: Path,
    records_of: Callable[[list[str]], Iterable[Any]],
    *,
    json_out: bool,
    header: str,
    row: Callable[[Any], str],
    errors: dict[type[Exception], int] | None = None,
) -> int:
    """What `wdp sense` and `wdp classify` share: check the capture, print one record per line (JSON lines with
    --json, else a table whose header repeats every 20 rows) with the reader's notes on stderr as they come, and
    turn errors into exit codes (``errors``: extra exception types first, then format / file / value errors: 2)."""
    if (problem := _capture_problem(capture)) is not None:
        print(f"wdp {cmd}: {problem}", file=sys.stderr)
        return 2
    notes: list[str] = []
    try:
        enc = msgspec.json.Encoder()
        printed_notes = 0
        for i, rec in enumerate(records_of(notes)):
            while printed_notes < len(notes):
                print(notes[printed_notes], file=sys.stderr)
                printed_notes += 1
            if json_out:
                sys.stdout.write(enc.encode(rec).decode() + "\n")
            else:
                if i % 20 == 0:
                    print(header)
                print(row(rec))
        for n in notes[printed_notes:]:
            print(n, file=sys.stderr)
    except BrokenPipeError:  # `wdp sense ... | head`
        sys.stderr.close()
        return 0
    except Exception as e:
        for kind, code in (errors or {}).items():
            if isinstance(e, kind):
                print(f"wdp {cmd}: {e}", file=sys.stderr)
                return code
        if isinstance(e, UnknownFormatError):
            print(f"wdp {cmd}: {_format_hint(e)}", file=sys.stderr)
            return 2
        if isinstance(e, (OSError, ValueError)):
            print(f"wdp {cmd}: {e}", file=sys.stderr)
            return 2
        raise
    return 0


def _cmd_sense(args: argparse.Namespace) -> int:
    from wdp.sensing.offline import sense_capture

    def row(rec: Any) -> str:
        bpm = f"{rec.breathing_bpm:.1f}" if rec.breathing_bpm is not None else "-"
        return (
            f"{rec.t:8.1f}  {'yes' if rec.motion else 'no':6s}  {rec.motion_score:7.2f}  "
            f"{'yes' if rec.presence else 'no':8s}  {bpm}"
        )

    return _print_records(
        "sense",
        Path(args.capture),
        lambda notes: sense_capture(
            Path(args.capture),
            format=args.format,
            baseline=Path(args.baseline) if args.baseline else None,
            baseline_empty=args.baseline_empty,
            mac=args.mac,
            notes=notes,
        ),
        json_out=args.json,
        header=f"{'t (s)':>8s}  {'motion':6s}  {'score':>7s}  {'presence':8s}  breathing (BPM)",
        row=row,
    )


def _cmd_classify(args: argparse.Namespace) -> int:
    from wdp.activity_offline import NoMatchingModel, classify_capture

    return _print_records(
        "classify",
        Path(args.capture),
        lambda notes: classify_capture(
            Path(args.capture), model=args.model, format=args.format, mac=args.mac, notes=notes
        ),
        json_out=args.json,
        header=f"{'t (s)':>8s}  {'activity':16s}  {'p':>5s}  {'p_fall':>6s}  fall",
        row=lambda rec: (
            f"{rec.t:8.1f}  {rec.activity:16s}  {rec.p_activity:5.2f}  {rec.p_fall:6.2f}  {'FALL' if rec.fall else '-'}"
        ),
        errors={NoMatchingModel: 3},
    )


def _cmd_serve(args: argparse.Namespace) -> int:
    from wdp.process_memory import limit_malloc_arenas

    limit_malloc_arenas()  # first, before any thread: see wdp.process_memory
    from wdp.engine.config import compose_serve_config, serve

    try:
        cfg = compose_serve_config(args.overrides)
    except Exception as e:  # Hydra reports bad overrides / missing groups as exceptions
        print(f"wdp serve: {e}", file=sys.stderr)
        return 2
    if args.print_config:
        from omegaconf import OmegaConf

        print(OmegaConf.to_yaml(cfg))
        return 0
    if not args.engine_only:
        from wdp.serve.__main__ import main as serve_with_api

        extra = ["--no-autostart"] if args.no_autostart else []
        return serve_with_api(["--host", args.host, "--port", str(args.port), *extra, *args.overrides])
    try:
        return serve(cfg)
    except Exception as e:  # configuration problems (missing model or file, bad values) before it runs
        print(f"wdp serve: {type(e).__name__}: {e}", file=sys.stderr)
        return 2


def _cmd_record(args: argparse.Namespace) -> int:
    from wdp.recording.cli import record_command

    return record_command(args)


def _cmd_label(args: argparse.Namespace) -> int:
    from wdp.recording.cli import label_command

    return label_command(args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wdp", description="WiFi CSI to tracked human poses and events")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("replay", help="parse a capture file, sanitize it and print a summary")
    r.add_argument(
        "capture", help="capture file (ESP32 .csv, Intel 5300 .dat, nexmon .pcap, Atheros .dat, PicoScenes .csi)"
    )
    r.add_argument("--format", choices=stream_formats() + FILE_ONLY_FORMATS, help="override format detection")
    r.add_argument("--json", action="store_true", help="print the summary as JSON")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_cmd_replay)
    se = sub.add_parser(
        "sense",
        help="training-free motion / presence / breathing of a capture, one record per second",
        description="Runs the engine's per-link sensing over a capture file and prints one record per second: "
        '{"t", "motion", "motion_score", "presence", "breathing_bpm"}.',
    )
    se.add_argument("capture", help="capture file (ESP32 csv, ESPectre npz, Intel 5300 dat, nexmon pcap, ...)")
    se.add_argument("--format", default=None, help="force a format (default: detected)")
    se.add_argument(
        "--baseline",
        default=None,
        help="a quiet recording of the same room and hardware (empty, or a person keeping still) to calibrate "
        "from; without it the quietest stretch of the capture is used",
    )
    se.add_argument(
        "--baseline-empty",
        action="store_true",
        help="the baseline is of the empty room (enables still-person presence)",
    )
    se.add_argument("--mac", default=None, help="transmitter MAC of the link (default: the most frequent sender)")
    se.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    se.set_defaults(func=_cmd_sense)
    c = sub.add_parser(
        "classify",
        help="activities and falls of a capture with an activity/fall model, one record per window",
        description="Runs an activity/fall model over a capture file's link (its dominant transmitter) and prints "
        'one record per window: {"t", "activity", "p_activity", "p_fall", "fall"}. Without --model, the shipped '
        "model whose card matches the capture's frame shape (subcarriers x rx x tx); exit code 3 when none does.",
    )
    c.add_argument("capture", help="capture file (Intel 5300 dat, nexmon pcap, ESP32 csv, ...)")
    c.add_argument("--model", default=None, help="model directory (model.onnx + card.json); default: shipped, by shape")
    c.add_argument("--format", default=None, help="force a format (default: detected)")
    c.add_argument("--mac", default=None, help="transmitter MAC of the link (default: the most frequent sender)")
    c.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    c.set_defaults(func=_cmd_classify)
    s = sub.add_parser(
        "serve",
        help="run the engine (simulator by default) with the REST/WebSocket API and dashboard",
        description="Run the realtime engine with the REST/WebSocket API and the dashboard on http://HOST:PORT/. "
        "Settings come from conf/serve.yaml; override them Hydra-style, e.g. "
        "`wdp serve source=replay source.path=capture.dat source.realtime=false` or "
        "`wdp serve detector=ground_truth store.path=null`. API secrets come from the environment "
        "(WDP_JWT_SECRET, WDP_ADMIN_PASSWORD, or WDP_DEV_MODE=1 for a throwaway dev secret).",
    )
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument(
        "--engine-only", action="store_true", help="run only the engine (history store, no API), printing a status line"
    )
    s.add_argument("--no-autostart", action="store_true", help="start the engine only through the API")
    s.add_argument("overrides", nargs="*", help="Hydra overrides key=value / group=option")
    s.add_argument("--print-config", action="store_true", help="print the composed config and exit")
    s.set_defaults(func=_cmd_serve)
    from wdp.recording.cli import add_label_parser, add_record_parser

    add_record_parser(sub, _cmd_record)
    add_label_parser(sub, _cmd_label)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
