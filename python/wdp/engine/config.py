"""Building the engine from the serve config (conf/serve.yaml) and running it: the body of `wdp serve`.

``compose_serve_config(overrides)`` composes conf/serve.yaml with Hydra's compose API (command-line style
overrides, e.g. ``["source=replay", "source.path=capture.dat"]``); ``build_engine(cfg, store=...)`` turns a
composed config into an Engine (sources from ``_target_``, the model by path or name/version, zones,
camera) and attaches a StatusReporter (a status line on stderr every ``status_interval_s``); ``serve(cfg)``
runs it until SIGINT/SIGTERM (or ``duration_s``, or the end of finite sources), then stops it cleanly, flushing
the store.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from wdp import schemas

_log = logging.getLogger(__name__)


def conf_dir() -> Path:
    """The directory holding serve.yaml: the installed wdp.conf package, else the source checkout's conf/."""
    spec = importlib.util.find_spec("wdp.conf") if importlib.util.find_spec("wdp") else None
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))).resolve()
    repo_conf = Path(__file__).resolve().parents[3] / "conf"
    if (repo_conf / "serve.yaml").is_file():
        return repo_conf
    raise FileNotFoundError("cannot find the wdp configuration directory (wdp.conf or <repo>/conf)")


def compose_serve_config(overrides: Sequence[str] = ()) -> Any:
    from hydra import compose, initialize_config_dir

    d = conf_dir()
    # the serve groups (source/...) live in conf/serve/ so they stay apart from the training groups
    search = f"hydra.searchpath=[file://{d / 'serve'}]"
    with initialize_config_dir(version_base="1.3", config_dir=str(d), job_name="wdp_serve"):
        return compose(config_name="serve", overrides=[search, *overrides])


def _plain(node: Any) -> Any:
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(node, DictConfig | ListConfig):
        return OmegaConf.to_container(node, resolve=True)
    return node


def config_dict(node: Any) -> dict[str, Any]:
    """A config section (OmegaConf node, mapping or None) as a plain, resolved dict ({} for None)."""
    return dict(_plain(node) or {})


def _dataclass_from(cls: Any, values: dict[str, Any] | None, **fixed: Any) -> Any:
    values = dict(values or {})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} settings: {', '.join(sorted(unknown))}")
    for k, v in values.items():
        if isinstance(v, list):
            values[k] = tuple(v)
    return cls(**{**values, **fixed})


def engine_config(cfg: Any) -> Any:
    from wdp.analytics import ActivityConfig, FallConfig, PipelineConfig, ZoneMonitorConfig
    from wdp.engine.engine import EngineConfig
    from wdp.tracking import TrackerConfig

    e = dict(_plain(cfg.get("engine")) or {})
    a = dict(_plain(cfg.get("analytics")) or {})
    image = tuple(float(v) for v in a.pop("image_size", (256.0, 256.0)))
    tracker = a.pop("tracker", None)
    pipeline = PipelineConfig(
        image_size=image,  # type: ignore[arg-type]
        tracker=_dataclass_from(TrackerConfig, tracker, scale=image[0]) if tracker else None,
        zones=_dataclass_from(ZoneMonitorConfig, a.pop("zones", None)),
        activity=_dataclass_from(ActivityConfig, a.pop("activity", None)),
        falls=_dataclass_from(FallConfig, a.pop("falls", None)),
        **a,
    )
    w = dict(_plain(cfg.get("window")) or {})
    return _dataclass_from(
        EngineConfig,
        {**e, **w},
        detector=str(cfg.get("detector", "model")),
        pipeline=pipeline,
        sensing=sensing_settings(cfg.get("sensing")),
        activity=activity_settings(cfg.get("activity")),
    )


def activity_settings(node: Any) -> Any:
    """The ``activity:`` block -> wdp.engine.activity_stage.ActivitySettings (detector, model, thresholds)."""
    from wdp.engine.activity_stage import ActivitySettings

    s = dict(_plain(node) or {})
    if "model" in s and s["model"] is not None:
        s["model"] = str(s["model"])
    return _dataclass_from(ActivitySettings, s)


def sensing_settings(node: Any) -> Any:
    """The ``sensing:`` block -> SensingSettings: enabled, zones, baselines and the event settings are its
    own; every other key is a wdp.sensing.SensingConfig field (a threshold of the detector)."""
    from wdp.engine.sensing_stage import SensingSettings
    from wdp.sensing import SensingConfig

    s = dict(_plain(node) or {})
    zones = s.pop("zones", None) or {}
    baselines = s.pop("baselines", None) or {}
    if not isinstance(zones, dict) or not isinstance(baselines, dict):
        raise ValueError("sensing.zones and sensing.baselines must be mappings ({zone: [router, ...]}, {router: path})")
    own = {f.name for f in dataclasses.fields(SensingSettings)} - {"detector", "zones", "baselines"}
    settings = {k: s.pop(k) for k in list(s) if k in own}
    return SensingSettings(
        detector=_dataclass_from(SensingConfig, s),
        zones={str(z): [str(r) for r in (rs or [])] if isinstance(rs, list) else rs for z, rs in zones.items()},
        baselines={str(r): str(p) for r, p in baselines.items()},
        **settings,
    )


