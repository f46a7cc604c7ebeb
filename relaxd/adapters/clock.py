"""The system clock, optionally running faster than real time (demo, benchmarks)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta


class SystemClock:
    """Monotonic and wall time scaled by `speed` from the moment the clock was made."""

    def __init__(self, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._mono0 = time.monotonic()
        self._wall0 = datetime.now(UTC)

    def monotonic(self) -> float:
        return self._mono0 + (time.monotonic() - self._mono0) * self.speed

    def now(self) -> datetime:
        if self.speed == 1.0:
            return datetime.now(UTC)
        return self._wall0 + timedelta(seconds=(time.monotonic() - self._mono0) * self.speed)

    def wait(self, event: threading.Event, timeout_s: float | None) -> bool:
        if timeout_s is None:
            return event.wait()
        return event.wait(max(0.0, timeout_s) / self.speed)
