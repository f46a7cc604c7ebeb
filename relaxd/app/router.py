"""MQTT messages on the event loop: commands to rooms, requests to their handlers, triggers, discovery."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping

from relaxd.core.config import ROOM_ID_RE
from relaxd.core.engine import RoomEngine
from relaxd.core.events import MAX_COMMAND_BYTES, Command, CommandRejected, Event, excerpt, iso_utc, parse_command
from relaxd.core.ports import Clock, EventBus
from relaxd.core.requests import Requests
from relaxd.core.topics import Topics
from relaxd.core.triggers import TriggerMatcher

log = logging.getLogger(__name__)
MAX_QUEUED_REQUESTS = 10_000
MAX_ROUTINE_BYTES = 256  # a routine name is at most 64 characters


class Router:
    """Takes every subscribed message (handed over from paho's thread) and sends it where it belongs.

    Nothing here blocks: commands only queue into a room's engine, `status` is answered at once, and
    requests that write to the state dir are answered in order by serve_requests().
    """

    def __init__(
        self,
        topics: Topics,
        engines: Mapping[str, RoomEngine],
        requests: Requests,
        triggers: TriggerMatcher,
        bus: EventBus,
        clock: Clock,
        *,
        publish_discovery: Callable[[], None] = lambda: None,
        remove_discovery: Callable[[str, bytes], None] = lambda topic, payload: None,
    ) -> None:
        self.topics = topics
        self.engines = engines
        self.requests = requests
        self.triggers = triggers
        self.bus = bus
        self.clock = clock
        self.publish_discovery = publish_discovery
        self.remove_discovery = remove_discovery
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(MAX_QUEUED_REQUESTS)
        self._orphan_seq = 0
        self._quick: set[asyncio.Task[None]] = set()

    def receive(self, topic: str, payload: bytes, retained: bool) -> None:
        try:
            self._route(topic, payload, retained)
        except Exception:  # one bad message must never stop the next one
            log.exception("MQTT message on %s could not be handled", excerpt(topic, 120))

    def _route(self, topic: str, payload: bytes, retained: bool) -> None:
        room_id = self.topics.room_of_set(topic)
        if room_id is not None:
            if payload:  # an empty payload is a retained command being cleared: nothing to answer
                self._on_command(room_id, payload, retained)
            return
        room_id = self.topics.room_of_routine_set(topic)
        if room_id is not None:
            if room_id in self.engines and not retained and payload:
                self._on_routine(room_id, payload)
            return
        verb = self.topics.verb_of_request(topic)
        if verb is not None:
            if not retained and payload:
                self._on_request(verb, payload)
            return
        if len(payload) > MAX_COMMAND_BYTES:
            log.warning("MQTT message on %s ignored: %d bytes", excerpt(topic, 80), len(payload))
            return
        if topic == self.topics.ha_status:
            if payload.strip() == b"online":
                self.publish_discovery()
            return
        if self.topics.discovery_prefix and topic.startswith(self.topics.discovery_prefix + "/"):
            if retained:
                self.remove_discovery(topic, payload)
            return
        for trigger in self.triggers.fired(topic, payload, retained):
            engine = self.engines.get(trigger.room)
            if engine is not None:
                log.info("trigger %s fired: %s room %s", excerpt(topic, 120), trigger.do, trigger.room)
                engine.submit(Command(action=trigger.do, routine=trigger.routine, source="trigger"))

    def _on_routine(self, room_id: str, payload: bytes) -> None:
        engine = self.engines[room_id]
        if len(payload) > MAX_ROUTINE_BYTES:
            engine.reject(f"routine name too long ({len(payload)} bytes, at most {MAX_ROUTINE_BYTES})")
            return
        engine.select_routine(payload.decode("utf-8", "replace").strip())

    def _on_command(self, room_id: str, payload: bytes, retained: bool) -> None:
        engine = self.engines.get(room_id)
        if engine is None and retained:
            return  # a broker's stale command for a room relaxd does not have: nobody to answer
        try:
            if retained:
                # A stale command replayed by the broker must not start anything.
                raise CommandRejected("retained command ignored; publish commands without retain")
            command = parse_command(payload)
            if engine is None:
                raise CommandRejected(f"unknown room {room_id!r}", command.transaction)
        except CommandRejected as exc:
            if engine is not None:
                engine.reject(exc.reason, exc.transaction)
            else:
                self._orphan_rejection(room_id, exc)
            return
        engine.submit(command)

    def _orphan_rejection(self, room_id: str, exc: CommandRejected) -> None:
        if not ROOM_ID_RE.match(room_id):
            log.warning("command for invalid room id ignored: %s", exc.reason)
            return
        self._orphan_seq += 1
        at = iso_utc(self.clock.now()) or ""
        event = Event(
            event="command_rejected",
            room=room_id,
            at=at,
            seq=self._orphan_seq,
            reason=exc.reason,
            transaction=exc.transaction,
        )
        self.bus.publish_event(room_id, event.payload())

    def _on_request(self, verb: str, payload: bytes) -> None:
        if self.requests.is_quick(verb):
            task = asyncio.create_task(self._reply(verb, payload))  # waits on nothing: done at once
            self._quick.add(task)
            task.add_done_callback(self._quick.discard)
            return
        try:
            self._queue.put_nowait((verb, payload))
        except asyncio.QueueFull:
            log.warning("%d requests wait already; %s dropped", MAX_QUEUED_REQUESTS, excerpt(verb))
            reply = {"status": "error", "error": "relaxd is busy; try again", "transaction": None}
            self.bus.publish(self.topics.response(verb), json.dumps(reply), retain=False)

    async def serve_requests(self) -> None:
        """The requests task: one at a time, in the order they came."""
        while True:
            verb, payload = await self._queue.get()
            await self._reply(verb, payload)

    async def _reply(self, verb: str, payload: bytes) -> None:
        try:
            reply = await self.requests.answer(verb, payload)
        except Exception as exc:  # a bug in a handler still gets its one reply
            log.exception("request %s failed", excerpt(verb))
            reply = {"status": "error", "error": f"internal error: {type(exc).__name__}", "transaction": None}
        self.bus.publish(self.topics.response(verb), json.dumps(reply), retain=False)
