"""Ingest process for the crash test: appends frames forever and prints the durable frame count after every
flush ("flushed N", N = frames committed in the database so far). The test SIGKILLs it mid-ingest."""

from __future__ import annotations

import sys

import msgspec
from _store_frames import make_frames

from wdp.store import Store


def main() -> None:
    path, batch, checkpoint_threshold = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    pool = make_frames(64, n_tracks=3, seed=1)
    with Store(path, config={"checkpoint_threshold": checkpoint_threshold}) as store:
        stored = store.cursor().execute("SELECT count(*) FROM pose_frames").fetchone()[0]
        writer = store.writer(max_frames=batch, flush_interval_s=3600.0)
        print(f"flushed {stored}", flush=True)
        i = stored
        while True:
            frame = msgspec.structs.replace(pool[i % len(pool)], frame_id=i, timestamp=1.7e9 + i / 30.0)
            if writer.append(frame):
                print(f"flushed {stored + writer.stats.frames_flushed}", flush=True)
            i += 1


if __name__ == "__main__":
    main()
