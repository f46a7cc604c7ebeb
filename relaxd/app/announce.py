"""Home Assistant discovery on the bus: announced on connect and when HA comes online; stale rooms removed."""

from __future__ import annotations

import logging

from relaxd.core.config import Settings
from relaxd.core.discovery import discovery_messages, removal_messages, room_of_discovery_message
from relaxd.core.ports import EventBus
from relaxd.core.topics import Topics

log = logging.getLogger(__name__)


class Announcer:
    """Publishes the rooms' discovery configs (retained) and removes those of rooms that left the config."""

    def __init__(self, settings: Settings, topics: Topics, bus: EventBus, routine_names: list[str]) -> None:
        self.settings = settings
        self.topics = topics
        self.bus = bus
        self.routine_names = routine_names

    def publish(self) -> None:
        if not self.topics.discovery_prefix:
            return
        for topic, body in discovery_messages(self.settings, self.topics, self.routine_names):
            self.bus.publish(topic, body, retain=True)

    def remove_stale(self, topic: str, payload: bytes) -> None:
        """A retained discovery config seen at connect: ours, of a room no longer configured, goes."""
        room = room_of_discovery_message(topic, payload, self.topics)
        if room is None or room in self.settings.rooms:
            return
        log.info("removing Home Assistant discovery of room %s (no longer configured)", room)
        for removal_topic, body in removal_messages(self.topics, [room]):
            self.bus.publish(removal_topic, body, retain=True)
