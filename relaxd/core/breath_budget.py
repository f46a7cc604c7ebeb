"""The breath budget shared by every room: which breaths each room's lights follow, within the limits."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from relaxd.core.ports import Clock, EdgeCost

log = logging.getLogger(__name__)
# Breath edges take at most this share of a rate limit: the rest stays free for phase scenes,
# restores and the commands of rooms that do not breathe, so those rarely wait behind an edge.
BREATH_SHARE = 0.75
LIGHT_EDGES = 2  # a breath moves the lights twice: up over the inhale, down over the exhale


@dataclass
class _Room:
    costs: list[EdgeCost]
    cycle_s: float  # one breath (clock seconds), with LIGHT_EDGES light edges in it
    credit: float = 0.0  # breaths owed to the room; one is spent per breath its lights follow
    claim: list[float] = field(default_factory=list)  # the light edges of its next breath
    since_s: float = -math.inf  # when its lights last followed a breath (never: before every room that did)

    @property
    def edges_per_s(self) -> float:
        return LIGHT_EDGES / self.cycle_s


@dataclass
class _Limit:
    limit: int
    window_s: float  # real seconds, stretched by the share
    reserved: list[tuple[float, int]] = field(default_factory=list)  # (clock monotonic, commands)
    said: bool = False  # the log says once that the rooms here need more than the budget


class BreathBudget:
    """Decides, a breath at a time, whether a room's lights follow it, for every room of the daemon.

    Each rate limit (a bridge's group commands, its light commands) gives breath edges at most
    `limit` commands in any `window_s / share`. The rooms under a limit share it evenly: when they
    need more, each room's lights follow the same fraction of breaths, spread evenly (a credit per
    breath), and rest at the bottom through the others: fewer breaths, never a late or bunched edge.
    A breath is only followed when every one of its light edges fits the window at its planned time,
    beside the next breath of every room owed one that has waited longer (so that rooms whose edges
    keep meeting the others' get their turn too).
    """

    def __init__(self, clock: Clock, share: float = BREATH_SHARE) -> None:
        if not 0 < share <= 1:
            raise ValueError("share must be above 0 and at most 1")
        self.clock = clock
        self.share = share
        self._rooms: dict[str, _Room] = {}
        self._limits: dict[str, _Limit] = {}

    def join(self, room: str, costs: Sequence[tuple[str, int, int, float]], cycle_s: float) -> None:
        """The room breathes from now on, a breath every cycle_s clock seconds, each light edge costing `costs`."""
        charges = [EdgeCost(*c) for c in costs]
        for charge in charges:
            known = self._limits.get(charge.key)
            window_s = charge.window_s / self.share
            if known is None or (known.limit, known.window_s) != (charge.limit, window_s):
                self._limits[charge.key] = _Limit(charge.limit, window_s, known.reserved if known else [])
        self._rooms[room] = _Room(charges, cycle_s)
        self._rooms[room].credit = 1.0 - self.fraction(room)  # the first breath is followed when it fits
        self._say()

    def leave(self, room: str) -> None:
        """The room stopped breathing (phase over, paused, stopped); its reservations lapse by themselves."""
        if self._rooms.pop(room, None) is not None:
            self._say()

    def fraction(self, room: str) -> float:
        """The share of its breaths the room's lights follow now (1.0: all of them)."""
        entry = self._rooms.get(room)
        if entry is None:
            return 0.0
        return min((self._limit_fraction(c.key) for c in entry.costs), default=1.0)

    def admit(self, room: str, times_s: Sequence[float], *, new_breath: bool = True) -> bool:
        """Whether the room's lights follow a breath whose light edges are planned at times_s (clock
        monotonic); reserved if so. new_breath=False: the rest of a breath already owed (a resume)."""
        entry = self._rooms.get(room)
        if entry is None:
            return False
        entry.claim = [t + entry.cycle_s for t in times_s]
        if new_breath:
            fraction = self.fraction(room)
            entry.credit = min(entry.credit + fraction, 1.0 + fraction)
            if entry.credit < 1.0 - 1e-9:
                return False
        now_s = self.clock.monotonic()
        if not all(self._fits(room, entry, charge, times_s, now_s) for charge in entry.costs):
            return False
        for charge in entry.costs:
            reserved = self._limits[charge.key].reserved
            reserved.extend((t, charge.commands) for t in times_s)
            reserved.sort()
        if new_breath:
            entry.credit -= 1.0
            entry.since_s = now_s
        return True

    def free_shift(
        self, room: str, costs: Sequence[tuple[str, int, int, float]], times_s: Sequence[float], cycle_s: float
    ) -> float:
        """How long (0 up to one breath) to put off a room's first breath, planned with light edges at
        times_s, so that it and the next fall where the other breathing rooms leave their limits room:
        rooms with the same breath then take turns within every breath instead of every other breath.
        0 when nowhere does (the credits share the limit then)."""
        now_s = self.clock.monotonic()
        charges = [EdgeCost(*c) for c in costs]
        windows = {c.key: c.window_s / self.share * self.clock.speed for c in charges}
        step, shift = min(windows.values()) / 8, 0.0
        while shift < cycle_s:
            ours = [t + shift + k * cycle_s for t in times_s for k in (0, 1)]
            if all(self._free(room, c, ours, windows[c.key], now_s) for c in charges):
                return shift
            shift += step
        return 0.0

    def fits_alone(self, costs: Sequence[tuple[str, int, int, float]], times_s: Sequence[float]) -> bool:
        """Whether one breath with these edges fits its limits at all (a breath too quick for a bridge)."""
        for cost in costs:
            charge = EdgeCost(*cost)
            points = [(t, charge.commands) for t in times_s]
            if _most_in_window(points, charge.window_s / self.share * self.clock.speed) > charge.limit:
                return False
        return True

    # -- internals ----------------------------------------------------------------------------------

    def _fits(self, name: str, entry: _Room, charge: EdgeCost, times_s: Sequence[float], now_s: float) -> bool:
        limit = self._limits[charge.key]
        window = limit.window_s * self.clock.speed  # the limit is in real seconds, the plan in clock ones
        limit.reserved = [(t, c) for t, c in limit.reserved if t > now_s - window]
        claims = [
            (t, c.commands)
            for other, r in self._rooms.items()
            if self._outranks(other, r, name, entry)
            for c in r.costs
            if c.key == charge.key
            for t in r.claim
            if t > now_s
        ]
        new = [(t, charge.commands) for t in times_s]
        return _most_around([*limit.reserved, *claims, *new], times_s, window) <= limit.limit

    def _free(self, room: str, charge: EdgeCost, ours: Sequence[float], window: float, now_s: float) -> bool:
        limit = self._limits.get(charge.key)
        reserved = [(t, c) for t, c in limit.reserved if t > now_s - window] if limit is not None else []
        theirs = [
            (t + k * r.cycle_s, c.commands)
            for name, r in self._rooms.items()
            if name != room
            for c in r.costs
            if c.key == charge.key
            for t in r.claim
            if t > now_s
            for k in (0, 1)
        ]
        points = [*reserved, *theirs, *((t, charge.commands) for t in ours)]
        return _most_around(points, ours, window) <= charge.limit

    def _outranks(self, other: str, r: _Room, name: str, entry: _Room) -> bool:
        """Whether room `other` goes first with its next breath: it is owed one and has waited longer."""
        if other == name or r.credit + self.fraction(other) < 1.0 - 1e-9:
            return False
        return (r.since_s, other) < (entry.since_s, name)

    def _limit_fraction(self, key: str) -> float:
        limit = self._limits[key]
        # commands a real second the limit gives breaths, and what the rooms under it ask for
        capacity = limit.limit / limit.window_s
        demand = sum(
            c.commands * r.edges_per_s * self.clock.speed for r in self._rooms.values() for c in r.costs if c.key == key
        )
        return 1.0 if demand <= capacity else capacity / demand

    def _say(self) -> None:
        for key, limit in self._limits.items():
            rooms = [name for name, r in self._rooms.items() if any(c.key == key for c in r.costs)]
            fraction = self._limit_fraction(key)
            if fraction >= 1.0:
                limit.said = False
            elif not limit.said:
                limit.said = True
                log.warning(
                    "%s: %d breathing rooms need more than the %d command(s) per %.2f s the breath may use "
                    "there; each room's lights now follow at most %.0f%% of the breaths, evenly spread, and rest "
                    "through the others (the breath topic still has every edge)",
                    key,
                    len(rooms),
                    limit.limit,
                    limit.window_s,
                    100 * fraction,
                )
            else:
                log.debug(
                    "%s: %d breathing rooms, their lights follow %.0f%% of breaths", key, len(rooms), 100 * fraction
                )


def _most_around(points: Sequence[tuple[float, int]], around: Sequence[float], window: float) -> int:
    """The most commands in any window of this length (start open, end closed) holding one of `around`."""
    most = 0
    for at in around:
        for end, _ in points:
            if at <= end < at + window:
                most = max(most, sum(c for t, c in points if end - window < t <= end))
    return most


def _most_in_window(points: Sequence[tuple[float, int]], window: float) -> int:
    """The most commands in any window of this length (half-open, starting at a point)."""
    ordered = sorted(points)
    most, total, first = 0, 0, 0
    for at, commands in ordered:
        total += commands
        while ordered[first][0] <= at - window:
            total -= ordered[first][1]
            first += 1
        most = max(most, total)
    return most
