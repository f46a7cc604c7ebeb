"""Sonos zone groups: read the layout, take a room's speakers out of their groups, put them back."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from relaxd.adapters.sonos.device import SonosDevice
from relaxd.adapters.sonos.state import Group
from relaxd.core.ports import DeviceError

log = logging.getLogger(__name__)
SETTLE_S = 3.0  # a real household takes a moment to show a new layout (Home Assistant waits 5 s)
SETTLE_EVERY_S = 0.2


@dataclass(frozen=True)
class Layout:
    """The household's groups as the zone group topology says now."""

    groups: dict[str, tuple[str, ...]]  # coordinator uid -> members, coordinator first
    names: dict[str, str]  # uid -> zone name
    devices: dict[str, Any]  # uid -> soco.SoCo

    def coordinator_of(self, uid: str) -> str | None:
        return next((c for c, members in self.groups.items() if uid in members), None)

    def members(self, uid: str) -> tuple[str, ...]:
        coordinator = self.coordinator_of(uid)
        return self.groups[coordinator] if coordinator is not None else ()

    def group(self, uid: str) -> Group:
        members = self.members(uid) or (uid,)
        return Group(coordinator=members[0], members=list(members), names={u: self.names.get(u, u) for u in members})


def _parse(device: Any) -> Layout:
    device.zone_group_state.clear_cache()  # soco keeps the layout for 5 s; ours must be of now
    groups: dict[str, tuple[str, ...]] = {}
    names: dict[str, str] = {}
    devices: dict[str, Any] = {}
    for group in device.all_groups:
        coordinator = group.coordinator
        if coordinator is None:
            continue
        others = sorted((m for m in group.members if m.uid != coordinator.uid), key=lambda m: m.uid)
        groups[coordinator.uid] = (coordinator.uid, *(m.uid for m in others))
        for member in (coordinator, *others):
            names[member.uid] = member.player_name
            devices[member.uid] = member
    return Layout(groups, names, devices)


async def read_layout(device: SonosDevice) -> Layout:
    soco_device = await device.soco()
    return await device.call("read the zone groups", lambda: _parse(soco_device), requests_n=2)


async def leave(device: SonosDevice) -> None:
    """The speaker out of its group (BecomeCoordinatorOfStandaloneGroup)."""
    soco_device = await device.soco()
    await device.call("leave the group", soco_device.unjoin)


async def join(device: SonosDevice, coordinator: Any) -> None:
    """The speaker into coordinator's group (SetAVTransportURI x-rincon:<uid>)."""
    soco_device = await device.soco()
    await device.call("join the group", lambda: soco_device.join(coordinator))


async def delegate(device: SonosDevice, new_uid: str, rejoin: bool) -> None:
    """Coordination of the speaker's group moves to new_uid, its playback with it, without a gap."""
    soco_device = await device.soco()

    def run() -> None:
        soco_device.avTransport.DelegateGroupCoordinationTo(
            [("InstanceID", 0), ("NewCoordinator", new_uid), ("RejoinGroup", "1" if rejoin else "0")]
        )
        soco_device.zone_group_state.clear_cache()

    try:
        await device.call("hand the group over", run)
    except DeviceError as exc:
        if exc.code is None or rejoin:
            raise
        # A speaker without delegation: leaving the group hands its playback to a member anyway.
        log.info("speaker %s: cannot delegate (%s); leaving the group instead", device.where, exc.message)
        await leave(device)


async def settle(device: SonosDevice, done: Callable[[Layout], bool]) -> Layout:
    """The layout once done(layout) holds, or as it is after SETTLE_S (the caller checks again)."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        layout = await read_layout(device)
        if done(layout) or time.monotonic() >= deadline:
            return layout
        await asyncio.sleep(SETTLE_EVERY_S)


async def isolate(
    room: Sequence[SonosDevice], layout: Layout, failures: dict[str, DeviceError] | None = None
) -> Layout:
    """Every room speaker alone, the other members of its group untouched: members leave first (a
    coordinator that leaves hands its queue to a member), then a coordinator of other rooms' speakers
    hands its group over to one of them, so that they play on without a gap. With failures, a speaker
    that cannot be reached is noted there (by uid) and the others go on; without, its error is raised."""
    uids = {d.uid for d in room}

    async def each(device: SonosDevice, change: Callable[[], Awaitable[None]]) -> None:
        try:
            await change()
        except DeviceError as exc:
            if failures is None:
                raise
            failures[device.uid or device.where] = where(device, exc)

    for device in room:
        coordinator = layout.coordinator_of(device.uid or "")
        if coordinator is not None and coordinator != device.uid:
            await each(device, lambda device=device: leave(device))  # type: ignore[misc]
    reachable = [d for d in room if (d.uid or d.where) not in (failures or {})]
    if not reachable:
        return layout
    layout = await read_layout(reachable[0])
    for device in reachable:
        members = layout.groups.get(device.uid or "", ())
        others = [u for u in members[1:] if u not in uids]
        if others:
            await each(device, lambda device=device, to=others[0]: delegate(device, to, rejoin=False))  # type: ignore[misc]
        elif len(members) > 1:
            await each(device, lambda device=device: leave(device))  # type: ignore[misc]
    alone = {d.uid for d in reachable if (d.uid or d.where) not in (failures or {})}
    return await settle(reachable[0], lambda now: all(now.members(u) == (u,) for u in alone if u))


def where(device: SonosDevice, exc: DeviceError) -> DeviceError:
    """exc, saying which of the room's speakers it is about."""
    if exc.message.startswith(device.where):
        return exc
    return DeviceError(exc.device, f"{device.where}: {exc.message}", code=exc.code)


def same(layout: Layout, group: Group) -> bool:
    """The group is there now as it was saved: the same coordinator, the same members."""
    now = layout.members(group.coordinator)
    return bool(now) and now[0] == group.coordinator and set(now) == set(group.members)


@dataclass(frozen=True)
class Return:
    """Where a saved group's room speakers go back to: "own" (the room's coordinator plays its own
    saved music again), "host" (into the group host coordinates now), "alone" (nothing is left)."""

    kind: str
    host: str | None = None


def plan_return(group: Group, room: set[str], now: Layout) -> Return:
    """The group the room's speakers of a saved group rejoin: the group most of its other members
    are in now (its coordinator's first), whoever coordinates it now."""
    others = [u for u in group.members if u not in room and now.coordinator_of(u) is not None]
    if not others:
        return Return("own" if group.coordinator in room else "alone")
    counts: dict[str, int] = {}
    for uid in others:
        coordinator = now.coordinator_of(uid)
        assert coordinator is not None
        counts[coordinator] = counts.get(coordinator, 0) + 1
    host = max(counts, key=lambda c: (counts[c], -list(counts).index(c)))
    return Return("host", host)
