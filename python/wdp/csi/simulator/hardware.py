"""Hardware presets: the CSI shape, band and receiver quirks of the cards people actually own.

A preset fixes what a receiver reports (subcarrier indices of its channel, antennas, packet rate) and how
(I/Q word size, AGC behaviour, noise, loss, timing jitter). ``SimConfig.from_dict({"hardware": name, ...})``
starts from a preset and applies the other keys on top, so a Hydra override ``data.sim.hardware=esp32`` (or
the ``hardware=`` group of the training config) selects one for data generation and training.

Subcarriers are the ones that carry signal, in ascending index order (the order a model sees): the FFT bins a
chip reports around them (nulls, guards, the DC bin; ESP32 and nexmon report FFT order) are the engine's
business (wdp.engine.input_adapt maps a router's bins onto a model's subcarriers by frequency).

| preset | card | band | subcarriers | rx x tx | I/Q |
|---|---|---|---|---|---|
| intel5300 | Intel 5300 (linux-80211n-csitool) | 2.4 GHz, 20 MHz | 30 (grouping Ng=2, -28..28) | 3 x 3 | 8-bit |
| esp32 | ESP32 (ESP32-CSI-Tool / esp-csi), HT20 | 2.4 GHz, 20 MHz | 52 (L-LTF, -26..-1, 1..26) | 1 x 1 | 8-bit |
| nexmon | Raspberry Pi bcm43455c0 (nexmon_csi), VHT80 | 5 GHz, 80 MHz | 242 (-122..-2, 2..122) | 1 x 1 | 16-bit |
| atheros | Atheros AR93xx (Atheros CSI Tool), HT40 | 5 GHz, 40 MHz | 114 (-58..-2, 2..58) | 3 x 3 | 10-bit |

The nexmon chip reports 256 FFT bins of an 80 MHz channel; 242 of them carry signal (the rest are guards,
nulls and DC); the atheros 40 MHz layout is MM-Fi's (3 x 114).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from wdp.csi.simulator.config import INTEL5300_SUBCARRIERS_20MHZ, Band, Impairments, SimConfig

ESP32_SUBCARRIERS_HT20: tuple[int, ...] = tuple(range(-26, 0)) + tuple(range(1, 27))
NEXMON_SUBCARRIERS_VHT80: tuple[int, ...] = tuple(range(-122, -1)) + tuple(range(2, 123))
ATHEROS_SUBCARRIERS_HT40: tuple[int, ...] = tuple(range(-58, -1)) + tuple(range(2, 59))
assert len(ESP32_SUBCARRIERS_HT20) == 52 and len(NEXMON_SUBCARRIERS_VHT80) == 242
assert len(ATHEROS_SUBCARRIERS_HT40) == 114


@dataclass(frozen=True)
class HardwarePreset:
    """One receiver family: the simulator config it implies and what a model card says about it."""

    name: str
    card: str  # the hardware, in words
    bandwidth_mhz: int
    band: Band
    n_rx: int
    n_tx: int
    rate_hz: float = 100.0
    impairments: Impairments = field(default_factory=Impairments)

    def sim_config(self, **overrides: Any) -> SimConfig:
        return dataclasses.replace(
            SimConfig(
                band=self.band,
                n_rx=self.n_rx,
                n_tx=self.n_tx,
                rate_hz=self.rate_hz,
                impairments=self.impairments,
                hardware=self.name,
            ),
            **overrides,
        )

    def describe(self) -> dict[str, Any]:
        """The preset as a model card records it (input_spec.hardware)."""
        return {
            "preset": self.name,
            "card": self.card,
            "band": {
                "center_hz": self.band.center_hz,
                "bandwidth_mhz": self.bandwidth_mhz,
                "subcarrier_spacing_hz": self.band.subcarrier_spacing_hz,
                "subcarrier_index": list(self.band.subcarrier_index),
            },
            "rx_antennas": self.n_rx,
            "tx_antennas": self.n_tx,
            "packet_rate_hz": self.rate_hz,
            "iq_bits": self.impairments.quantize_bits if self.impairments.quantize else None,
        }


HARDWARE_PRESETS: dict[str, HardwarePreset] = {
    p.name: p
    for p in (
        HardwarePreset(
            "intel5300",
            "Intel 5300 (linux-80211n-csitool), 3x3, 30 subcarrier groups",
            20,
            Band(2.437e9, 312.5e3, INTEL5300_SUBCARRIERS_20MHZ, 64),
            3,
            3,
        ),
        HardwarePreset(
            "esp32",
            "ESP32 (ESP32-CSI-Tool, esp-csi), 1x1 HT20, L-LTF subcarriers",
            20,
            Band(2.437e9, 312.5e3, ESP32_SUBCARRIERS_HT20, 64),
            1,
            1,
            # 8-bit I/Q at a lower set point than the 5300, a busier AGC, more noise, loss and timing jitter
            # (the ESP32 timestamps packets in software on a shared core)
            impairments=Impairments(
                target_rms=12.0,
                agc_step_rate_hz=0.5,
                agc_step_db=3.0,
                snr_db=20.0,
                packet_loss=0.05,
                burst_loss_rate_hz=0.1,
                jitter_std_s=0.003,
                chain_gain_db=0.0,
            ),
        ),
        HardwarePreset(
            "nexmon",
            "Raspberry Pi 3B+/4 bcm43455c0 (nexmon_csi), 1x1 VHT80, 256 FFT bins (242 used)",
            80,
            Band(5.21e9, 312.5e3, NEXMON_SUBCARRIERS_VHT80, 256),
            1,
            1,
            impairments=Impairments(
                target_rms=1000.0,
                quantize_bits=16,
                snr_db=25.0,
                packet_loss=0.03,
                jitter_std_s=0.002,
                chain_gain_db=0.0,
            ),
        ),
        HardwarePreset(
            "atheros",
            "Atheros AR93xx (Atheros CSI Tool), 3x3 HT40, 114 subcarriers (the MM-Fi layout)",
            40,
            Band(5.32e9, 312.5e3, ATHEROS_SUBCARRIERS_HT40, 128),
            3,
            3,
            impairments=Impairments(target_rms=150.0, quantize_bits=10),
        ),
    )
}


def hardware_preset(name: str) -> HardwarePreset:
    try:
        return HARDWARE_PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown hardware preset {name!r}; known: {', '.join(HARDWARE_PRESETS)}") from None
