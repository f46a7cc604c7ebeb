"""Device health checks while rooms are idle or busy, and the systemd watchdog fed only by live rooms."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from relaxd.app import systemd
from relaxd.app.supervisor import Supervisor
from relaxd.core.engine import RoomEngine

log = logging.getLogger(__name__)


async def check_devices(engines: Mapping[str, RoomEngine], every_s: float) -> None:
    """Every every_s, ask each room to check its devices (rooms on one bridge share the read)."""
    while True:
        for engine in engines.values():
            engine.check_devices()
        await asyncio.sleep(every_s)


async def feed_watchdog(
    engines: Mapping[str, RoomEngine],
    supervisor: Supervisor,
    interval_s: float,
    notify: Callable[[str], object] = systemd.notify,
) -> None:
    """WATCHDOG=1 only while every room's engine answers its pings and no supervised task is dead:
    a stuck room makes systemd restart relaxd, which restores the room from its snapshot."""
    token = 0
    silent: set[str] = set()
    while True:
        token += 1
        for engine in engines.values():
            engine.ping(token)
        await asyncio.sleep(interval_s)
        stuck = {room for room, engine in engines.items() if engine.pong != token}
        dead = supervisor.dead()
        if not stuck and not dead:
            notify("WATCHDOG=1")
            silent = set()
        elif stuck | set(dead) != silent:
            silent = stuck | set(dead)
            log.error(
                "not feeding the watchdog: rooms not answering: %s; tasks ended: %s",
                ", ".join(sorted(stuck)) or "none",
                ", ".join(dead) or "none",
            )
