"""Training data from one's own labelled recordings (`wdp record` + `wdp label`): data=recording.

The windows (wdp.recording.windows) are written once into the shard layout CsiDataModule reads, in a cache
directory named by a hash of the recordings' labels and these settings; splits are by time within each
recording (the held-out minutes at its end are the test split, the minutes before them validation)."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wdp.train.datamodule import SPLITS, CsiDataModule

log = logging.getLogger(__name__)


def _as_list(path: str | Sequence[str]) -> list[Path]:
    paths = [path] if isinstance(path, str | Path) else list(path)
    if not paths:
        raise ValueError("data.path names no recording")
    return [Path(p).expanduser().resolve() for p in paths]


def _fingerprint(folder: Path) -> str:
    h = hashlib.sha256()
    for name in ("labels.npz", "labels.json", "csi.rec"):
        p = folder / name
        if not p.is_file():
            raise FileNotFoundError(f"{folder} has no {name} (record it with wdp record, label it with wdp label)")
        st = p.stat()
        h.update(f"{name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:12]


class RecordingDataModule(CsiDataModule):
    def __init__(
        self,
        path: str | Sequence[str],
        test_path: str | Sequence[str] | None = None,
        cache_dir: str = "data/recordings",
        val_fraction: float = 0.1,
        test_fraction: float = 0.2,
        guard_s: float = 1.0,
        max_label_dt_s: float = 0.025,
        min_keypoint_score: float = 0.5,
        hop: int = 5,
        batch_size: int = 32,
        num_workers: int = 0,
        sanitize: Mapping[str, Any] | None = None,
        seed: int = 0,
        shard_size: int = 1024,
    ) -> None:
        self.recordings = _as_list(path)
        # recordings kept whole for testing (another day, another session): then `path` gives train and val only
        self.test_recordings = _as_list(test_path) if test_path else []
        if set(self.recordings) & set(self.test_recordings):
            raise ValueError("a recording is in both data.path and data.test_path")
        self.settings = {
            "val_fraction": float(val_fraction),
            "test_fraction": float(test_fraction),
            "guard_s": float(guard_s),
            "max_label_dt_s": float(max_label_dt_s),
            "min_keypoint_score": float(min_keypoint_score),
            "hop": int(hop),
        }
        key = hashlib.sha256(
            json.dumps(
                {
                    "recordings": [(str(p), _fingerprint(p)) for p in self.recordings],
                    "test_recordings": [(str(p), _fingerprint(p)) for p in self.test_recordings],
                    **self.settings,
                },
                sort_keys=True,
            ).encode()
        ).hexdigest()[:10]
        super().__init__(
            root=str(Path(cache_dir) / f"rec-{key}"),
            num_people=None,
            seed=seed,
            shard_size=shard_size,
            generate=False,
            batch_size=batch_size,
            num_workers=num_workers,
            sanitize=sanitize,
        )
        self.counts: dict[str, Any] = {}

    def prepare_data(self) -> None:
        if all((self.root / s / "meta.json").is_file() for s in SPLITS):
            counts_file = self.root / "counts.json"
            self.counts = json.loads(counts_file.read_text()) if counts_file.is_file() else {}
            return
        from wdp.engine.windowing import WindowSpec
        from wdp.recording.windows import WindowCounts, recording_samples, time_split

        parts: dict[str, list[dict[str, np.ndarray]]] = {s: [] for s in SPLITS}
        spec = WindowSpec(phase_fit="none", hop=self.settings["hop"])
        test_fraction = 0.0 if self.test_recordings else self.settings["test_fraction"]
        for folder in [*self.recordings, *self.test_recordings]:
            whole_test = folder in self.test_recordings
            c = WindowCounts()
            arrays = recording_samples(
                folder,
                spec=spec,
                max_label_dt_s=self.settings["max_label_dt_s"],
                min_keypoint_score=self.settings["min_keypoint_score"],
                counts=c,
            )
            if whole_test:
                n = len(arrays["t"])
                idx = {"train": np.zeros(0, np.int64), "val": np.zeros(0, np.int64), "test": np.arange(n)}
            else:
                idx = time_split(arrays["t"], self.settings["val_fraction"], test_fraction, self.settings["guard_s"])
            for s in SPLITS:
                parts[s].append({k: v[idx[s]] for k, v in arrays.items()})
            self.counts[str(folder)] = {**c.as_dict(), **{f"{s}_windows": int(len(idx[s])) for s in SPLITS}}
            log.info("recording %s: %s", folder, self.counts[str(folder)])
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".rec-", dir=self.root))
        try:
            for s in SPLITS:
                arrays = {k: np.concatenate([p[k] for p in parts[s]]) for k in parts[s][0]}
                n = len(arrays["amplitude"])
                if n == 0:
                    raise ValueError(
                        f"the {s} split of {', '.join(map(str, self.recordings))} holds no labelled window "
                        f"(recording too short for val/test fractions and guard_s, or no camera frames near the CSI)"
                    )
                d = tmp / s
                d.mkdir()
                for i, a in enumerate(range(0, n, self.shard_size)):
                    np.savez_compressed(
                        d / f"shard-{i:05d}.npz", **{k: v[a : a + self.shard_size] for k, v in arrays.items()}
                    )
                meta = {"split": s, "num_samples": n, "source": "recording", "version": 1}
                (d / "meta.json").write_text(json.dumps(meta))
            (tmp / "counts.json").write_text(json.dumps(self.counts))
            for s in SPLITS:
                out = self.root / s
                if out.exists():
                    shutil.rmtree(out)
                (tmp / s).rename(out)
            (tmp / "counts.json").replace(self.root / "counts.json")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def describe(self) -> dict[str, Any]:
        from wdp.recording.label import load_labels
        from wdp.recording.summary import load_summary

        recs = []
        for folder in [*self.recordings, *self.test_recordings]:
            _, li = load_labels(folder)
            s = load_summary(folder)
            recs.append(
                {
                    "path": str(folder),
                    "duration_s": s.duration_s,
                    "routers": [{"id": r.router, "packets": r.packets, "shapes": r.shapes} for r in s.routers],
                    "dropped_csi_pct": s.dropped_csi_pct,
                    "alignment_error_rms_ms": s.alignment_error_rms_ms,
                    "teacher": {
                        "name": li.teacher,
                        "version": li.teacher_version,
                        "package": li.teacher_package,
                        "model_complexity": li.model_complexity,
                        "min_score": li.min_score,
                    },
                    "windows": self.counts.get(str(folder)),
                    "role": "test" if folder in self.test_recordings else "train/val/test by time",
                }
            )
        base = super().describe()
        return {
            "kind": "recording",
            "root": base["root"],
            "recordings": recs,
            "split": {
                "by": "test recordings kept whole; train/val by time within the others"
                if self.test_recordings
                else "time within each recording (test: the last minutes)",
                **self.settings,
            },
            "sanitize": base["sanitize"],
            "splits": base["splits"],
        }
