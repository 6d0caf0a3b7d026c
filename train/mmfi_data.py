"""MM-Fi (NeurIPS 2023) WiFi-CSI as training data: data=mmfi data.root=<MM-Fi root>.

MM-Fi's own protocols and settings (its toolbox, ybhbingo/MMFi_dataset mmfi_lib/mmfi.py decode_config):
protocol P1 = its 14 daily actions, P2 = its 13 rehabilitation actions, P3 = all 27; setting S1 = random split
(per action, 80 % of the 40 subjects train with numpy's legacy seed 0, 1, 2, ... per action, the rest test),
S2 = cross subject (S05, S10, ..., S40 test), S3 = cross environment (E01-E03 train, E04 test). The lists are
in conf/data/mmfi.yaml. MM-Fi's "validation" is our test split; our val split (early stopping, the score
calibration the model card keeps) is a seeded val_fraction of the training sequences.

Per MM-Fi frame (3 rx x 114 subcarriers x 10 packets, 100 packets/s): the middle 5 packets (the contract's
5 frames at 100 Hz), the subcarriers interpolated to 30 over their positions and the single tx repeated to
3 (what the engine does live with antenna_map=cyclic); amplitude as given, phase sanitized on load as for
every split. Keypoints: MM-Fi's 2D keypoints of its RGB camera (rgb/frameNNN.npy, 17 x 2 pixels of a
rgb_size image) when present, else the 3D ground truth (metres) seen from the front, orthographically
(x right, y down, centred at gt_centre, gt_scale metres across the image) - an assumption about MM-Fi's
axes that was not checked on the real data (MM-Fi is not on this machine).
"""

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

from wdp import schemas_sample as S
from wdp.train.datamodule import SPLITS, CsiDataModule

log = logging.getLogger(__name__)
ALL_SUBJECTS = tuple(f"S{i:02d}" for i in range(1, 41))


def environment_of(subject: str) -> str:
    """MM-Fi's environments hold ten subjects each: S01-S10 E01, ..., S31-S40 E04."""
    i = int(subject[1:])
    if not 1 <= i <= 40:
        raise ValueError(f"no MM-Fi subject {subject}")
    return f"E{(i - 1) // 10 + 1:02d}"


def split_sequences(
    protocol: Sequence[str], setting: str, settings: Mapping[str, Any]
) -> dict[str, list[tuple[str, str]]]:
    """(subject, action) pairs of MM-Fi's training and validation ("test" here) for a protocol's actions."""
    actions = list(protocol)
    train: list[tuple[str, str]] = []
    test: list[tuple[str, str]] = []
    if setting == "S1":
        cfg = settings["S1"]
        seed, ratio = int(cfg["seed"]), float(cfg["ratio"])
        cut = int(np.floor(ratio * len(ALL_SUBJECTS)))
        for a in actions:  # the toolbox reseeds per action: seed, seed + 1, ... in the protocol's order
            idx = np.random.RandomState(seed).permutation(len(ALL_SUBJECTS))
            train += [(ALL_SUBJECTS[i], a) for i in sorted(idx[:cut])]
            test += [(ALL_SUBJECTS[i], a) for i in sorted(idx[cut:])]
            seed += 1
    elif setting == "S2":
        held = set(settings["S2"]["test_subjects"])
        train = [(s, a) for s in ALL_SUBJECTS if s not in held for a in actions]
        test = [(s, a) for s in ALL_SUBJECTS if s in held for a in actions]
    elif setting == "S3":
        tr_env, te_env = set(settings["S3"]["train_environments"]), set(settings["S3"]["test_environments"])
        train = [(s, a) for s in ALL_SUBJECTS if environment_of(s) in tr_env for a in actions]
        test = [(s, a) for s in ALL_SUBJECTS if environment_of(s) in te_env for a in actions]
    else:
        raise ValueError(f"unknown MM-Fi setting {setting!r} (S1 random, S2 cross subject, S3 cross environment)")
    return {"train": train, "test": test}


def to_contract_window(x: np.ndarray, packets: slice = slice(3, 8)) -> np.ndarray:
    """One MM-Fi frame (3 rx, 114 sub, 10 packets) -> (5, 30, 3, 3): middle packets, 30 subcarriers, tx x3."""
    from wdp.data.mmfi import MMFiDataset

    w = MMFiDataset.as_wdp_layout(np.asarray(x, np.float32)[None])[packets]  # (5, 114, 3, 1)
    pos_in = np.linspace(0.0, 1.0, w.shape[1])
    pos_out = np.linspace(0.0, 1.0, S.N_SUB)
    flat = w.transpose(0, 2, 3, 1).reshape(-1, w.shape[1])
    out = np.stack([np.interp(pos_out, pos_in, row) for row in flat]).reshape(w.shape[0], w.shape[2], w.shape[3], -1)
    out = out.transpose(0, 3, 1, 2)  # (5, 30, 3, 1)
    return np.repeat(out, S.N_TX, axis=3).astype(np.float32)


