"""Real labelled CSI recordings (D1..D5 of ../shared/data/real/MANIFEST.md) as typed, filtered `Recording`s.

The data itself never enters this repository: `files.tsv` (in ../shared) lists every file with its labels, and
recordings are read from a root laid out `<dataset id>/<path in repo>`: $WDP_REAL_DATA (a full restore) or the
small committed fixtures beside files.tsv.

Conventions applied on load (each drop is counted in `Recording.dropped`):
* link under test: frames whose source MAC is not the dataset's transmitter are dropped (`other_mac`; D2, D4, D5;
  D1 and D3 record no MAC);
* frames whose shape differs from the recording's dominant shape are dropped (`shape`);
* D2: one spectral occupancy per recording (`occupancy`): the occupied band is the set of subcarriers whose median
  power is within 20 dB of the recording's strong subcarriers (95th percentile of the medians); a frame is dropped
  when its share of energy outside that band exceeds 5x the recording's median share (the wider frames that
  would otherwise leak the `falling_user2` label);
* times are seconds from the first kept frame; Intel 5300's 32-bit microsecond counter is unwrapped.

`Truth` normalises the labels for sensing evaluation and `PROTOCOLS` holds the manifest's suggested
per-recording splits; `split(items, fold)` applies one to recordings or to files.tsv rows (before loading).
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import msgspec
import numpy as np

from wdp.csi.capture_file import ParseStats, read_capture

DATASETS = ("D1", "D2", "D3", "D4", "D5")

# Source MAC of the link under test (MANIFEST.md); D1 (Intel 5300 bfee) and D3 (npz) record none.
LINK_MAC = {"D2": "b8:27:eb:03:e1:9f", "D4": "98:f4:ab:29:67:94", "D5": "68:fe:71:12:53:8c"}
# Frame shape (subcarriers, rx, tx) of each dataset, used for the shape of an empty recording.
NOMINAL_SHAPE = {"D1": (30, 3, 1), "D2": (256, 1, 1), "D3": (64, 1, 1), "D4": (64, 1, 1), "D5": (64, 1, 1)}
OCCUPANCY_DATASETS = frozenset({"D2"})
OCCUPANCY_FACTOR = 5.0  # drop a frame whose out-of-band energy share exceeds this multiple of the median share
OCCUPANCY_BAND_DB = 20.0  # occupied band: median power within this many dB of the strong subcarriers
# Formats whose timestamp is a 32-bit microsecond counter that wraps (Intel 5300 timestamp_low).
_WRAP_PERIOD_S = {"intel5300": 2.0**32 / 1e6}
DROP_KINDS = ("other_mac", "shape", "occupancy")


class Labelled(Protocol):
    """What a protocol predicate sees: a files.tsv row or a loaded Recording."""

    @property
    def dataset(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def labels(self) -> dict[str, str]: ...
    @property
    def person(self) -> str | None: ...
    @property
    def environment(self) -> str: ...


class FileRow(msgspec.Struct, frozen=True, kw_only=True):
    """One row of files.tsv: a pinned file with its labels (`person` None where files.tsv says `-`)."""

    dataset: str
    repo: str
    commit: str
    path: str
    size: int
    sha256: str
    labels: dict[str, str]
    person: str | None
    environment: str

    @property
    def is_recording(self) -> bool:
        """False for the metadata files that sit beside recordings (dataset_info.json, quality notes)."""
        return self.labels.get("kind") != "metadata"


class Truth(msgspec.Struct, frozen=True, kw_only=True):
    """Ground truth for sensing, normalised across datasets. None = not known from the labels.

    motion: a person moves in the recording. For change-point recordings (D3 `test`) it is None and
    `motion_from_s` says when motion starts (False before, True from then); `motion_at(times)` gives both.
    motion_segment: "middle" where the labelled action happens somewhere inside the take and its edges may be
    still (D1 actions; the authors keep the central 200 packets).
    presence: a person is in the monitored room. still_person: present and not moving.
    breathing_bpm_nominal: the scenario's nominal rate (D5; a class, not a measurement), None for apnea takes.
    """

    motion: bool | None
    presence: bool | None
    still_person: bool | None
    motion_from_s: float | None = None
    motion_segment: str | None = None
    breathing_bpm_nominal: float | None = None
    apnea: bool = False

    def motion_at(self, times: Any) -> np.ndarray:
        """Motion per time (seconds of the recording): 1.0, 0.0, or NaN where unknown."""
        t = np.asarray(times, dtype=np.float64)
        if self.motion_from_s is not None:
            return np.where(t >= self.motion_from_s, 1.0, 0.0)
        value = np.nan if self.motion is None else float(self.motion)
        return np.full(t.shape, value)


class Recording(msgspec.Struct, frozen=True, kw_only=True):
    """One labelled recording after the link, shape and occupancy filters.

    csi: complex64 (frames, subcarriers, rx, tx) of the kept frames; times: float64 seconds from the first kept
    frame, in time order; frame_index: each kept frame's index among the frames the parser returned; meta: the
    capture's meta columns for the kept frames; rate_hz: 1 / median inter-frame time (NaN under two frames);
    dropped: frames dropped per rule (DROP_KINDS); reordered: frames the file held out of time order (sorted).
    """

    dataset: str
    path: str
    file: Path
    labels: dict[str, str]
    person: str | None
    environment: str
    format: str
    times: Any
    csi: Any
    frame_index: Any
    meta: dict[str, Any]
    rate_hz: float
    dropped: dict[str, int]
    stats: ParseStats
    truth: Truth
    reordered: int = 0
    note: str = ""

    def __len__(self) -> int:
        return int(self.csi.shape[0])


# ---------------------------------------------------------------------------------------------- files.tsv, roots


def _find_shared() -> Path | None:
    env = os.environ.get("WDP_SHARED")
    if env:
        return Path(env)
    # The repository sits beside ../shared (as tests/conftest.py assumes); try this file's parents, then cwd's.
    for base in (Path(__file__).resolve(), Path.cwd().resolve()):
        for parent in base.parents:
            cand = parent / "shared" / "data" / "real" / "files.tsv"
            if cand.is_file():
                return parent / "shared"
    return None


def files_tsv() -> Path:
    """../shared/data/real/files.tsv ($WDP_SHARED/data/real/files.tsv when that is set)."""
    shared = _find_shared()
    path = None if shared is None else shared / "data" / "real" / "files.tsv"
    if path is None or not path.is_file():
        raise FileNotFoundError(f"files.tsv of the real datasets not found ({path}); set WDP_SHARED to ../shared")
    return path


def fixtures_dir() -> Path:
    """The small committed subset beside files.tsv (same layout as a restore)."""
    return files_tsv().parent / "fixtures"


def default_root() -> Path:
    """$WDP_REAL_DATA (a full restore) when set, else the fixtures."""
    env = os.environ.get("WDP_REAL_DATA")
    return Path(env) if env else fixtures_dir()


def parse_labels(text: str) -> dict[str, str]:
    """files.tsv labels: `key=value` pairs separated by `;`."""
    out: dict[str, str] = {}
    for part in text.split(";"):
        if part:
            key, _, value = part.partition("=")
            out[key] = value
    return out


def read_files_tsv(path: str | Path | None = None) -> list[FileRow]:
    path = Path(path) if path is not None else files_tsv()
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [
            FileRow(
                dataset=r["dataset"],
                repo=r["repo"],
                commit=r["commit"],
                path=r["path"],
                size=int(r["size"]),
                sha256=r["sha256"],
                labels=parse_labels(r["labels"]),
                person=None if r["person"] in ("", "-") else r["person"],
                environment=r["environment"],
            )
            for r in reader
        ]


def available_recordings(
    root: str | Path | None = None,
    datasets: Iterable[str] | None = None,
    where: Callable[[FileRow], bool] | None = None,
) -> list[FileRow]:
    """files.tsv recording rows (no metadata files) whose file is present under root."""
    root = Path(root) if root is not None else default_root()
    wanted = set(datasets) if datasets is not None else set(DATASETS)
    return [
        row
        for row in read_files_tsv()
        if row.dataset in wanted
        and row.is_recording
        and (where is None or where(row))
        and (root / row.dataset / row.path).is_file()
    ]


def iter_recordings(
    root: str | Path | None = None,
    datasets: Iterable[str] | None = None,
    where: Callable[[FileRow], bool] | None = None,
) -> Iterator[Recording]:
    """Load every available recording (see available_recordings), in files.tsv order."""
    root = Path(root) if root is not None else default_root()
    for row in available_recordings(root, datasets, where):
        yield load_recording(root, row)


# ---------------------------------------------------------------------------------------------- loading


def _mac_bytes(mac: str) -> np.ndarray:
    return np.frombuffer(bytes.fromhex(mac.replace(":", "")), dtype=np.uint8)


def unwrap_counter(t: np.ndarray, period: float) -> np.ndarray:
    """Undo the wraps of a counter with the given period (a step back of more than half a period is a wrap)."""
    if t.size < 2:
        return t
    step = np.diff(t)
    wraps = np.concatenate([[0.0], np.cumsum(np.where(step < -period / 2, period, 0.0))])
    return t + wraps


def occupancy_outliers(power: np.ndarray) -> np.ndarray:
    """Frames (rows of power: frames x subcarriers) whose out-of-band energy share exceeds 5x the median share."""
    if power.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    median = np.median(power, axis=0)
    strong = np.percentile(median, 95)
    band = median >= strong * 10.0 ** (-OCCUPANCY_BAND_DB / 10.0)
    total = power.sum(axis=1)
    share = power[:, ~band].sum(axis=1) / np.where(total > 0, total, 1.0)
    ref = np.median(share)
    if ref <= 0:
        return share > 0
    return share > OCCUPANCY_FACTOR * ref


def _truth(row: Labelled, times: np.ndarray, frame_index: np.ndarray) -> Truth:
    lab = row.labels
    ds = row.dataset
    if ds == "D1":
        still = lab.get("activity") in ("lying", "sitting")
        return Truth(motion=not still, presence=True, still_person=still, motion_segment=None if still else "middle")
    if ds == "D2":
        still = lab.get("activity") == "no_movement"
        return Truth(motion=not still, presence=True, still_person=still)
    if ds == "D3":
        label = lab.get("label")
        if label == "movement":
            return Truth(motion=True, presence=True, still_person=False)
        if label == "test":
            # dataset_info.json: "30 seconds of quiet room, then 30 seconds of human movement".
            after = times[frame_index >= int(lab["motion_from_packet"])]
            start = float(after.min()) if after.size else float("inf")
            return Truth(motion=None, presence=None, still_person=None, motion_from_s=start)
        # baseline: "Quiet room, no motion" -- whether the room was empty is not said.
        return Truth(motion=False, presence=None, still_person=None)
    if ds == "D4":
        if lab.get("set") == "dataset_180s":
            scenario = lab.get("scenario")
            if scenario == "person_moving":
                return Truth(motion=True, presence=True, still_person=False)
            if scenario == "person_still":
                return Truth(motion=False, presence=True, still_person=True)
            # The authors' mapping: a person outside behind glass (hambatan_nlos) counts as empty.
            if lab.get("authors_class") == "empty":
                return Truth(motion=None, presence=False, still_person=False)
            return Truth(motion=None, presence=True, still_person=None)
        # dataset_update: kosong = empty, terisi = occupied; what the person did is not recorded, and the
        # operator walks in or out during the first seconds of every dump (the authors cut 10 s).
        if lab.get("occupancy") == "empty":
            return Truth(motion=None, presence=False, still_person=False)
        return Truth(motion=None, presence=True, still_person=None)
    if ds == "D5":
        scenario = lab.get("scenario")
        apnea = scenario == "apnea"
        bpm = None if apnea or "bpm_nominal" not in lab else float(lab["bpm_nominal"])
        if scenario == "noise":  # a walking person, a fan or extra traffic; which one is not recorded
            return Truth(motion=None, presence=True, still_person=None, breathing_bpm_nominal=bpm)
        return Truth(motion=False, presence=True, still_person=True, breathing_bpm_nominal=bpm, apnea=apnea)
    raise ValueError(f"unknown dataset {ds!r}")


def load_recording(root: str | Path | None, row: FileRow) -> Recording:
    """Read one files.tsv row's file under root and apply the dataset's conventions (see the module doc)."""
    root = Path(root) if root is not None else default_root()
    if not row.is_recording:
        raise ValueError(f"{row.dataset}/{row.path} is a metadata file, not a recording")
    file = root / row.dataset / row.path
    cap = read_capture(file)
    n = len(cap)
    keep = np.ones(n, dtype=bool)
    dropped = dict.fromkeys(DROP_KINDS, 0)

    mac = LINK_MAC.get(row.dataset)
    if mac is not None and n:
        keep &= np.all(cap.meta["mac"] == _mac_bytes(mac), axis=1)
        dropped["other_mac"] = int(n - keep.sum())

    shapes = Counter(a.shape for a, k in zip(cap.csi, keep, strict=True) if k)
    shape = shapes.most_common(1)[0][0] if shapes else NOMINAL_SHAPE[row.dataset]
    if len(shapes) > 1:
        same = np.fromiter((a.shape == shape for a in cap.csi), dtype=bool, count=n)
        dropped["shape"] = int((keep & ~same).sum())
        keep &= same

    index = np.flatnonzero(keep)
    csi = np.stack([cap.csi[i] for i in index]) if index.size else np.zeros((0, *shape), np.complex64)
    csi = csi.astype(np.complex64, copy=False)

    if row.dataset in OCCUPANCY_DATASETS and index.size:
        power = (np.abs(csi) ** 2).sum(axis=(2, 3))
        outliers = occupancy_outliers(power)
        dropped["occupancy"] = int(outliers.sum())
        index, csi = index[~outliers], csi[~outliers]

    stamps = np.asarray(cap.meta["timestamp"], dtype=np.float64)
    period = _WRAP_PERIOD_S.get(cap.format)
    if period is not None:
        stamps = unwrap_counter(stamps, period)
    stamps = stamps[index]
    reordered = 0
    if np.any(np.diff(stamps) < 0):
        # Records written out of time order (three D1 falls hold a block of later records first; their sequence
        # numbers agree with the timestamps): put the frames in time order.
        order = np.argsort(stamps, kind="stable")
        reordered = int((order != np.arange(order.size)).sum())
        index, csi, stamps = index[order], csi[order], stamps[order]
    times = stamps - stamps[0] if index.size else np.zeros(0)
    step = np.median(np.diff(times)) if times.size > 1 else np.nan
    rate = float(1.0 / step) if np.isfinite(step) and step > 0 else float("nan")

    notes = []
    if n == 0:
        notes.append("0-byte file: no frames" if file.stat().st_size == 0 else "no frames parsed")
    if reordered:
        notes.append(f"{reordered} frames out of time order in the file, sorted by timestamp")

    return Recording(
        dataset=row.dataset,
        path=row.path,
        file=file,
        labels=dict(row.labels),
        person=row.person,
        environment=row.environment,
        format=cap.format,
        times=times,
        csi=csi,
        frame_index=index,
        meta={k: np.asarray(v)[index] for k, v in cap.meta.items()},
        rate_hz=rate,
        dropped=dropped,
        stats=cap.stats,
        truth=_truth(row, times, index),
        reordered=reordered,
        note="; ".join(notes),
    )


# ---------------------------------------------------------------------------------------------- protocols

T = TypeVar("T", bound=Labelled)
Predicate = Callable[[Labelled], bool]


@dataclass(frozen=True)
class Fold:
    """One per-recording split of one dataset: predicates on labels/person/environment pick train and test."""

    name: str
    dataset: str
    train: Predicate
    test: Predicate
    note: str = ""


def split(items: Iterable[T], fold: Fold) -> tuple[list[T], list[T]]:
    """(train, test) of the fold's dataset; metadata rows are never in either. Raises if they would overlap."""
    train: list[T] = []
    test: list[T] = []
    for item in items:
        if item.dataset != fold.dataset or item.labels.get("kind") == "metadata":
            continue
        a, b = fold.train(item), fold.test(item)
        if a and b:
            raise ValueError(f"fold {fold.name}: {item.dataset}/{item.path} is in both train and test")
        if a:
            train.append(item)
        elif b:
            test.append(item)
    return train, test


