"""kill -9 during ingest: the database reopens cleanly (WAL replay) and holds every batch reported flushed,
plus at most the one batch that was committed but not yet reported; never a partial batch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from _store_frames import make_frames

from wdp.store import Store, queries

BATCH = 40
HERE = Path(__file__).resolve().parent


def _ingest_and_kill(db: Path, after_flushes: int, delay_s: float, checkpoint_threshold: str) -> int:
    """Run the child until it has reported ``after_flushes`` more flushes, wait ``delay_s`` (so the kill
    lands anywhere in the append/flush/checkpoint cycle), SIGKILL it; return the last count it reported."""
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(HERE.parent / "python"), str(HERE), os.environ.get("PYTHONPATH", "")]),
    )
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "_store_crash_child.py"), str(db), str(BATCH), checkpoint_threshold],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        seen = 0
        for line in proc.stdout:  # noqa: B007 (the last line read is used below)
            seen += 1
            if seen > after_flushes:  # the first line is the count found at start
                break
        else:
            raise AssertionError(f"child exited early: {proc.stderr.read() if proc.stderr else ''}")
        time.sleep(delay_s)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        # Everything the child printed before dying is still in the pipe.
        reported = [int(x.split()[1]) for x in [line, *proc.stdout.read().splitlines()] if x.strip()]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()
    assert proc.returncode == -signal.SIGKILL
    return max(reported)


def test_kill_9_during_ingest_loses_at_most_one_batch(tmp_path):
    db = tmp_path / "crash.duckdb"
    wal = Path(str(db) + ".wal")
    # default threshold: batches sit in the WAL, so reopening must replay it; a tiny one makes DuckDB
    # checkpoint every few batches, so the kill can also land inside a checkpoint
    runs = [(6, 0.0, "16MB"), (4, 0.013, "64KB"), (9, 0.004, "16MB")]
    for after, delay, threshold in runs:
        reported = _ingest_and_kill(db, after, delay, threshold)
        if threshold == "16MB":
            assert wal.exists() and wal.stat().st_size > 0  # recovery below really replays a WAL
        with Store(db) as store:  # opens cleanly, replays the WAL
            con = store.cursor()
            stored = con.execute("SELECT count(*) FROM pose_frames").fetchone()[0]
            assert reported <= stored <= reported + BATCH
            assert stored % BATCH == 0  # batches commit whole
            # frames are 0..stored-1 with no gap, and every frame has all its person rows
            assert con.execute(
                "SELECT min(frame_id), max(frame_id), count(DISTINCT frame_id) FROM pose_frames"
            ).fetchone() == (0, stored - 1, stored)
            assert con.execute(
                "SELECT count(*) FROM pose_frames f WHERE n_persons <> "
                "(SELECT count(*) FROM pose_persons p WHERE p.ts = f.ts AND p.frame_id = f.frame_id)"
            ).fetchone() == (0,)
            assert (
                con.execute("SELECT sum(frames) FROM tracks").fetchone()[0]
                == con.execute("SELECT count(*) FROM pose_persons").fetchone()[0]
            )
    # and it is an ordinary, writable database afterwards
    with Store(db) as store:
        extra = make_frames(5, seed=3, t0=2e9, first_id=10**9)
        with store.writer() as w:
            for f in extra:
                w.append(f)
        assert queries.pose_history(store.cursor(), 2e9, 2e9 + 10) == extra
