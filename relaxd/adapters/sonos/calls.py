"""soco calls through the speaker's one fence in the blocking pool, every failure turned into one DeviceError."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from soco.exceptions import SoCoUPnPException

from relaxd.adapters.blocking import BlockingCalls, CallAbandoned, Fence, FencedOp, Op
from relaxd.core.ports import DeviceError

T = TypeVar("T")
DEVICE = "speaker"
# Reads of one op under way at once: a speaker serves a few fine, and the pool is every room's.
PARALLEL_READS = 8  # a snapshot's first round at once: the room waits for the slowest read


def device_error(what: str, exc: BaseException) -> DeviceError:
    """The one place a soco, requests or socket failure (or the pool giving up) becomes a DeviceError."""
    if isinstance(exc, DeviceError):
        return exc
    if isinstance(exc, SoCoUPnPException):
        code = int(exc.error_code) if str(exc.error_code).isdigit() else None
        detail = exc.error_description or "no description"
        return DeviceError(DEVICE, f"{what}: UPnP error {exc.error_code} ({detail})", code=code)
    if isinstance(exc, CallAbandoned):
        # Before ConnectionError, which it is: the speaker was not unreachable, relaxd stopped asking.
        return DeviceError(DEVICE, f"{what}: given up by relaxd")
    if isinstance(exc, requests.Timeout | TimeoutError):
        # The pool's deadline says which speaker and how long ("no answer from ... within N s");
        # a socket's or soco's own timeout only says "timed out".
        detail = str(exc) if isinstance(exc, TimeoutError) and str(exc) not in ("", "timed out") else "timed out"
        return DeviceError(DEVICE, f"{what}: {detail}")
    if isinstance(exc, requests.ConnectionError | ConnectionError):
        return DeviceError(DEVICE, f"{what}: cannot reach the speaker")
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        status = exc.response.status_code
        return DeviceError(DEVICE, f"{what}: HTTP {status}", code=status)
    return DeviceError(DEVICE, f"{what}: {type(exc).__name__}: {exc}")


class SpeakerCalls:
    """One speaker's soco calls: all through one fence, each with a deadline for the whole call of
    timeout_s per request it makes (soco opens a connection per request, each with only a read timeout)."""

    def __init__(self, calls: BlockingCalls, where: str, timeout_s: float) -> None:
        self.where = where
        self.timeout_s = timeout_s
        self._fence: Fence = calls.fence(where, classify=device_error)

    def budget_s(self, requests_n: int) -> float:
        return self.timeout_s * max(1, requests_n)

    def op(self, what: str, requests_n: int = 1, budget_s: float | None = None) -> FencedOp:
        """`async with calls.op(what, n) as op:` for several jobs (maybe parallel) under one deadline."""
        return self._fence.op(what, budget_s if budget_s is not None else self.budget_s(requests_n))

    async def __call__(self, what: str, fn: Callable[[], T], requests_n: int = 1, budget_s: float | None = None) -> T:
        async with self.op(what, requests_n, budget_s) as op:
            return await op.run(fn)


async def read_all(op: Op, reads: dict[str, Callable[[], Any]], parallel: int = PARALLEL_READS) -> dict[str, Any]:
    """Every read in the pool under op, `parallel` at a time; the first failure gives up the rest."""
    gate = asyncio.Semaphore(parallel)

    async def one(read: Callable[[], Any]) -> Any:
        async with gate:
            return await op.run(read)

    tasks = {name: asyncio.ensure_future(one(read)) for name, read in reads.items()}
    try:
        await asyncio.gather(*tasks.values())
    except Exception:
        # The reads are of use only together: the others are cut short, and the fence is free at once.
        op.abort()
        raise
    return {name: task.result() for name, task in tasks.items()}
