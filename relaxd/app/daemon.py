"""`relaxd run`: one event loop for every room, the blocking pool, schedules, MQTT; signals and systemd."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import Callable
from typing import Protocol

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.clock import SystemClock
from relaxd.adapters.instance_lock import AlreadyRunning, InstanceLock
from relaxd.adapters.room_records import FileRoomRecords
from relaxd.adapters.snapshot_store import FileSnapshotStore
from relaxd.app import systemd
from relaxd.app.announce import Announcer
from relaxd.app.health import check_devices, feed_watchdog
from relaxd.app.router import Router
from relaxd.app.supervisor import Supervisor
from relaxd.core.breath_budget import BreathBudget
from relaxd.core.config import Settings
from relaxd.core.configfile import all_routines
from relaxd.core.engine import RoomEngine
from relaxd.core.ports import Clock, EventBus, Lights, Speaker
from relaxd.core.requests import Requests
from relaxd.core.room import Room
from relaxd.core.schedule_runner import ScheduleRunner
from relaxd.core.topics import Topics
from relaxd.core.triggers import TriggerMatcher

log = logging.getLogger(__name__)
Devices = dict[str, tuple[Lights | None, Speaker | None]]


class Bus(EventBus, Protocol):
    """The event bus the daemon runs: started after recovery, stopped last."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def build_devices(settings: Settings, calls: BlockingCalls) -> Devices:
    """The real Hue and Sonos adapters for each room (the libraries are imported only here)."""
    from relaxd.adapters.hue.build import build_lights
    from relaxd.adapters.sonos.build import build_speakers

    lights, speakers = build_lights(settings, calls), build_speakers(settings, calls)
    return {room_id: (lights[room_id], speakers[room_id]) for room_id in settings.rooms}


