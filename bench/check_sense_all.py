"""`wdp sense` over every development recording of ../shared/data/real (files.tsv rows present under
$WDP_REAL_DATA): each must give one record per second or a clear error; prints counts per dataset.

    WDP_REAL_DATA=/path/to/restore python bench/check_sense_all.py
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from wdp.data.real import available_recordings
from wdp.sensing.offline import sense_capture


def main() -> int:
    root = os.environ.get("WDP_REAL_DATA")
    if not root or not Path(root).is_dir():
        print("set WDP_REAL_DATA to a restore of ../shared/data/real (restore.sh)", file=sys.stderr)
        return 2
    ok: Counter[str] = Counter()
    records: Counter[str] = Counter()
    errors: dict[str, list[str]] = defaultdict(list)
    t0 = time.process_time()
    for row in available_recordings(Path(root)):
        path = Path(root) / row.dataset / row.path
        try:
            n = sum(1 for _ in sense_capture(path))
            ok[row.dataset] += 1
            records[row.dataset] += n
            if n == 0:
                errors[row.dataset].append(f"{row.path}: 0 records")
        except ValueError as e:
            errors[row.dataset].append(f"{row.path}: {e}")
    for ds in sorted(set(ok) | set(errors)):
        print(f"{ds}: {ok[ds]} recordings sensed, {records[ds]} one-second records, {len(errors[ds])} errors")
        for e in errors[ds][:10]:
            print(f"    {e}")
    print(f"CPU {time.process_time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
