"""One bridge's admission gate: FIFO command pacing at the send, connection slots, per-light fences."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from relaxd.core.ports import DeviceError

# What a request is to the gate: a light command, a group command, or anything else (reads).
Kind = Literal["light", "group", "read"]
# fence_timeout(what, budget_s) -> DeviceError: the adapter's error for a fence that did not clear.
FenceTimeout = Callable[[str, float], DeviceError]


@dataclass(frozen=True)
class Pacing:
    """A bridge's limits. The window is a little longer than the bridge's one second: the bridge
    counts commands when they arrive, a bit after relaxd saw them sent."""

    light_commands: int = 10
    group_commands: int = 1
    window_s: float = 1.1
    connections: int = 3  # newer firmware answers more concurrent requests with 429/503

    def __post_init__(self) -> None:
        if min(self.light_commands, self.group_commands, self.connections) < 1 or self.window_s <= 0:
            raise ValueError("pacing needs positive limits and window")


class Ticket:
    """One command's place in a pacing window: unsent (counts as sending now) until stamped."""

    __slots__ = ("sent_s",)

    def __init__(self) -> None:
        self.sent_s: float | None = None


class Window:
    """At most limit commands in any window_s, counted at the send; pure (the time is an argument)."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._tickets: list[Ticket] = []

    def _prune(self, now_s: float) -> None:
        self._tickets = [t for t in self._tickets if t.sent_s is None or t.sent_s > now_s - self.window_s]

    def has_room(self, now_s: float) -> bool:
        self._prune(now_s)
        return len(self._tickets) < self.limit

    def take(self) -> Ticket:
        ticket = Ticket()
        self._tickets.append(ticket)
        return ticket

    def forget(self, ticket: Ticket) -> None:
        """A command admitted but never sent: it takes no room."""
        with contextlib.suppress(ValueError):
            self._tickets.remove(ticket)

    def free_at_s(self, now_s: float) -> float | None:
        """When the window next has room by time alone (None: room now, or only a send can tell)."""
        self._prune(now_s)
        if len(self._tickets) < self.limit:
            return None
        sent = [t.sent_s for t in self._tickets if t.sent_s is not None]
        return min(sent) + self.window_s if sent else None


class Pass:
    """An admitted request: it holds a connection slot, its lights' fences and maybe a pacing ticket."""

    def __init__(self, gate: Gate, lights: frozenset[int], window: Window | None) -> None:
        self._gate = gate
        self._lights = lights
        self._window = window
        self._ticket = window.take() if window is not None else None
        self._loop = asyncio.get_running_loop()
        self._left = False

    def sent(self) -> None:
        """From the worker thread, once the request is written: the pacing window counts from now."""
        stamped_s = time.monotonic()
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody paces any more
            self._loop.call_soon_threadsafe(self._stamp, stamped_s)

    def _stamp(self, sent_s: float) -> None:
        if self._ticket is not None and not self._left:
            self._ticket.sent_s = max(sent_s, self._ticket.sent_s or 0.0)
            self._gate.pump()

    def leave(self) -> None:
        """The request has returned in its thread (not merely been given up on)."""
        if self._left:
            return
        self._left = True
        if self._ticket is not None and self._ticket.sent_s is None:
            # Maybe written just before it failed: count it as sent now, to be safe.
            self._ticket.sent_s = time.monotonic()
        self._gate.release(self._lights)

    def abandon(self) -> None:
        """Admitted, but its caller left before anything was started: it takes no slot, no pace."""
        if self._left:
            return
        self._left = True
        if self._window is not None and self._ticket is not None:
            self._window.forget(self._ticket)
        self._gate.release(self._lights)


class _Waiter:
    __slots__ = ("budget_s", "fence_timer", "future", "kind", "lights", "what")

    def __init__(self, kind: Kind, lights: frozenset[int], what: str, budget_s: float) -> None:
        self.kind = kind
        self.lights = lights
        self.what = what
        self.budget_s = budget_s
        self.future: asyncio.Future[Pass] = asyncio.get_running_loop().create_future()
        self.fence_timer: asyncio.TimerHandle | None = None


