"""Sonos adapter (soco): the Speaker port."""

from relaxd.adapters.sonos.ramp import ramp_steps
from relaxd.adapters.sonos.speaker import SonosSpeaker

__all__ = ["SonosSpeaker", "ramp_steps"]