class Daemon:
    """The running daemon; the constructor and build() do no I/O, start() and shutdown() do it all."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        devices: Devices | None = None,
        bus_factory: Callable[[Daemon], Bus] | None = None,
        calls: BlockingCalls | None = None,
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.calls = calls or BlockingCalls(settings.io_threads)
        self.topics = Topics(settings.mqtt.base_topic, settings.mqtt.discovery_prefix)
        self.routines = all_routines(settings)
        self.triggers = TriggerMatcher(settings.triggers)
        self.supervisor = Supervisor()
        self.engines: dict[str, RoomEngine] = {}
        self.schedules: ScheduleRunner | None = None
        self.router: Router | None = None
        self.bus: Bus | None = None
        self.stopping = asyncio.Event()
        self._devices = devices
        self._bus_factory = bus_factory
        self._loop: asyncio.AbstractEventLoop | None = None
        self.announcer: Announcer | None = None

    # --- wiring -------------------------------------------------------------------------------

    def build(self) -> None:
        devices = self._devices if self._devices is not None else build_devices(self.settings, self.calls)
        store = FileSnapshotStore(self.settings.state_dir, self.calls)
        records = FileRoomRecords(self.settings.state_dir, self.calls)
        self.bus = self._bus_factory(self) if self._bus_factory is not None else self._mqtt_bus()
        breaths = BreathBudget(self.clock)  # one for every room: rooms on one bridge share its limits
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
                seq_store=records,
                breath_budget=breaths,
                breath_topic=self.topics.breath(room_id),
            )
        self.schedules = self._schedule_runner()
        announcer = Announcer(self.settings, self.topics, self.bus, sorted(self.routines))
        self.announcer = announcer
        self.router = Router(
            self.topics,
            self.engines,
            Requests(self.engines, self.schedules),
            self.triggers,
            self.bus,
            self.clock,
            publish_discovery=announcer.publish,
            remove_discovery=announcer.remove_stale,
        )

    def _schedule_runner(self) -> ScheduleRunner:
        from relaxd.adapters.fire_times import ApsFireTimes, zone
        from relaxd.adapters.schedule_store import FileScheduleStore

        tz = zone(self.settings.timezone)
        return ScheduleRunner(
            self.settings.schedules,
            self.engines,
            self.routines,
            fire_times=ApsFireTimes(tz),
            store=FileScheduleStore(self.settings.state_dir, self.calls),
            clock=self.clock,
            tz=tz,
            grace_s=self.settings.misfire_grace,
        )

    def _mqtt_bus(self) -> Bus:
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
            self.settings.mqtt,
            self.topics,
            self._handoff,
            subscriptions,
            on_connect=self._handoff_connected,
            on_request=self._handoff,
        )

    # paho's network thread: hand everything to the loop at once, never work here.

    def _handoff(
        self, topic: str, payload: bytes, retained: bool, reply: Callable[[bytes], None] | None = None
    ) -> None:
        loop, router = self._loop, self.router
        if loop is not None and router is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: relaxd is stopping
                loop.call_soon_threadsafe(router.receive, topic, payload, retained, reply)

    def _handoff_connected(self) -> None:
        loop, announcer = self._loop, self.announcer
        if loop is not None and announcer is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(announcer.publish)

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Rooms first (leftover snapshots restored before anything else), then schedules, then MQTT."""
        self._loop = asyncio.get_running_loop()
        if self.bus is None:
            self.build()
        assert self.bus is not None and self.schedules is not None and self.router is not None
        for room_id, engine in self.engines.items():
            self.supervisor.spawn(f"room {room_id}", engine.run)
        await asyncio.gather(*(engine.recover() for engine in self.engines.values()))
        try:
            await self.schedules.load()
        except Exception:  # a schedule must never keep the rooms from being served
            log.exception("schedules could not be loaded; relaxd runs without them")
        self.supervisor.spawn("schedules", self.schedules.run)
        self.supervisor.spawn("requests", self.router.serve_requests)
        every_s = self.settings.health_check_every
        self.supervisor.spawn("health", lambda: check_devices(self.engines, every_s))
        self.bus.start()
        watchdog_s = systemd.watchdog_interval_s()
        if watchdog_s is not None:
            self.supervisor.spawn("watchdog", lambda: feed_watchdog(self.engines, self.supervisor, watchdog_s))
        # What start-up built (modules, config, adapters) lives as long as the daemon: kept out of
        # every later collection, so a full collection in a pool thread no longer holds the loop.
        gc.collect()
        gc.freeze()
        # The pool's threads run Python too (soco parses every answer): let the loop have the
        # interpreter back within a millisecond, not the default 5, so phases start on time.
        sys.setswitchinterval(0.001)
        systemd.notify("READY=1\nSTATUS=relaxd running")
        log.info("relaxd running with rooms: %s", ", ".join(self.engines))

    async def run(self, *, handle_signals: bool = True) -> int:
        """Run until SIGTERM/SIGINT (or request_stop); every room restored on the way out."""
        loop = asyncio.get_running_loop()
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop)
        try:
            await self.start()
            await self.stopping.wait()
        finally:
            await self.shutdown()
        return 0

    def request_stop(self) -> None:
        if self.stopping.is_set():
            log.info("already stopping: restoring the rooms")
        self.stopping.set()

    def request_stop_threadsafe(self) -> None:
        """request_stop() from another thread (the demo runs the daemon beside its own work)."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.request_stop)

    async def shutdown(self) -> None:
        """Restore every room at once under one deadline; what cannot finish keeps its snapshot."""
        systemd.notify("STOPPING=1\nSTATUS=restoring rooms")
        log.info("shutting down: stopping sessions and restoring rooms")
        await self.supervisor.stop(["schedules", "requests", "health", "watchdog"])
        rooms = list(self.engines)
        shutdowns = [asyncio.create_task(self.engines[r].shutdown(), name=f"shutdown {r}") for r in rooms]
        pending: set[asyncio.Task[bool]] = set()
        if shutdowns:
            _, pending = await asyncio.wait(shutdowns, timeout=self.settings.shutdown_timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        kept = [r for r, t in zip(rooms, shutdowns, strict=True) if t in pending or not _restored(t)]
        if kept:
            log.error(
                "not restored within %.0f s: %s; their snapshots stay in the state dir and are restored at the "
                "next start",
                self.settings.shutdown_timeout,
                ", ".join(kept),
            )
        await self.supervisor.stop()
        for engine in self.engines.values():
            await engine.close()
        if self.bus is not None:
            await asyncio.to_thread(self.bus.stop)  # waits a moment for the broker to take `offline`
        self.calls.close()
        log.info("relaxd stopped")


def _restored(task: asyncio.Task[bool]) -> bool:
    return not task.cancelled() and task.exception() is None and bool(task.result())


def run_daemon(settings: Settings) -> int:
    """`relaxd run`: the instance lock first (before anything is read or changed), then the loop."""
    lock = InstanceLock(settings.state_dir)
    try:
        lock.acquire()
    except AlreadyRunning as exc:
        print(f"relaxd: {exc}", file=sys.stderr)
        return 1
    try:
        return asyncio.run(Daemon(settings).run())
    finally:
        lock.release()
