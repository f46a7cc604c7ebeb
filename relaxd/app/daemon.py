"""`relaxd run`: wires config, adapters and one session engine per room; signals and systemd."""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from relaxd.adapters.clock import SystemClock
from relaxd.adapters.snapshot_store import FileSnapshotStore
from relaxd.app import systemd
from relaxd.core.config import ROOM_ID_RE, Settings
from relaxd.core.configfile import all_routines
from relaxd.core.engine import RoomEngine
from relaxd.core.events import Command, CommandRejected, Event, iso_utc, parse_command
from relaxd.core.ports import Clock, EventBus, Lights, Speaker
from relaxd.core.room import Room
from relaxd.core.schedule_runner import ScheduleRunner
from relaxd.core.topics import Topics
from relaxd.core.triggers import TriggerMatcher

log = logging.getLogger(__name__)


def build_devices(settings: Settings) -> dict[str, tuple[Lights | None, Speaker | None]]:
    """The real Hue and Sonos adapters for each room (one HueBridge shared by all rooms)."""
    from relaxd.adapters.hue import HueBridge, HueLights
    from relaxd.adapters.sonos import SonosSpeaker

    bridge = None
    if settings.hue is not None:
        bridge = HueBridge(
            settings.hue.host,
            settings.hue.username.get_secret_value(),
            https=settings.hue.https,
            timeout_s=settings.hue.timeout,
        )
    timeout_s = settings.hue.timeout if settings.hue is not None else 5.0
    devices: dict[str, tuple[Lights | None, Speaker | None]] = {}
    for room_id, room in settings.rooms.items():
        lights: Lights | None = None
        speaker: Speaker | None = None
        if room.lights is not None and bridge is not None:
            lights = HueLights(bridge, group=room.lights.group, names=room.lights.names)
        if room.speaker is not None:
            speaker = SonosSpeaker(
                host=room.speaker.host, name=room.speaker.name, max_volume=room.max_volume, timeout_s=timeout_s
            )
        devices[room_id] = (lights, speaker)
    return devices