class Gate:
    """Admits one bridge's requests, first come first served, on the event loop.

    A command waits for its pace holding nothing, then gets the next free connection before any
    waiting read (a command paced at t must reach the bridge close to t). A command never overtakes
    an earlier waiting command to one of its lights, and is not sent while an earlier request to one
    of its lights is still running in its thread (given up, not yet returned); that wait is bounded
    by its budget. Every wait is a future: a cancelled waiter leaves the queue at once.
    """

    def __init__(self, pacing: Pacing, fence_timeout: FenceTimeout) -> None:
        self.pacing = pacing
        self._fence_timeout = fence_timeout
        self._windows: dict[Kind, Window] = {
            "light": Window(pacing.light_commands, pacing.window_s),
            "group": Window(pacing.group_commands, pacing.window_s),
        }
        self._free = pacing.connections
        self._busy: dict[int, int] = {}  # light id -> requests touching it still running
        self._queue: list[_Waiter] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at_s = 0.0

    @property
    def in_flight(self) -> int:
        return self.pacing.connections - self._free

    @property
    def waiting(self) -> int:
        return len(self._queue)

    async def enter(self, kind: Kind, lights: Iterable[int], what: str, budget_s: float) -> Pass:
        """Wait for this request's turn; DeviceError when its lights' fences do not clear in budget_s."""
        waiter = _Waiter(kind, frozenset(lights), what, budget_s)
        self._queue.append(waiter)
        self.pump()
        try:
            return await waiter.future
        except asyncio.CancelledError:
            if waiter in self._queue:
                self._forget(waiter)
                # Whoever waited behind it may go now.
                asyncio.get_running_loop().call_soon(self.pump)
            if waiter.future.done() and not waiter.future.cancelled() and waiter.future.exception() is None:
                waiter.future.result().abandon()  # admitted in the same instant it was cancelled
            raise

    def release(self, lights: frozenset[int]) -> None:
        self._free += 1
        for light in lights:
            left = self._busy.get(light, 0) - 1
            if left > 0:
                self._busy[light] = left
            else:
                self._busy.pop(light, None)
        self.pump()

    def pump(self) -> None:
        """Admit whatever may go now, in arrival order: commands first, then reads."""
        now_s = time.monotonic()
        for gone in [w for w in self._queue if w.future.done()]:
            self._forget(gone)  # cancelled; its task has not run its except clause yet
        paced_out: set[Kind] = set()
        claimed: set[int] = set()  # lights of earlier commands still waiting
        for waiter in [w for w in self._queue if w.kind != "read"]:
            if self._free == 0:
                break
            if waiter.kind in paced_out or not waiter.lights.isdisjoint(claimed):
                claimed |= waiter.lights
                continue
            if not self._windows[waiter.kind].has_room(now_s):
                paced_out.add(waiter.kind)
                claimed |= waiter.lights
                continue
            if any(light in self._busy for light in waiter.lights):
                self._start_fence_clock(waiter)
                claimed |= waiter.lights
                continue
            self._admit(waiter)
        for waiter in [w for w in self._queue if w.kind == "read"]:
            if self._free == 0:
                break
            self._admit(waiter)
        self._schedule(now_s)

    def _admit(self, waiter: _Waiter) -> None:
        self._forget(waiter)
        self._free -= 1
        for light in waiter.lights:
            self._busy[light] = self._busy.get(light, 0) + 1
        window = self._windows[waiter.kind] if waiter.kind != "read" else None
        waiter.future.set_result(Pass(self, waiter.lights, window))

    def _forget(self, waiter: _Waiter) -> None:
        self._queue.remove(waiter)
        if waiter.fence_timer is not None:
            waiter.fence_timer.cancel()

    def _start_fence_clock(self, waiter: _Waiter) -> None:
        if waiter.fence_timer is None:
            loop = asyncio.get_running_loop()
            waiter.fence_timer = loop.call_later(waiter.budget_s, self._fence_expired, waiter)

    def _fence_expired(self, waiter: _Waiter) -> None:
        if waiter in self._queue and not waiter.future.done():
            self._forget(waiter)
            waiter.future.set_exception(self._fence_timeout(waiter.what, waiter.budget_s))
            self.pump()

    def _schedule(self, now_s: float) -> None:
        """One timer for the moment a full window gets room again (sends and returns pump too)."""
        if not any(w.kind != "read" for w in self._queue):
            return
        times = [t for t in (w.free_at_s(now_s) for w in self._windows.values()) if t is not None]
        if not times:
            return
        at_s = min(times)
        if self._timer is not None and not self._timer.cancelled() and self._timer_at_s <= at_s:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at_s = at_s
        self._timer = asyncio.get_running_loop().call_later(max(0.0, at_s - now_s), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.pump()
