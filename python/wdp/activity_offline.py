"""Activity/fall classification of a whole capture file (`wdp classify`): one record per model window.

The link is the capture's dominant transmitter (most frames; ``mac=`` picks another) and its dominant frame
shape, as `wdp sense` reads it (wdp.sensing.offline.link_frames): frames of other senders or shapes are
counted, not classified. The model is a directory (model.onnx + card.json) or, without one, the shipped model
whose card matches the link's frame shape (wdp.activity.find_shipped); when none does, NoMatchingModel says
which shapes the shipped models take.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec

from wdp.activity import ActivityClassifier, find_shipped, shipped_models
from wdp.activity.card import load_card
from wdp.sensing.offline import link_frames


class ClassifyRecord(msgspec.Struct, kw_only=True, frozen=True):
    """One window of a capture: ``t`` its end in seconds from the first kept frame; ``activity`` the most
    probable class and ``p_activity`` its probability; ``p_fall`` the fall probability and ``fall`` whether it
    reaches the card's threshold."""

    t: float
    activity: str
    p_activity: float
    p_fall: float
    fall: bool


class NoMatchingModel(ValueError):
    """No shipped activity model takes the capture's frame shape (or the given model does not)."""


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(int(n)) for n in shape)


def shipped_shapes(root: Path | None = None) -> list[str]:
    """'family SxRxT' of every shipped model (for messages)."""
    out = []
    for d in shipped_models(root):
        try:
            out.append(f"{d.name} {_shape(load_card(d).shape)}")
        except (OSError, ValueError):
            out.append(f"{d.name} (unreadable card)")
    return out


def pick_model(shape: tuple[int, ...], model: str | Path | None, root: Path | None = None) -> ActivityClassifier:
    """The given model (it must take ``shape``) or the shipped one whose card matches it."""
    if model is not None:
        clf = ActivityClassifier.load(model)
        if not clf.matches(shape):  # type: ignore[arg-type]
            raise NoMatchingModel(
                f"model {model} expects frames of shape {_shape(clf.card.shape)} (subcarriers x rx x tx), "
                f"the capture's are {_shape(shape)}"
            )
        return clf
    found = find_shipped(shape, root) if len(shape) == 3 else None  # type: ignore[arg-type]
    if found is None:
        have = ", ".join(shipped_shapes(root)) or "none"
        raise NoMatchingModel(
            f"no shipped activity model matches frames of shape {_shape(shape)} (subcarriers x rx x tx; "
            f"shipped: {have}); pass --model DIR with a model trained for this hardware"
        )
    return ActivityClassifier.load(found)


def classify_capture(
    path: str | Path,
    *,
    model: str | Path | None = None,
    format: str | None = None,
    mac: str | None = None,
    notes: list[str] | None = None,
    shipped_root: Path | None = None,
) -> Iterator[ClassifyRecord]:
    """Yield one ClassifyRecord per window of the capture's link; ``notes`` collects what the caller should be
    told (link, frames kept and dropped, the model)."""
    notes = notes if notes is not None else []
    link = link_frames(path, format, mac)
    clf = pick_model(link.shape, model, shipped_root)
    card = clf.card
    sender = "no MAC in this format" if link.mac == "00:00:00:00:00:00" else link.mac
    notes.append(
        f"{Path(path).name}: {link.format}, link {sender}, frames {len(link.times)} of {link.frames} "
        f"(other senders {link.dropped_other_mac}, other shapes {link.dropped_other_shape}, malformed "
        f"{link.malformed}), shape {_shape(link.shape)}; model {clf.path.parent} ({card.family}: "
        f"{card.window_s:g} s windows every {card.hop_s:g} s at {card.packet_rate_hz:g} Hz, fall threshold "
        f"{card.fall_threshold:.2f})"
    )
    for r in clf.classify(link.csi, link.times):
        yield ClassifyRecord(
            t=round(float(r.t), 3),
            activity=r.activity,
            p_activity=round(float(r.p_activity), 4),
            p_fall=round(float(r.p_fall), 4),
            fall=bool(r.fall),
        )
