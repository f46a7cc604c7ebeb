"""relaxd: turns a room into a massage room on cue and gives it back afterwards."""

from __future__ import annotations

__version__ = "0.1.0"
