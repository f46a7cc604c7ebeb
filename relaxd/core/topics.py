"""Every MQTT topic name relaxd uses, built in one place."""

from __future__ import annotations

from dataclasses import dataclass


def text_problem(text: str) -> str | None:
    """Why a broker would drop the connection over text in a topic or client id, or None.

    Mosquitto closes the connection ("protocol error") on control characters, surrogates and
    Unicode noncharacters, so relaxd refuses them in its config rather than never coming online."""
    for char in text:
        code = ord(char)
        if code == 0:
            return "must not contain NUL"
        if code <= 0x1F or 0x7F <= code <= 0x9F:
            return f"must not contain control character U+{code:04X}"
        if 0xD800 <= code <= 0xDFFF or 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFF) >= 0xFFFE:
            return f"must not contain U+{code:04X} (not a character MQTT allows)"
    return None


def filter_problem(topic_filter: str) -> str | None:
    """Why topic_filter cannot be subscribed to, or None: `+` and `#` only as whole levels, `#` only
    last, only characters a broker accepts, at most 65535 bytes (the MQTT rules a broker enforces)."""
    if not topic_filter:
        return "must not be empty"
    problem = text_problem(topic_filter)
    if problem is not None:
        return problem
    if len(topic_filter.encode()) > 65535:
        return "longer than MQTT allows (65535 bytes)"
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if ("+" in level or "#" in level) and len(level) > 1:
            return f"wildcards + and # must be a whole level, not {level!r}"
        if level == "#" and i != len(levels) - 1:
            return "# must be the last level"
    return None


@dataclass(frozen=True)
class Topics:
    """Topic names under a base topic (default `relaxd`) and a Home Assistant discovery prefix."""

    base: str = "relaxd"
    discovery_prefix: str | None = "homeassistant"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    def state(self, room: str) -> str:
        return f"{self.base}/{room}/state"

    def phase(self, room: str) -> str:
        return f"{self.base}/{room}/phase"

    def event(self, room: str) -> str:
        return f"{self.base}/{room}/event"

    def breath(self, room: str) -> str:
        """Each breath edge of a breathing phase (QoS 0, not retained), for followers that pace themselves."""
        return f"{self.base}/{room}/breath"

    @property
    def daemon_event(self) -> str:
        """Events about no room of the config, e.g. a command for a room relaxd does not have."""
        return f"{self.base}/event"

    def set(self, room: str) -> str:
        return f"{self.base}/{room}/set"

    def routine_set(self, room: str) -> str:
        """Home Assistant's routine select writes the routine for the next start here."""
        return f"{self.base}/{room}/routine/set"

    @property
    def set_wildcard(self) -> str:
        return f"{self.base}/+/set"

    def request(self, verb: str) -> str:
        return f"{self.base}/request/{verb}"

    @property
    def request_wildcard(self) -> str:
        return f"{self.base}/request/#"

    def response(self, verb: str) -> str:
        return f"{self.base}/response/{verb}"

    def room_of_set(self, topic: str) -> str | None:
        """The room id of a `<base>/<room>/set` topic, else None."""
        prefix, suffix = f"{self.base}/", "/set"
        if topic.startswith(prefix) and topic.endswith(suffix):
            room = topic[len(prefix) : -len(suffix)]
            return room if room and "/" not in room else None
        return None

    def room_of_routine_set(self, topic: str) -> str | None:
        prefix, suffix = f"{self.base}/", "/routine/set"
        if topic.startswith(prefix) and topic.endswith(suffix):
            room = topic[len(prefix) : -len(suffix)]
            return room if room and "/" not in room else None
        return None

    @property
    def routine_set_wildcard(self) -> str:
        return f"{self.base}/+/routine/set"

    def verb_of_request(self, topic: str) -> str | None:
        prefix = f"{self.base}/request/"
        return topic[len(prefix) :] if topic.startswith(prefix) and len(topic) > len(prefix) else None

    @property
    def ha_status(self) -> str | None:
        return f"{self.discovery_prefix}/status" if self.discovery_prefix else None

    def ha_config(self, component: str, node: str, object_id: str) -> str | None:
        """`<prefix>/<component>/<node>/<object_id>/config`; relaxd's node ids name the site (discovery.py)."""
        if not self.discovery_prefix:
            return None
        return f"{self.discovery_prefix}/{component}/{node}/{object_id}/config"

    @property
    def ha_config_wildcard(self) -> str | None:
        """Every discovery config topic (`relaxd_+` is no valid filter): filter what arrives."""
        return f"{self.discovery_prefix}/+/+/+/config" if self.discovery_prefix else None
