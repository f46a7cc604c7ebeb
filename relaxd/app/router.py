"""MQTT messages on the event loop: commands to rooms, requests to their handlers, triggers, discovery."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from relaxd.core.engine import RoomEngine
from relaxd.core.events import MAX_COMMAND_BYTES, Command, CommandRejected, excerpt, iso_utc, parse_command
from relaxd.core.ports import Clock, EventBus
from relaxd.core.requests import Requests
from relaxd.core.topics import Topics
from relaxd.core.triggers import TriggerMatcher

log = logging.getLogger(__name__)
MAX_QUEUED_REQUESTS = 10_000
MAX_ROUTINE_BYTES = 256  # a routine name is at most 64 characters
MAX_ECHOED_TOPIC_CHARS = 120  # of the topic a command came on, in its rejection

# Sends the one reply to a request to where its sender asked (MQTT 5 response topic).
Reply = Callable[[bytes], None]


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
        self._queue: asyncio.Queue[tuple[str, bytes, Reply | None]] = asyncio.Queue(MAX_QUEUED_REQUESTS)
        self._quick: set[asyncio.Task[None]] = set()

    def receive(self, topic: str, payload: bytes, retained: bool, reply: Reply | None = None) -> None:
        """One message; reply, if given, is where a request's answer goes instead of `<base>/response/<verb>`."""
        try:
            self._route(topic, payload, retained, reply)
        except Exception:  # one bad message must never stop the next one
            log.exception("MQTT message on %s could not be handled", excerpt(topic, 120))

    def _route(self, topic: str, payload: bytes, retained: bool, reply: Reply | None) -> None:
        room_id = self.topics.room_of_set(topic)
        if room_id is not None:
            if payload:  # an empty payload is a retained command being cleared: nothing to answer
                self._on_command(topic, room_id, payload, retained)
            return
        room_id = self.topics.room_of_routine_set(topic)
        if room_id is not None:
            if not retained and payload:
                if room_id in self.engines:
                    self._on_routine(room_id, payload)
                else:
                    self._unknown_room(topic, room_id, None)
            return
        verb = self.topics.verb_of_request(topic)
        if verb is not None:
            if not retained and payload:
                self._on_request(verb, payload, reply)
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

    def _on_command(self, topic: str, room_id: str, payload: bytes, retained: bool) -> None:
        engine = self.engines.get(room_id)
        if engine is None:
            if not retained:  # a broker's stale command for a room relaxd does not have: nobody to answer
                self._unknown_room(topic, room_id, payload)
            return
        try:
            if retained:
                # A stale command replayed by the broker (or, with MQTT 5, any retained one) must not
                # start anything.
                raise CommandRejected("retained command ignored; publish commands without retain")
            command = parse_command(payload)
        except CommandRejected as exc:
            engine.reject(exc.reason, exc.transaction)
            return
        engine.submit(command)

    def _unknown_room(self, topic: str, room_id: str, command: bytes | None) -> None:
        """Rejected on the daemon's own event topic: a made-up room must not get topics of its own."""
        transaction: Any = None
        if command is not None:
            try:
                transaction = parse_command(command).transaction
            except CommandRejected as exc:
                transaction = exc.transaction
        shown = topic if len(topic) <= MAX_ECHOED_TOPIC_CHARS else topic[: MAX_ECHOED_TOPIC_CHARS - 3] + "..."
        event = {
            "event": "command_rejected",
            "at": iso_utc(self.clock.now()),
            "topic": shown,
            "reason": f"unknown room {excerpt(room_id, 66)}",
            "transaction": transaction,
        }
        log.debug("command on %s rejected: unknown room", excerpt(topic, 80))
        self.bus.publish(self.topics.daemon_event, json.dumps(event, separators=(",", ":")), retain=False, qos=1)

    def _on_request(self, verb: str, payload: bytes, reply: Reply | None) -> None:
        if self.requests.is_quick(verb):
            task = asyncio.create_task(self._answer(verb, payload, reply))  # waits on nothing: done at once
            self._quick.add(task)
            task.add_done_callback(self._quick.discard)
            return
        try:
            self._queue.put_nowait((verb, payload, reply))
        except asyncio.QueueFull:
            log.warning("%d requests wait already; %s dropped", MAX_QUEUED_REQUESTS, excerpt(verb))
            busy = {"status": "error", "error": "relaxd is busy; try again", "transaction": None}
            self._send_reply(verb, busy, reply)

    async def serve_requests(self) -> None:
        """The requests task: one at a time, in the order they came."""
        while True:
            verb, payload, reply = await self._queue.get()
            await self._answer(verb, payload, reply)

    async def _answer(self, verb: str, payload: bytes, reply: Reply | None) -> None:
        try:
            answer = await self.requests.answer(verb, payload)
        except Exception as exc:  # a bug in a handler still gets its one reply
            log.exception("request %s failed", excerpt(verb))
            answer = {"status": "error", "error": f"internal error: {type(exc).__name__}", "transaction": None}
        self._send_reply(verb, answer, reply)

    def _send_reply(self, verb: str, answer: dict[str, Any], reply: Reply | None) -> None:
        if reply is not None:
            reply(json.dumps(answer).encode())
        else:
            self.bus.publish(self.topics.response(verb), json.dumps(answer), retain=False)
