"""Sonos adapter (soco): the Speaker port."""

from relaxd.adapters.sonos.speaker import SonosSpeaker, ramp_steps

__all__ = ["SonosSpeaker", "ramp_steps"]