class Daemon:
    """The running daemon: rooms, their threads, the MQTT bus and the message routing."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        devices: dict[str, tuple[Lights | None, Speaker | None]] | None = None,
        bus_factory: Callable[[Daemon], EventBus] | None = None,
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.topics = Topics(settings.mqtt.base_topic, settings.mqtt.discovery_prefix)
        self.routines = all_routines(settings)
        self.triggers = TriggerMatcher(settings.triggers)
        self._devices = devices
        self._bus_factory = bus_factory
        self.engines: dict[str, RoomEngine] = {}
        self.schedules: ScheduleRunner | None = None
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._orphan_seq = 0
        self.bus: EventBus | None = None

    # --- wiring -------------------------------------------------------------------------------

    def _make_bus(self) -> EventBus:
        if self._bus_factory is not None:
            return self._bus_factory(self)
        from relaxd.adapters.mqtt import MqttBus

        subscriptions = [
            self.topics.set_wildcard,
            self.topics.routine_set_wildcard,
            self.topics.request_wildcard,
            *self.triggers.topics,
        ]
        if self.topics.ha_status:
            subscriptions.append(self.topics.ha_status)
        if self.topics.ha_config_wildcard:
            # Retained configs of rooms that left the config are found here and removed.
            subscriptions.append(self.topics.ha_config_wildcard)
        return MqttBus(
            self.settings.mqtt, self.topics, self.on_message, subscriptions, on_connect=self.publish_discovery
        )

    def build(self) -> None:
        devices = self._devices if self._devices is not None else build_devices(self.settings)
        store = FileSnapshotStore(self.settings.state_dir)
        self.bus = self._make_bus()
        for room_id, room_cfg in self.settings.rooms.items():
            lights, speaker = devices[room_id]
            room = Room(
                room_id,
                store,
                lights=lights,
                speaker=speaker,
                music=room_cfg.music.source() if room_cfg.music else None,
                max_volume=room_cfg.max_volume,
                restore_fade_s=room_cfg.restore_fade,
                speed=self.clock.speed,
            )
            self.engines[room_id] = RoomEngine(
                room,
                self.bus,
                self.clock,
                self.routines,
                default_routine=room_cfg.routine,
                retry_every_s=self.settings.retry_every,
            )
        self.schedules = self._make_schedules()

    def _make_schedules(self) -> ScheduleRunner:
        from relaxd.adapters.fire_times import ApsFireTimes, zone
        from relaxd.adapters.schedule_store import FileScheduleStore

        tz = zone(self.settings.timezone)
        return ScheduleRunner(
            self.settings.schedules,
            self.engines,
            self.routines,
            fire_times=ApsFireTimes(tz),
            store=FileScheduleStore(self.settings.state_dir),
            clock=self.clock,
            tz=tz,
            grace_s=self.settings.misfire_grace,
        )

    # --- lifecycle ----------------------------------------------------------------------------

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; every room restored on the way out. Returns the exit code."""
        self.build()
        assert self.bus is not None and self.schedules is not None
        # Loaded before the bus starts, so the first schedule request finds them; runs missed while
        # the daemon was down are queued into the rooms, which act on them after recovery below.
        self.schedules.load()
        start = getattr(self.bus, "start", None)
        if start is not None:
            start()
        # Leftover snapshots from a crash are restored before anything else happens.
        self._each_room(lambda e: e.recover())
        for room_id, engine in self.engines.items():
            thread = threading.Thread(target=engine.run, args=(self.stopping,), name=f"room-{room_id}", daemon=True)
            thread.start()
            self._threads.append(thread)
        runner = threading.Thread(target=self.schedules.run, args=(self.stopping,), name="schedules", daemon=True)
        runner.start()
        self._threads.append(runner)
        systemd.notify("READY=1\nSTATUS=relaxd running")
        log.info("relaxd running with rooms: %s", ", ".join(self.engines))
        watchdog_s = systemd.watchdog_interval_s()
        while not self.stopping.wait(watchdog_s):
            systemd.notify("WATCHDOG=1")
        self.shutdown()
        return 0

    def request_stop(self, *_: Any) -> None:
        self.stopping.set()
        for engine in self.engines.values():
            engine.wake.set()
        if self.schedules is not None:
            self.schedules.wake.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    def shutdown(self) -> None:
        systemd.notify("STOPPING=1\nSTATUS=restoring rooms")
        log.info("shutting down: stopping sessions and restoring rooms")
        for thread in self._threads:
            thread.join()
        self._each_room(lambda e: e.shutdown())
        stop = getattr(self.bus, "stop", None)
        if stop is not None:
            stop()
        log.info("relaxd stopped")

    def _each_room(self, call: Callable[[RoomEngine], None]) -> None:
        if not self.engines:
            return
        with ThreadPoolExecutor(max_workers=min(16, len(self.engines)), thread_name_prefix="rooms") as pool:
            for future in [pool.submit(call, e) for e in self.engines.values()]:
                future.result()

    # --- MQTT messages (paho's thread) -------------------------------------------------------

    def on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        room_id = self.topics.room_of_set(topic)
        if room_id is not None:
            self._on_command(room_id, payload, retained)
            return
        room_id = self.topics.room_of_routine_set(topic)
        if room_id is not None:
            if room_id in self.engines and not retained:
                self.engines[room_id].select_routine(payload.decode("utf-8", "replace").strip())
            return
        verb = self.topics.verb_of_request(topic)
        if verb is not None:
            if not retained:
                self._on_request(verb, payload)
            return
        if topic == self.topics.ha_status:
            if payload.strip() == b"online":
                self.publish_discovery()
            return
        if self.topics.discovery_prefix and topic.startswith(self.topics.discovery_prefix + "/"):
            self._on_discovery_config(topic, payload, retained)
            return
        for trigger in self.triggers.fired(topic, payload, retained):
            engine = self.engines.get(trigger.room)
            if engine is not None:
                log.info("trigger %s fired: %s room %s", topic, trigger.do, trigger.room)
                engine.submit(Command(action=trigger.do, routine=trigger.routine, source="trigger"))

    def _on_command(self, room_id: str, payload: bytes, retained: bool) -> None:
        engine = self.engines.get(room_id)
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
        if self.bus is None or not ROOM_ID_RE.match(room_id):
            log.warning("command for invalid room id ignored: %s", exc.reason)
            return
        self._orphan_seq += 1
        event = Event(
            event="command_rejected",
            room=room_id,
            at=iso_utc(self.clock.now()) or "",
            seq=self._orphan_seq,
            reason=exc.reason,
            transaction=exc.transaction,
        )
        self.bus.publish_event(room_id, event.payload())

    def _on_request(self, verb: str, payload: bytes) -> None:
        transaction: str | None = None
        request: dict[str, Any] = {}
        try:
            text = payload.decode("utf-8").strip()
            loaded = json.loads(text) if text else {}
            if not isinstance(loaded, dict):
                raise ValueError("request must be a JSON object")
            request = loaded
            raw_tx = request.get("transaction")
            transaction = str(raw_tx)[:256] if isinstance(raw_tx, str | int) else None
            data = self._answer(verb, request)
            reply: dict[str, Any] = {"status": "ok", "data": data, "transaction": transaction}
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            reply = {"status": "error", "error": str(exc), "transaction": transaction}
        publish = getattr(self.bus, "publish", None)
        if publish is not None:
            publish(self.topics.response(verb), json.dumps(reply), retain=False)

    def _answer(self, verb: str, request: dict[str, Any]) -> Any:
        if verb == "status":
            room = request.get("room")
            if room is not None:
                if room not in self.engines:
                    raise ValueError(f"unknown room {room!r}")
                return self.engines[room].status()
            return {room_id: engine.status() for room_id, engine in self.engines.items()}
        if verb.startswith("schedule/") and self.schedules is not None:
            return self.schedules.handle(verb, request)
        raise ValueError(f"unknown request {verb!r}; known: status, schedule/add, schedule/list, schedule/remove")

    def _on_discovery_config(self, topic: str, payload: bytes, retained: bool) -> None:
        from relaxd.core.discovery import removal_messages, room_of_discovery_message

        room = room_of_discovery_message(topic, payload, self.topics) if retained else None
        publish = getattr(self.bus, "publish", None)
        if room is None or room in self.engines or publish is None:
            return
        log.info("removing Home Assistant discovery of room %s (no longer configured)", room)
        for removal_topic, body in removal_messages(self.topics, [room]):
            publish(removal_topic, body, retain=True)

    def publish_discovery(self) -> None:
        publish = getattr(self.bus, "publish", None)
        if publish is None or not self.topics.discovery_prefix:
            return
        from relaxd.core.discovery import discovery_messages

        for topic, body in discovery_messages(self.settings, self.topics, sorted(self.routines)):
            publish(topic, body, retain=True)
