"""Slow and trickled answers shared by the simulators: the pending ones, and how the sent ones went."""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

# Outcomes of a paced answer.
SENT = "sent"
CLIENT_GONE = "client gone"
STOPPED = "stopped"

# Bounded: `relaxd sim` may run for days with faults armed over its control API.
_ANSWERS_KEPT = 1000


@dataclass(frozen=True)
class Pace:
    """How an answer goes out: after delay_s, whole, or (interval_s > 0) chunk_bytes at a time,
    the first chunk at once and then one every interval_s."""

    delay_s: float = 0.0
    interval_s: float = 0.0
    chunk_bytes: int = 1

    @classmethod
    def slow(cls, delay_s: float) -> Pace:
        if not (math.isfinite(delay_s) and delay_s >= 0):
            raise ValueError(f"delay_s must be a finite number >= 0, not {delay_s!r}")
        return cls(delay_s=float(delay_s))

    @classmethod
    def trickle(cls, interval_s: float, chunk_bytes: int = 1) -> Pace:
        if not (math.isfinite(interval_s) and interval_s > 0):
            raise ValueError(f"interval_s must be a finite number > 0, not {interval_s!r}")
        if isinstance(chunk_bytes, bool) or not isinstance(chunk_bytes, int) or chunk_bytes < 1:
            raise ValueError(f"chunk_bytes must be an integer >= 1, not {chunk_bytes!r}")
        return cls(interval_s=float(interval_s), chunk_bytes=chunk_bytes)

    @property
    def kind(self) -> str:
        return "trickle" if self.interval_s > 0 else "slow"

    def describe(self) -> dict[str, Any]:
        """The fields a status report shows (the control API's names)."""
        if self.interval_s > 0:
            return {"kind": "trickle", "interval_s": self.interval_s, "chunk_bytes": self.chunk_bytes}
        return {"kind": "slow", "delay_s": self.delay_s}


class PacedAnswer(NamedTuple):
    """How one slow or trickled answer went; outcome is SENT, CLIENT_GONE or STOPPED."""

    key: str  # what the pace matched: the request path (Hue) or the action name (Sonos)
    pace: Pace
    started_s: float  # time.monotonic() when the answer was ready to go
    ended_s: float
    sent_bytes: int  # status line and headers included
    total_bytes: int
    outcome: str


class PendingPace(NamedTuple):
    pattern: str
    pace: Pace
    remaining: int


@dataclass
class _Pending:
    pattern: str
    pace: Pace
    remaining: int


def check_count(count: int, name: str = "count") -> None:
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"{name} must be an integer >= 0, not {count!r}")


class AnswerPacing:
    """Slow and trickled answers waiting for their requests, and a log of the sent ones. Thread-safe.

    matches(pattern, key) says whether a pending pace applies to a request; the first pending pace
    that matches is used up by take().
    """

    def __init__(self, matches: Callable[[str, str], bool]) -> None:
        self._matches = matches
        self._lock = threading.Lock()
        self._pending: list[_Pending] = []
        self._answers: deque[PacedAnswer] = deque(maxlen=_ANSWERS_KEPT)

    def add(self, pattern: str, pace: Pace, count: int) -> None:
        check_count(count)
        if count:
            with self._lock:
                self._pending.append(_Pending(pattern, pace, count))

    def take(self, key: str) -> Pace | None:
        with self._lock:
            for index, pending in enumerate(self._pending):
                if self._matches(pending.pattern, key):
                    pending.remaining -= 1
                    if pending.remaining == 0:
                        del self._pending[index]
                    return pending.pace
        return None

    def pending(self) -> list[PendingPace]:
        with self._lock:
            return [PendingPace(p.pattern, p.pace, p.remaining) for p in self._pending]

    def pending_count(self) -> int:
        with self._lock:
            return sum(p.remaining for p in self._pending)

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()

    def record(self, answer: PacedAnswer) -> None:
        with self._lock:
            self._answers.append(answer)

    def answers(self) -> list[PacedAnswer]:
        with self._lock:
            return list(self._answers)


F = TypeVar("F")


class FaultKnobs(Generic[F]):
    """What both simulators' fault knobs share: the injected faults (error or mangled answers, of the
    simulator's own kind F) and the paced answers, with one way to list and clear them."""

    def __init__(self, matches: Callable[[str, str], bool]) -> None:
        self._fault_lock = threading.Lock()
        self._faults: list[F] = []
        # The pending slow and trickled answers (slow_next, trickle_next), read by the HTTP server.
        self.pacing = AnswerPacing(matches)

    def paced_answers(self) -> list[PacedAnswer]:
        """How the slow and trickled answers went (the last 1000), oldest first."""
        return self.pacing.answers()

    def clear_faults(self) -> None:
        """Forget injected faults not yet used up (all kinds)."""
        with self._fault_lock:
            self._faults.clear()
        self.pacing.clear()
