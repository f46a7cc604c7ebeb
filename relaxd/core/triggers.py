"""Button triggers: which configured trigger an incoming MQTT message fires, if any."""

from __future__ import annotations

import json
from typing import Any

from relaxd.core.config import TriggerConfig

MAX_TRIGGER_BYTES = 64 * 1024


def _topic_matches(pattern: str, topic: str) -> bool:
    """MQTT wildcard match (+ one level, # the rest)."""
    p_parts, t_parts = pattern.split("/"), topic.split("/")
    for i, part in enumerate(p_parts):
        if part == "#":
            return True
        if i >= len(t_parts) or (part != "+" and part != t_parts[i]):
            return False
    return len(p_parts) == len(t_parts)


def _payload_matches(match: dict[str, Any] | str, payload: bytes) -> bool:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return False
    if isinstance(match, str):
        return text.strip() == match
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return False
    return isinstance(data, dict) and all(k in data and data[k] == v for k, v in match.items())


class TriggerMatcher:
    """Matches messages against the configured triggers; retained messages never fire."""

    def __init__(self, triggers: list[TriggerConfig]) -> None:
        self.triggers = list(triggers)

    @property
    def topics(self) -> list[str]:
        return sorted({t.topic for t in self.triggers})

    def fired(self, topic: str, payload: bytes, retained: bool) -> list[TriggerConfig]:
        # A broker replaying an old retained button press must not start a session.
        if retained or len(payload) > MAX_TRIGGER_BYTES:
            return []
        return [t for t in self.triggers if _topic_matches(t.topic, topic) and _payload_matches(t.match, payload)]
