"""One Sonos speaker as relaxd reaches it: found by host or room name, its calls through its one fence."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any

import soco
import soco.discovery

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.sonos.calls import DEVICE, SpeakerCalls
from relaxd.adapters.sonos.session import Session
from relaxd.core.ports import DeviceError

FAVORITES_TTL_S = 60.0
DISCOVERY_S = 5.0  # soco's multicast search for a room name, on top of the usual budget


class SonosDevice:
    """A configured speaker (host or Sonos room name), resolved on first use; no I/O before."""

    def __init__(
        self,
        calls: BlockingCalls,
        host: str | None = None,
        name: str | None = None,
        timeout_s: float = 5.0,
        find_by_name: Callable[[str], Any] | None = None,
    ) -> None:
        if not host and not name:
            raise ValueError("a Sonos speaker needs a host or a room name")
        self.host = host
        self.name = name
        self.timeout_s = timeout_s
        # Multicast discovery, only for a speaker configured by room name; replaceable for tests.
        self._find_by_name = find_by_name or soco.discovery.by_name
        self.where = host or repr(name)
        self.call = SpeakerCalls(calls, self.where, timeout_s)
        self._soco: Any = None
        self.uid: str | None = None
        self.session = Session(self.where)
        self._favorites: tuple[float, list[Any]] | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def of(cls, calls: BlockingCalls, soco_device: Any, timeout_s: float) -> SonosDevice:
        """A speaker known from the zone group topology (another room's), already resolved."""
        device = cls(calls, host=f"{soco_device.ip_address}:{getattr(soco_device, 'port', 1400)}", timeout_s=timeout_s)
        device._soco = soco_device
        return device

    async def soco(self) -> Any:
        """The soco.SoCo of this speaker, found on first use (its uid read with it)."""
        if self._soco is not None:
            return self._soco
        async with self._lock:
            if self._soco is None:
                self._soco = await self._resolve()
        return self._soco

    async def soco_uid(self) -> str:
        """The speaker's uid (RINCON_...), read once (soco reads it with the zone group state)."""
        if self.uid is None:
            device = await self.soco()
            self.uid = str(await self.call("read the speaker's id", lambda: device.uid, requests_n=2))
        return self.uid

    async def _resolve(self) -> Any:
        if self.host:
            address, _, port = self.host.rpartition(":") if ":" in self.host else (self.host, "", "")
            return await self.call(
                "resolve the host", lambda: soco.SoCo(socket.gethostbyname(address), int(port or 1400))
            )
        # discovery (multicast) only ever happens for a speaker configured by room name
        name = self.name or ""
        device = await self.call(
            f"discover {name!r}", lambda: self._find_by_name(name), budget_s=self.timeout_s + DISCOVERY_S
        )
        if device is None:
            raise DeviceError(DEVICE, f"no Sonos speaker named {self.name!r} was found")
        return device

    async def favorites(self) -> list[Any]:
        """The Sonos favorites, read at most once a minute: a session start should not wait for
        a browse that almost never changes (a favorite added in the app shows up a minute later)."""
        now_s = time.monotonic()
        cached = self._favorites
        if cached is not None and now_s - cached[0] < FAVORITES_TTL_S:
            return cached[1]
        device = await self.soco()
        favorites: list[Any] = await self.call(
            "list the Sonos favorites",
            lambda: list(device.music_library.get_sonos_favorites(complete_result=True)),
            requests_n=2,
        )
        self._favorites = (now_s, favorites)
        return favorites

    def forget_favorites(self) -> None:
        self._favorites = None  # a broken or outdated list is read again next time
