"""The simulated bridge's limits: its rate-limit windows (HTTP 429 beyond them) and the requests it
is answering at once."""

from __future__ import annotations

import collections
import contextlib
import math
import threading
from collections.abc import Callable, Iterator
from typing import NamedTuple

# The real bridge's limits (hue-v1-facts.md): about 10 light commands and 1 group command a second.
LIGHT_COMMANDS_PER_S = 10
GROUP_COMMANDS_PER_S = 1


class SlidingWindow:
    """At most limit events in any window_s; refused events are not counted. Not thread-safe."""

    def __init__(self, limit: int, window_s: float = 1.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._times: collections.deque[float] = collections.deque()

    def admit(self, now_s: float) -> bool:
        while self._times and self._times[0] <= now_s - self.window_s:
            self._times.popleft()
        if len(self._times) >= self.limit:
            return False
        self._times.append(now_s)
        return True


class RateLimits(NamedTuple):
    """At most light_commands `PUT /lights/<id>/state` and group_commands `PUT /groups/<id>/action`
    in any window_s (a sliding window, counted when a command is admitted); beyond them the bridge
    answers HTTP 429 with Retry-After: 1. The defaults are the real bridge's."""

    light_commands: int = LIGHT_COMMANDS_PER_S
    group_commands: int = GROUP_COMMANDS_PER_S
    window_s: float = 1.0

    def check(self) -> RateLimits:
        """These limits, or ValueError naming the field that is not usable."""
        for name in ("light_commands", "group_commands"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: must be a whole number of commands, at least 1, not {value!r}")
        window_s = self.window_s
        if isinstance(window_s, bool) or not isinstance(window_s, int | float) or not 0 < window_s < math.inf:
            raise ValueError(f"window_s: must be a number of seconds above 0, not {window_s!r}")
        return self


BRIDGE_RATE_LIMITS = RateLimits()


class InFlight:
    """How many requests are being answered at once, and the most there were. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._now = 0
        self._most = 0

    @property
    def now(self) -> int:
        with self._lock:
            return self._now

    @property
    def most(self) -> int:
        with self._lock:
            return self._most

    def reset_most(self) -> None:
        """Count the most from now on (the requests under way count)."""
        with self._lock:
            self._most = self._now

    @contextlib.contextmanager
    def request(self) -> Iterator[Callable[[], None]]:
        """One request in flight for the block; the callable it gives ends it earlier (once)."""
        with self._lock:
            self._now += 1
            self._most = max(self._most, self._now)
        ended = False

        def end() -> None:
            nonlocal ended
            with self._lock:
                if not ended:
                    ended = True
                    self._now -= 1

        try:
            yield end
        finally:
            end()


class HueLimits:
    """The bridge's limit knobs (Python only): rate limits, commands refused, requests in flight."""

    def __init__(self, rate_limits: RateLimits = BRIDGE_RATE_LIMITS) -> None:
        limits = RateLimits(*rate_limits).check()
        self._limits_lock = threading.Lock()
        self._rate_limits = limits
        self._light_window = SlidingWindow(limits.light_commands, limits.window_s)
        self._group_window = SlidingWindow(limits.group_commands, limits.window_s)
        self._rate_limited = 0
        # Counted by the HTTP server (see in_flight).
        self._in_flight = InFlight()

    @property
    def rate_limits(self) -> RateLimits:
        """The rate limits in force. Setting them takes effect at once: the commands admitted in the
        last (new) window_s count against the new limits. ValueError for a limit below 1 or a window
        not above 0 seconds."""
        with self._limits_lock:
            return self._rate_limits

    @rate_limits.setter
    def rate_limits(self, rate_limits: RateLimits) -> None:
        limits = RateLimits(*rate_limits).check()
        with self._limits_lock:
            self._rate_limits = limits
            for window, limit in (
                (self._light_window, limits.light_commands),
                (self._group_window, limits.group_commands),
            ):
                window.limit, window.window_s = limit, limits.window_s

    @property
    def rate_limited_count(self) -> int:
        """How many commands were refused with HTTP 429."""
        with self._limits_lock:
            return self._rate_limited

    @property
    def in_flight(self) -> int:
        """Requests being answered now: from their arrival (body read) until just before the last
        bytes of their answer are written, a slow or trickled answer's wait included; a request
        whose client gave up, or cut short by stop(), ends then."""
        return self._in_flight.now

    @property
    def max_in_flight(self) -> int:
        """The most requests in flight at once since the bridge was made or reset_max_in_flight()."""
        return self._in_flight.most

    def reset_max_in_flight(self) -> None:
        """Start counting max_in_flight afresh (from the requests in flight now)."""
        self._in_flight.reset_most()

    def _admit(self, method: str, parts: list[str], now_s: float) -> bool:
        """Whether a request to the path parts (["api", user, ...]) is within the rate limits;
        a refused one is counted."""
        if method != "PUT" or len(parts) != 5 or parts[0] != "api":
            return True
        if parts[2] == "lights" and parts[4] == "state":
            window = self._light_window
        elif parts[2] == "groups" and parts[4] == "action":
            window = self._group_window
        else:
            return True
        with self._limits_lock:
            if window.admit(now_s):
                return True
            self._rate_limited += 1
            return False