def load_model(cfg: Any, config: Any) -> Any:
    """The ModelRunner the config names (model.path, else model.name[/model.version] in model.models_dir)."""
    from wdp.engine.models import ModelRunner

    m = cfg.model
    spec = m.get("path") or (f"{m.name}/{m.version}" if m.get("version") else m.name)
    try:
        return ModelRunner.load(
            spec,
            m.get("models_dir"),
            m.get("backend", "auto"),
            threads=config.torch_threads,
            min_score=config.min_detection_score,
            window_overrides=config.window_overrides(),
        )
    except FileNotFoundError as e:
        raise FileNotFoundError(
            f"{e}. Export one with `python -m wdp.train` and pass model.path=<run>/export, or watch the "
            "simulator without a model: detector=ground_truth"
        ) from None


def trained_rooms(card: dict[str, Any] | None) -> set[int] | None:
    """Room ids a model card says the net was trained in (simulated data), None when it does not say."""
    rooms = (((card or {}).get("training") or {}).get("data") or {}).get("splits", {}).get("train", {}).get("rooms")
    return None if rooms is None else {int(r) for r in rooms}


def room_warnings(model: Any, sources: list[Any]) -> list[str]:
    """One line per simulated source whose room the model never saw in training: WiFi pose nets learn a
    room's multipath, so such a source gets few or no detections (the model is not broken)."""
    rooms = trained_rooms(getattr(getattr(model, "model", None), "card", None)) if model is not None else None
    if not rooms:
        return []
    out = []
    for src in sources:
        room = getattr(src, "room_id", None)
        if getattr(src, "kind", None) == "simulator" and room is not None and int(room) not in rooms:
            shown = sorted(rooms)
            listed = ", ".join(map(str, shown[:8])) + (", ..." if len(shown) > 8 else "")
            out.append(
                f"model {model.info.name} was trained in simulated room(s) {listed}; the simulator source plays "
                f"room {room}, which it never saw: expect few or no detections (train for that room: "
                f"python -m wdp.train experiment=site 'data.rooms={{train:[{room}],val:[{room}],test:[{room}]}}')"
            )
    return out


def build_sources(cfg: Any) -> list[Any]:
    from hydra.utils import instantiate

    nodes = [cfg.source] + list(cfg.get("extra_sources") or [])
    return [instantiate(n, _convert_="all") for n in nodes]


def build_engine(
    cfg: Any,
    *,
    store: Any = None,
    bus: Any = None,
    model: Any = None,
    event_ids: Callable[[], str] = schemas.new_id,
) -> Any:
    from wdp.engine.engine import Engine
    from wdp.tracking import FloorProjector

    config = engine_config(cfg)
    if config.detector == "model" and model is None:
        model = load_model(cfg, config)
    zones = [msgspec.convert(z, schemas.Zone) for z in (_plain(cfg.get("zones")) or [])]
    projector = None
    cam = _plain(cfg.get("camera"))
    if cam and cam.get("image_to_floor") is not None:
        projector = FloorProjector(np.asarray(cam["image_to_floor"], np.float64))
    s = dict(_plain(cfg.get("store")) or {})
    store_options = {k: s[k] for k in ("flush_interval_s", "max_frames", "queue_size", "dense") if k in s}
    sources = build_sources(cfg)
    for line in room_warnings(model, sources):
        _log.warning("%s", line)
    engine = Engine(
        sources,
        model=model,
        config=config,
        bus=bus,
        store=store,
        store_options=store_options,
        zones=zones,
        projector=projector,
        event_ids=event_ids,
    )
    interval = float(cfg.get("status_interval_s") or 0)
    if interval > 0:
        StatusReporter(engine, interval)  # its thread keeps it; it ends with the engine
    return engine


def status_line(engine: Any, m: Any = None) -> str:
    """One line on how a running engine does: pose rate and count, routers connected (and their packet rates),
    sensing motion per router, latency, window queue and drops, events."""
    m = m if m is not None else engine.metrics()
    e2e = m.stages["end_to_end"]
    connected = sum(r.status == "connected" for r in m.routers)
    routers = " ".join(f"{r.id}:{r.status[:4]}/{r.packet_rate:.0f}Hz" for r in m.routers)
    states = {s.router_id: s for s in engine.sensing.current() if s.router_id} if engine.sensing is not None else {}

    def said(s: Any) -> str:
        return "calibrating" if s.calibration == "calibrating" else "yes" if s.motion else "no"

    motion = " ".join(f"{rid}:{said(s)}({s.motion_score:.1f})" for rid, s in sorted(states.items()))
    # the activity/fall model per router: its latest activity, or off / deciding
    activity = " ".join(
        f"{x.router_id}:{(x.activity or '-') if x.state == 'on' else x.state}"
        for x in sorted(m.activity, key=lambda x: x.router_id)
    )
    return (
        f"wdp serve: [{m.source}] {m.fps:.1f} fps, {m.frames} frames, routers {connected}/{len(m.routers)} "
        f"connected ({routers}), motion {motion or '-'}, activity {activity or '-'}, "
        f"e2e p50 {e2e.p50_ms:.1f} ms p99 {e2e.p99_ms:.1f} ms, "
        f"queue {m.queue_depth}, dropped {m.windows_dropped_overflow} overflow + {m.windows_dropped_stale} stale, "
        f"events {m.events}"
    )


