"""Volume ramps: linear steps, at most ten a second, stepped on the event loop in real time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

MIN_STEP_S = 0.1  # a ramp sends at most ten volume steps a second


def ramp_steps(start: int, target: int, ramp_s: float) -> list[tuple[float, int]]:
    """(seconds after the start, volume) for a linear ramp; empty when there is nothing to do."""
    delta = target - start
    if delta == 0:
        return []
    count = min(abs(delta), max(1, int(ramp_s / MIN_STEP_S + 1e-9)))  # 0.3/0.1 is 2.999…
    return [(ramp_s * k / count, round(start + delta * k / count)) for k in range(1, count + 1)]


async def run_ramp(
    start: int,
    target: int,
    ramp_s: float,
    step: Callable[[int], Awaitable[bool]],
    stop: asyncio.Event | None = None,
) -> bool:
    """Step from start to target over ramp_s; False when stop was set or a step declined (a hand on
    the volume). Cancelling it cancels the step under way: nothing more is sent."""
    began_s = time.monotonic()
    for offset_s, volume in ramp_steps(start, target, ramp_s):
        if await _stopped_within(began_s + offset_s - time.monotonic(), stop):
            return False
        if not await step(volume):
            return False
    return True


async def _stopped_within(delay_s: float, stop: asyncio.Event | None) -> bool:
    """Wait delay_s; True (at once) when stop is or gets set meanwhile."""
    if stop is None:
        await asyncio.sleep(max(0.0, delay_s))
        return False
    if stop.is_set():
        return True
    try:
        async with asyncio.timeout(max(0.0, delay_s)):
            await stop.wait()
    except TimeoutError:
        return False
    return True
