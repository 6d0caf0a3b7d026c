"""wdp: WiFi CSI to tracked human poses and events."""

from __future__ import annotations

__version__ = "0.1.0"