class StatusReporter:
    """Prints ``status_line`` to stderr every ``interval_s`` while its engine runs (``status_interval_s`` of
    the serve config). build_engine attaches one to every engine it builds, so `wdp serve` prints it with the
    API (whose lifespan starts and stops engines) as without. The thread holds the engine weakly and ends when
    the engine has stopped, or was dropped without ever starting."""

    def __init__(self, engine: Any, interval_s: float, out: Any = None) -> None:
        self.interval_s = float(interval_s)
        self._engine = weakref.ref(engine)
        self._out = out
        self.lines = 0
        self._thread = threading.Thread(target=self._run, name="wdp-status-line", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        started = False
        last = None
        while True:
            time.sleep(min(0.1, self.interval_s))
            engine = self._engine()
            if engine is None:
                return
            if not engine.running:
                if started:
                    return
                continue
            started = True
            now = time.monotonic()
            last = now if last is None else last  # the first line after one interval, like every other
            if now - last >= self.interval_s:
                last = now
                try:
                    print(status_line(engine), file=self._out or sys.stderr, flush=True)
                    self.lines += 1
                except Exception:  # a status line must never take the server down
                    _log.exception("status line")
            del engine


def duckdb_config(store_cfg: Any) -> dict[str, Any] | None:
    """DuckDB connection settings from the serve config's ``store`` node: worker threads and the buffer pool
    bound (``duckdb_memory_limit``; DuckDB's own default is 80 % of the machine's memory)."""
    if not store_cfg:
        return None
    out: dict[str, Any] = {}
    if store_cfg.get("duckdb_threads"):
        out["threads"] = int(store_cfg.get("duckdb_threads"))
    if store_cfg.get("duckdb_memory_limit"):
        out["memory_limit"] = str(store_cfg.get("duckdb_memory_limit"))
    return out or None


def store_from_config(store_cfg: Any) -> Any:
    """The history store of the serve config's ``store`` node (not opened): DuckDB at ``path`` (default) or,
    with ``backend: postgres``, PostgreSQL at ``dsn`` (or $WDP_STORE_DSN). None when there is no history."""
    from wdp.store import Store

    node = store_cfg or {}
    backend = str(node.get("backend") or "duckdb")
    if backend == "postgres":
        from wdp.store.postgres import PgStore

        dsn = node.get("dsn") or os.environ.get("WDP_STORE_DSN")
        if not dsn:
            raise ValueError("store.backend=postgres needs store.dsn or WDP_STORE_DSN")
        return PgStore(str(dsn), state_path=node.get("path"))
    if backend != "duckdb":
        raise ValueError(f"store.backend must be duckdb or postgres, got {backend!r}")
    path = node.get("path")
    return Store(path, config=duckdb_config(node)) if path else None


def serve(cfg: Any, *, out: Any = None, install_signals: bool = True) -> int:
    """Run the engine the config describes until SIGINT/SIGTERM, ``duration_s`` or the end of its sources."""
    out = out or sys.stdout  # looked up now: a default bound at import misses a later redirect
    store = store_from_config(cfg.get("store"))
    store = store.open() if store is not None else None
    # never print a DSN: it may hold a password
    where = None if store is None else ("postgres" if getattr(store, "backend", "") == "postgres" else store.path)
    stop = threading.Event()
    received: list[str] = []
    previous: dict[int, Any] = {}

    def on_signal(signum: int, _frame: Any) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    try:
        engine = build_engine(cfg, store=store)
        if install_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, on_signal)
        engine.start()
        info = engine.model.info if engine.model is not None else None
        kinds = ", ".join(type(s).__name__ for s in engine.sources)
        print(
            f"wdp serve: source {engine.source_kind} ({kinds}), "
            f"detector {engine.config.detector}"
            + (f", model {info.name} ({info.path})" if info else "")
            + (f", store {where}" if where else ", no store"),
            file=out,
            flush=True,
        )
        duration = cfg.get("duration_s")
        t0 = time.monotonic()  # the status line every status_interval_s comes from the engine's StatusReporter
        reason = "stopped"
        while not stop.wait(0.1):
            now = time.monotonic()
            if engine.wait(0):
                reason = "end of stream"
                break
            if duration is not None and now - t0 >= float(duration):
                reason = "duration reached"
                break
        if received:
            reason = f"signal {received[0]}"
        engine.stop(reason)
        m = engine.metrics()
        st = m.store
        print(status_line(engine, m), file=out)
        print(
            f"wdp serve: stopped ({reason}); {m.frames} frames, {m.events} events"
            + (f"; stored {st.frames_written} frames, {st.events_written} events" if st else ""),
            file=out,
            flush=True,
        )
        return 1 if engine.error is not None else 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if store is not None:
            store.close()
