"""Philips Hue adapter (phue over a paced, fenced, deadline-bounded transport): the Lights port."""

from __future__ import annotations

from relaxd.adapters.hue.bridge import HueBridge
from relaxd.adapters.hue.identity import Identity, IdentityError
from relaxd.adapters.hue.lights import HueLights
from relaxd.adapters.hue.pairing import Paired, pair
from relaxd.adapters.hue.several import SeveralBridgesLights
from relaxd.adapters.hue.transport import HttpsMode, quiet_phue

__all__ = [
    "HttpsMode",
    "HueBridge",
    "HueLights",
    "Identity",
    "IdentityError",
    "Paired",
    "SeveralBridgesLights",
    "pair",
    "quiet_phue",
]
