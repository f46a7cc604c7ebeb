"""Per-bridge pacing so relaxd itself never exceeds the Hue bridge's command rate limits."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

# The bridge counts commands when they arrive; a window a little longer than its one second
# absorbs network jitter between our send time and its arrival time.
SAFETY_MARGIN_S = 0.1
LIGHT_COMMANDS_PER_S = 10
GROUP_COMMANDS_PER_S = 1


class Pacer:
    """At most limit acquisitions in any window_s (sliding), shared by all threads."""

    def __init__(
        self,
        limit: int,
        window_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("a pacer needs limit >= 1 and window_s > 0")
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._times: collections.deque[float] = collections.deque()

    def acquire(self) -> float:
        """Take a slot, waiting for one if the window is full; returns the seconds waited."""
        waited_s = 0.0
        while True:
            with self._lock:
                now_s = self._clock()
                while self._times and self._times[0] <= now_s - self.window_s:
                    self._times.popleft()
                if len(self._times) < self.limit:
                    self._times.append(now_s)
                    return waited_s
                wait_s = self._times[0] + self.window_s - now_s
            # Sleep outside the lock so other threads can see the window too.
            self._sleep(wait_s)
            waited_s += wait_s


def light_pacer() -> Pacer:
    return Pacer(LIGHT_COMMANDS_PER_S, 1.0 + SAFETY_MARGIN_S)


def group_pacer() -> Pacer:
    return Pacer(GROUP_COMMANDS_PER_S, 1.0 + SAFETY_MARGIN_S)


class ConnectionSlots:
    """At most `size` requests in flight; a paced command gets the next free slot before any read.

    A command paced at t must reach the bridge close to t: if it queued behind reads it could
    arrive together with the next second's commands (a 429). Holding a slot while waiting for the
    pace would instead stall every other room's reads. So commands wait for their pace holding
    nothing, then jump the queue for a connection.
    """

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiting_commands = 0
        self._cond = threading.Condition()

    def acquire(self, *, command: bool) -> None:
        with self._cond:
            if command:
                self._waiting_commands += 1
                try:
                    self._cond.wait_for(lambda: self._free > 0)
                finally:
                    self._waiting_commands -= 1
            else:
                self._cond.wait_for(lambda: self._free > 0 and self._waiting_commands == 0)
            self._free -= 1

    def release(self) -> None:
        with self._cond:
            self._free += 1
            self._cond.notify_all()
