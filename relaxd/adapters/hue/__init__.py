"""Philips Hue adapter (phue over a paced, fenced, deadline-bounded transport): the Lights port."""

from __future__ import annotations

from relaxd.adapters.hue.bridge import HueBridge
from relaxd.adapters.hue.lights import HueLights
from relaxd.adapters.hue.pairing import pair
from relaxd.adapters.hue.transport import HttpsMode, quiet_phue

__all__ = ["HttpsMode", "HueBridge", "HueLights", "pair", "quiet_phue"]
