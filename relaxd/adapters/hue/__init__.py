"""Philips Hue adapter (phue over a paced, timeout- and HTTPS-aware transport): the Lights port."""

from __future__ import annotations

from relaxd.adapters.hue.lights import HueLights
from relaxd.adapters.hue.transport import HttpsMode, HueBridge, pair, quiet_phue

__all__ = ["HttpsMode", "HueBridge", "HueLights", "pair", "quiet_phue"]
