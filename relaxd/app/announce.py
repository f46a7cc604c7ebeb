"""Home Assistant discovery on the bus: announced on connect and when HA comes online; stale configs removed."""

from __future__ import annotations

import logging

from relaxd.core.config import Settings
from relaxd.core.configfile import all_routines
from relaxd.core.discovery import discovery_messages, ours
from relaxd.core.ports import EventBus
from relaxd.core.topics import Topics

log = logging.getLogger(__name__)


class Announcer:
    """Publishes the site's discovery configs (retained) and removes every retained config of this site that
    it no longer announces: rooms that left the config, entities a room lost, an older relaxd's configs."""

    def __init__(self, settings: Settings, topics: Topics, bus: EventBus, routine_names: list[str]) -> None:
        self.settings = settings
        self.topics = topics
        self.bus = bus
        known = all_routines(settings)
        self.routines = {name: known[name] for name in routine_names if name in known}
        self.messages = discovery_messages(settings, topics, self.routines)
        self._announced = {topic for topic, _ in self.messages}
        # Removal goes out once per stale config (the broker hands each retained config over once per
        # subscription; a removal echoed back is empty and ignored), and a room's state once per room.
        self._removed: set[str] = set()
        self._cleared: set[str] = set()

    def publish(self) -> None:
        for topic, body in self.messages:
            self.bus.publish(topic, body, retain=True)

    def remove_stale(self, topic: str, payload: bytes) -> None:
        """A retained discovery config seen at connect: this site's and no longer announced, it goes."""
        if topic in self._announced or topic in self._removed:
            return
        seen = ours(topic, payload, self.topics)
        if seen is None:
            return
        log.info("removing Home Assistant discovery config %s (no longer announced)", topic)
        self._removed.add(topic)
        self.bus.publish(topic, "", retain=True)
        room = seen.room
        if room is not None and room not in self.settings.rooms and room not in self._cleared:
            self._cleared.add(room)
            log.info("clearing the retained state of room %s (no longer configured)", room)
            self.bus.publish(self.topics.state(room), "", retain=True)
            self.bus.publish(self.topics.phase(room), "", retain=True)