class MMFiDataModule(CsiDataModule):
    def __init__(
        self,
        root: str,
        protocol: str = "P3",
        setting: str = "S1",
        protocols: Mapping[str, Sequence[str]] | None = None,
        settings: Mapping[str, Any] | None = None,
        cache_dir: str = "data/mmfi",
        val_fraction: float = 0.1,
        keypoints: str = "auto",
        rgb_size: Sequence[int] = (640, 480),
        gt_centre: Sequence[float] = (0.0, 0.0),
        gt_scale: float = 2.5,
        batch_size: int = 32,
        num_workers: int = 0,
        sanitize: Mapping[str, Any] | None = None,
        seed: int = 0,
        shard_size: int = 1024,
    ) -> None:
        if not Path(root).is_dir():
            raise FileNotFoundError(f"MM-Fi root {root} is not a directory (data.root=<folder holding E01..E04>)")
        if protocols is None or protocol not in protocols:
            raise ValueError(f"unknown MM-Fi protocol {protocol!r}; data.protocols lists {sorted(protocols or {})}")
        if keypoints not in ("auto", "rgb", "gt3d"):
            raise ValueError("keypoints must be auto, rgb or gt3d")
        self.mmfi_root = Path(root).resolve()
        self.protocol, self.setting = protocol, setting
        self.actions = list(protocols[protocol])
        self.split_pairs = split_sequences(self.actions, setting, settings or {})
        self.opts = {
            "val_fraction": float(val_fraction),
            "keypoints": keypoints,
            "rgb_size": [int(v) for v in rgb_size],
            "gt_centre": [float(v) for v in gt_centre],
            "gt_scale": float(gt_scale),
        }
        key = hashlib.sha256(
            json.dumps(
                {"root": str(self.mmfi_root), "p": protocol, "s": setting, "split": self.split_pairs, **self.opts},
                sort_keys=True,
            ).encode()
        ).hexdigest()[:10]
        super().__init__(
            root=str(Path(cache_dir) / f"mmfi-{protocol}-{setting}-{key}"),
            num_people=None,
            seed=seed,
            shard_size=shard_size,
            generate=False,
            batch_size=batch_size,
            num_workers=num_workers,
            sanitize=sanitize,
        )
        self.counts: dict[str, int] = {}

    # ------------------------------------------------------------------------------------------ labels
    def _keypoints(self, gt: np.ndarray, rgb: np.ndarray | None) -> np.ndarray:
        """(17, 3) contract keypoints (x, y model-image pixels, visibility) of one frame."""
        kp = np.zeros((S.N_KEYPOINTS, 3), np.float32)
        if rgb is not None:
            w, h = self.opts["rgb_size"]
            kp[:, 0] = rgb[:, 0] * S.IMAGE_W / w
            kp[:, 1] = rgb[:, 1] * S.IMAGE_H / h
        else:
            cx, cy = self.opts["gt_centre"]
            scale = S.IMAGE_W / self.opts["gt_scale"]
            kp[:, 0] = S.IMAGE_W / 2 + (gt[:, 0] - cx) * scale
            kp[:, 1] = S.IMAGE_H / 2 + (gt[:, 1] - cy) * scale
        inside = (kp[:, 0] >= 0) & (kp[:, 0] < S.IMAGE_W) & (kp[:, 1] >= 0) & (kp[:, 1] < S.IMAGE_H)
        kp[:, 2] = np.where(inside & np.isfinite(kp[:, :2]).all(1), S.VIS_VISIBLE, S.VIS_ABSENT)
        kp[~np.isfinite(kp)] = 0
        return kp

    def _samples(self, pairs: Sequence[tuple[str, str]]) -> dict[str, np.ndarray]:
        from wdp.data.mmfi import MMFiDataset

        subjects = sorted({s for s, _ in pairs})
        actions = sorted({a for _, a in pairs})
        wanted = set(pairs)
        ds = MMFiDataset(self.mmfi_root, subjects=subjects, actions=actions, window=1)
        rows: dict[str, list[np.ndarray]] = {k: [] for k in (*S.SAMPLE_FIELDS, *S.META_FIELDS)}
        for i in range(len(ds)):
            si, start = ds.index[i]
            seq = ds.sequences[si]
            if (seq.subject, seq.action) not in wanted:
                continue
            item = ds[i]
            rgb = None
            rgb_file = seq.gt_path.parent / "rgb" / f"frame{start + 1:03d}.npy"
            if self.opts["keypoints"] in ("auto", "rgb") and rgb_file.is_file():
                rgb = np.asarray(np.load(rgb_file), np.float32).reshape(S.N_KEYPOINTS, -1)[:, :2]
            elif self.opts["keypoints"] == "rgb":
                raise FileNotFoundError(f"{rgb_file} is missing (keypoints=rgb)")
            s = S.empty_sample(with_meta=True)
            s["amplitude"][:] = to_contract_window(item["amplitude"][0])
            s["phase"][:] = to_contract_window(item["phase"][0])
            kp = self._keypoints(item["keypoints"][0], rgb)
            vis = kp[:, 2] > 0
            if vis.any():
                s["keypoints"][0] = kp
                x0, y0 = kp[vis, 0].min(), kp[vis, 1].min()
                x1, y1 = kp[vis, 0].max(), kp[vis, 1].max()
                mx, my = 0.1 * (x1 - x0), 0.1 * (y1 - y0)
                s["boxes"][0] = (max(0, x0 - mx), max(0, y0 - my), min(S.IMAGE_W, x1 + mx), min(S.IMAGE_H, y1 + my))
                s["person_area"][0] = (s["boxes"][0, 2] - s["boxes"][0, 0]) * (s["boxes"][0, 3] - s["boxes"][0, 1])
                s["num_people"][...] = 1
            s["room_id"][...] = int(seq.environment[1:])
            s["seed"][...] = int(seq.subject[1:]) * 100 + int(seq.action[1:])
            s["t"][...] = start / 10.0  # MM-Fi frames are 10 per second
            for k in rows:
                rows[k].append(s[k])
        fields = {**S.SAMPLE_FIELDS, **S.META_FIELDS}
        return {
            k: (np.stack(v) if v else np.zeros((0, *fields[k][1]), fields[k][0])).astype(fields[k][0], copy=False)
            for k, v in rows.items()
        }

    def prepare_data(self) -> None:
        if all((self.root / s / "meta.json").is_file() for s in SPLITS):
            return
        rng = np.random.default_rng(self.seed)
        # the sequences of the split that are on disk (a partial download holds some environments only)
        train = [
            (sj, a)
            for sj, a in self.split_pairs["train"]
            if (self.mmfi_root / environment_of(sj) / sj / a / "wifi-csi").is_dir()
        ]
        n_val = max(1, int(round(self.opts["val_fraction"] * len(train)))) if len(train) > 1 else 0
        val_idx = set(rng.choice(len(train), size=n_val, replace=False).tolist()) if n_val else set()
        pairs = {
            "train": [p for i, p in enumerate(train) if i not in val_idx],
            "val": [p for i, p in enumerate(train) if i in val_idx],
            "test": list(self.split_pairs["test"]),
        }
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".mmfi-", dir=self.root))
        try:
            for s in SPLITS:
                arrays = self._samples(pairs[s])
                n = len(arrays["amplitude"])
                self.counts[s] = n
                if n == 0:
                    raise ValueError(
                        f"MM-Fi {self.protocol}/{self.setting}: no frames for the {s} split under {self.mmfi_root}"
                    )
                d = tmp / s
                d.mkdir()
                for i, a in enumerate(range(0, n, self.shard_size)):
                    part = {k: v[a : a + self.shard_size] for k, v in arrays.items()}
                    np.savez_compressed(d / f"shard-{i:05d}.npz", **part)
                (d / "meta.json").write_text(json.dumps({"split": s, "num_samples": n, "source": "mmfi"}))
            for s in SPLITS:
                out = self.root / s
                if out.exists():
                    shutil.rmtree(out)
                (tmp / s).rename(out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def describe(self) -> dict[str, Any]:
        base = super().describe()
        return {
            "kind": "mmfi",
            "mmfi_root": str(self.mmfi_root),
            "protocol": self.protocol,
            "setting": self.setting,
            "actions": self.actions,
            "subjects": {k: sorted({s for s, _ in v}) for k, v in self.split_pairs.items()},
            **self.opts,
            "root": base["root"],
            "sanitize": base["sanitize"],
            "splits": base["splits"],
        }
