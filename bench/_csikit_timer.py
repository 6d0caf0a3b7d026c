"""Runs inside the CSIKit venv (numpy<1.24): time CSIKit's reader on one file, print JSON."""

import json
import sys
import time

from CSIKit.reader import (
    ATHBeamformReader,
    CSVBeamformReader,
    IWLBeamformReader,
    NEXBeamformReader,
    PicoScenesBeamformReader,
)

READERS = {"intel5300": IWLBeamformReader, "nexmon_pcap": NEXBeamformReader, "esp32": CSVBeamformReader,
           "atheros": ATHBeamformReader, "picoscenes": PicoScenesBeamformReader}

fmt, path, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
best = float("inf")
frames = 0
for _ in range(reps):
    reader = READERS[fmt]()
    t0 = time.perf_counter()
    data = reader.read_file(path, scaled=False)
    best = min(best, time.perf_counter() - t0)
    frames = len(data.frames)
print(json.dumps({"seconds": best, "frames": frames}))
