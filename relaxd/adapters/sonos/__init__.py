"""Sonos adapter (soco): the Speaker port for a room's speakers and their groups."""

from relaxd.adapters.sonos.ramp import ramp_steps
from relaxd.adapters.sonos.speaker import SonosSpeaker, SpeakerRef

__all__ = ["SonosSpeaker", "SpeakerRef", "ramp_steps"]
