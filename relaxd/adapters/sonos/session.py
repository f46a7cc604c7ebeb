"""What relaxd did to a speaker during a session, to tell its own changes from the user's."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class Session:
    """Memory of one session (snapshot to restore): the volume and source relaxd set, and whether
    the user changed either by hand (relaxd then leaves it alone, and restore does not overwrite it)."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.last_volume: int | None = None  # what relaxd last set, answered by the speaker
        # Sent, but never answered (given up, cancelled): it may or may not have landed.
        self.unsure_volume: int | None = None
        self.our_uri: str | None = None  # the source relaxd started, as the speaker reports it
        self.hand_volume = False
        self.hand_source = False
        self.restore_plan: tuple[bool, bool] | None = None  # (hand_source, hand_volume), decided once
        self.muted_at_snapshot: bool | None = None  # None: unknown, so unmute to be sure

    @property
    def by_hand(self) -> bool:
        return self.hand_volume or self.hand_source

    def sending_volume(self, volume: int) -> None:
        self.unsure_volume = volume

    def sent_volume(self, volume: int) -> None:
        self.last_volume = volume
        self.unsure_volume = None

    def saw_volume(self, current: int) -> bool:
        """Note the volume as read now; True once the user has changed it during the session."""
        if self.hand_volume:
            return True
        if self.unsure_volume is not None:
            if current == self.unsure_volume:  # the unanswered change did land
                self.sent_volume(current)
                return False
            if self.last_volume is None or current == self.last_volume:  # it did not
                self.unsure_volume = None
                return False
        if self.last_volume is not None and current != self.last_volume:
            log.info(
                "speaker %s: volume changed by hand to %s (relaxd set %s); leaving it alone",
                self.where,
                current,
                self.last_volume,
            )
            self.hand_volume = True
        return self.hand_volume

    def saw_source(self, uri: str) -> bool:
        """Note the source as read now; True once the user has chosen other music during the session."""
        if not self.hand_source and self.our_uri is not None and uri != self.our_uri:
            log.info("speaker %s: source changed by hand to %s; leaving it alone", self.where, uri)
            self.hand_source = True
        return self.hand_source
