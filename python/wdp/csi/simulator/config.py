"""Simulator configuration: radio band, antenna counts, impairments and scene sampling (plain dataclasses)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from wdp import schemas_sample as S

SPEED_OF_LIGHT = 299_792_458.0

# Intel 5300 reports 30 subcarrier groups of a 20 MHz HT channel (802.11n grouping Ng=2):
# indices -28..-2 step 2, -1, 1..27 step 2, 28 (linux-80211n-csitool).
INTEL5300_SUBCARRIERS_20MHZ: tuple[int, ...] = tuple(range(-28, -1, 2)) + (-1,) + tuple(range(1, 28, 2)) + (28,)
assert len(INTEL5300_SUBCARRIERS_20MHZ) == 30


@dataclass(frozen=True)
class Band:
    """OFDM channel: centre frequency, subcarrier spacing and the reported subcarrier indices."""

    center_hz: float = 2.437e9  # 2.4 GHz channel 6
    subcarrier_spacing_hz: float = 312.5e3
    subcarrier_index: tuple[int, ...] = INTEL5300_SUBCARRIERS_20MHZ
    fft_size: int = 64

    @property
    def frequencies(self) -> np.ndarray:
        return self.center_hz + self.subcarrier_spacing_hz * np.asarray(self.subcarrier_index, np.float64)

    @property
    def wavelength(self) -> float:
        return SPEED_OF_LIGHT / self.center_hz


@dataclass(frozen=True)
class Impairments:
    """Receiver hardware effects. ``enabled=False`` switches all of them off (clean channel)."""

    enabled: bool = True
    cfo: bool = True  # random common phase per packet (residual carrier frequency offset)
    sto_std_ns: float = 30.0  # per-packet symbol timing offset -> linear phase slope over subcarriers
    sfo_ppm: float = 20.0  # sampling frequency offset -> timing drift (sawtooth, one sample period)
    chain_phase: bool = True  # fixed random phase per rx chain (PLL offsets, constant per scene)
    agc_step_rate_hz: float = 0.3  # mean rate of AGC gain steps (Poisson)
    agc_step_db: float = 2.0  # std of one gain step (dB); gain is quantised to 1 dB as the 5300 does
    agc_range_db: float = 6.0  # steps stay within +-range of the nominal gain
    chain_gain_db: float = 1.0  # fixed per-chain gain mismatch std (dB)
    snr_db: float = 25.0  # thermal noise relative to the mean static channel power
    quantize: bool = True  # round I/Q to integers (8-bit CSI as the Intel 5300 reports it)
    quantize_bits: int = 8  # I/Q word size when quantising (ESP32 8, Atheros 10, nexmon 16)
    target_rms: float = 20.0  # AGC set point: rms |CSI| of the static channel in reported units
    packet_loss: float = 0.02  # i.i.d. loss probability per packet
    burst_loss_rate_hz: float = 0.05  # mean rate of loss bursts (Poisson)
    burst_loss_max_s: float = 0.08  # burst length uniform in (0, max]
    jitter_std_s: float = 0.0015  # timestamp jitter around the nominal 100 Hz schedule

    def active(self) -> Impairments:
        """The effective settings: everything off when not enabled."""
        if self.enabled:
            return self
        return dataclasses.replace(
            self,
            cfo=False,
            sto_std_ns=0.0,
            sfo_ppm=0.0,
            chain_phase=False,
            agc_step_rate_hz=0.0,
            chain_gain_db=0.0,
            snr_db=float("inf"),
            quantize=False,
            packet_loss=0.0,
            burst_loss_rate_hz=0.0,
            jitter_std_s=0.0,
        )


@dataclass(frozen=True)
class SimConfig:
    """Everything that shapes the generated data besides (room_id, seed)."""

    band: Band = field(default_factory=Band)
    n_rx: int = S.N_RX
    n_tx: int = S.N_TX
    rate_hz: float = S.SAMPLE_RATE_HZ
    window: int = S.WINDOW
    impairments: Impairments = field(default_factory=Impairments)
    scene_duration_s: float = 12.0
    windows_per_scene: int = 16
    # P(number of people = 0, 1, 2, 3, 4) for random scenes.
    people_probs: tuple[float, ...] = (0.06, 0.34, 0.30, 0.18, 0.12)
    body_points: bool = True  # body scatterers on (off: static room only, for tests)
    los_shadowing: bool = True  # bodies attenuate the line-of-sight path they cross
    hardware: str | None = None  # the preset this config started from (wdp.csi.simulator.hardware), if any

    def __post_init__(self) -> None:
        if len(self.people_probs) > S.MAX_PEOPLE + 1:
            raise ValueError(f"people_probs allows at most {S.MAX_PEOPLE} people")
        if abs(sum(self.people_probs) - 1.0) > 1e-6:
            raise ValueError("people_probs must sum to 1")
        if self.window < 1 or self.windows_per_scene < 1:
            raise ValueError("window and windows_per_scene must be positive")
        if self.scene_duration_s <= (self.window + 4) / self.rate_hz:
            raise ValueError("scene_duration_s too short for one window")

    @property
    def n_sub(self) -> int:
        return len(self.band.subcarrier_index)

    def matches_contract(self) -> bool:
        """True when the CSI shapes equal the sample contract (required for datasets)."""
        return (self.n_sub, self.n_rx, self.n_tx, self.window) == (S.N_SUB, S.N_RX, S.N_TX, S.WINDOW)

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> SimConfig:
        """A config from plain values; ``hardware: <preset>`` starts from that preset (band, antennas, rate,
        impairments) and the other keys override it (``band`` and ``impairments`` key by key)."""
        d = dict(d or {})
        name = d.pop("hardware", None)
        if name is None:
            band = Band(**_tuples(d.pop("band", {})))
            imp = Impairments(**_tuples(d.pop("impairments", {})))
            return cls(band=band, impairments=imp, **_tuples(d))
        from wdp.csi.simulator.hardware import hardware_preset  # the presets are built from this module

        base = hardware_preset(str(name)).sim_config()
        band = dataclasses.replace(base.band, **_tuples(d.pop("band", {})))
        imp = dataclasses.replace(base.impairments, **_tuples(d.pop("impairments", {})))
        kw = {"n_rx": base.n_rx, "n_tx": base.n_tx, "rate_hz": base.rate_hz, **_tuples(d)}
        return cls(band=band, impairments=imp, hardware=str(name), **kw)

    @property
    def csi_shape(self) -> tuple[int, int, int, int]:
        """(window, subcarriers, rx, tx) of one window's amplitude / phase."""
        return (self.window, self.n_sub, self.n_rx, self.n_tx)

    @classmethod
    def coerce(cls, cfg: SimConfig | dict[str, Any] | None) -> SimConfig:
        if isinstance(cfg, SimConfig):
            return cfg
        return cls.from_dict(cfg)


def _to_plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _to_plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_to_plain(v) for v in x]
    if isinstance(x, float) and not np.isfinite(x):
        return str(x)  # JSON has no inf
    return x


def _tuples(d: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, list):
            v = tuple(v)
        elif isinstance(v, str) and v in ("inf", "-inf", "nan"):
            v = float(v)
        out[k] = v
    return out