def _label_is(key: str, value: str) -> Predicate:
    return lambda r: r.labels.get(key) == value


def _label_in(key: str, values: Sequence[str]) -> Predicate:
    return lambda r: r.labels.get(key) in values


def _label_not(key: str, value: str) -> Predicate:
    return lambda r: key in r.labels and r.labels[key] != value


def _person_is(person: str) -> Predicate:
    return lambda r: r.person == person


def _person_not(person: str) -> Predicate:
    return lambda r: r.person is not None and r.person != person


def _environment_is(environment: str) -> Predicate:
    return lambda r: r.environment == environment


def _all(*preds: Predicate) -> Predicate:
    return lambda r: all(p(r) for p in preds)


def _d1() -> list[Fold]:
    folds = [
        Fold(f"lovo_{p}", "D1", _person_not(p), _person_is(p), "leave one volunteer out, both rooms")
        for p in ("abid", "hhj", "zly", "zxq", "zyy")
    ]
    folds += [
        Fold("bedroom_to_meeting_room", "D1", _environment_is("bedroom"), _environment_is("meeting_room")),
        Fold("meeting_room_to_bedroom", "D1", _environment_is("meeting_room"), _environment_is("bedroom")),
    ]
    return folds


def _d3() -> list[Fold]:
    is_current = _label_is("in_head", "yes")
    is_deleted = _label_is("in_head", "no(deleted_upstream)")
    folds = [Fold("current_to_deleted", "D3", is_current, is_deleted, "upstream-deleted sessions as test")]
    folds += [
        Fold(f"leave_chip_out_{c}", "D3", _label_not("chip", c), _label_is("chip", c))
        for c in ("c3", "c5", "c6", "esp32", "s3")
    ]
    return folds


def _d4() -> list[Fold]:
    training, testing = _label_is("split", "training"), _label_is("split", "testing")
    los, nlos = _label_is("condition", "LOS"), _label_is("condition", "NLOS")
    used_180s = _all(_label_is("set", "dataset_180s"), _label_in("authors_class", ("empty", "occupied")))
    return [
        Fold("authors_split", "D4", training, testing, "dataset_update training/testing; report LOS and NLOS apart"),
        Fold("authors_split_LOS", "D4", _all(training, los), _all(testing, los)),
        Fold("authors_split_NLOS", "D4", _all(training, nlos), _all(testing, nlos)),
        Fold(
            "update_to_dataset180",
            "D4",
            _label_in("split", ("training", "testing")),
            used_180s,
            "separate check on dataset/ with the authors' class mapping (hambatan_nlos = empty)",
        ),
    ]


def _d5() -> list[Fold]:
    takes = ("01", "02", "03", "04", "05")
    folds = [
        Fold(f"take_{t}", "D5", _label_in("take", [x for x in takes if x != t]), _label_is("take", t)) for t in takes
    ]
    folds += [
        Fold("AN1_to_AN2", "D5", _person_is("AN1"), _person_is("AN2"), "cross-subject (maybe one person, 2 sessions)"),
        Fold("AN2_to_AN1", "D5", _person_is("AN2"), _person_is("AN1"), "cross-subject (maybe one person, 2 sessions)"),
    ]
    return folds


PROTOCOLS: dict[str, tuple[Fold, ...]] = {
    "D1": tuple(_d1()),
    "D2": (
        Fold("user1_to_user2", "D2", _person_is("user1"), _person_is("user2"), "cross-user and cross-position"),
        Fold("user2_to_user1", "D2", _person_is("user2"), _person_is("user1"), "cross-user and cross-position"),
    ),
    "D3": tuple(_d3()),
    "D4": tuple(_d4()),
    "D5": tuple(_d5()),
}
