"""The one bounded pool for the blocking device libraries: whole-call deadlines, abort and fences.

phue and soco block, and soco opens a fresh connection for every request, with only a per-read
timeout: a trickling device never times out, and a call given up on keeps sending. So every library
call runs here, inside an `Op`:
- a fixed number of daemon threads serves every room and device (no thread per call, nor per fault);
- an op has a deadline for the whole call; at the deadline, or when its awaiting task is cancelled,
  it is aborted: every socket it opened is shut down (which ends a blocked read at once), and every
  socket it would still open is refused, so nothing of it can reach the device afterwards;
- a `Fence` runs one device's ops one at a time: the next op starts only once the previous one has
  really returned in its thread (a given-up call cannot overtake the restore that follows it).
The sockets are seen through the interpreter's `socket.connect` audit event (PEP 578), the one place
where every connection a library opens passes, whoever opens it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import sys
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Executor, Future
from types import TracebackType
from typing import Any, TypeVar

from relaxd.adapters.worker_pool import WorkerPool

log = logging.getLogger(__name__)
T = TypeVar("T")
# classify(what, exception) -> the exception the caller sees: the adapter's one error wrapper
# (a DeviceError for devices, an OSError for the state files).
Classify = Callable[[str, BaseException], Exception]
_OP_ATTRIBUTE = "_relaxd_op"  # set on a worker thread while it runs an op's job
REAP_EVERY_S = 0.02  # an aborted op's sockets are shut down again until its jobs have returned


class CallAbandoned(ConnectionAbortedError):
    """Raised inside a worker when its op was given up: no new connection may be opened."""


@functools.cache
def install_socket_fence() -> None:
    """Once per process: let ops see and refuse the sockets their jobs open."""
    sys.addaudithook(_audit)


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "socket.connect" and event != "socket.getaddrinfo":
        return
    op = getattr(threading.current_thread(), _OP_ATTRIBUTE, None)
    if op is not None:
        op.on_socket(args[0] if event == "socket.connect" else None)


class Op:
    """One device call with a deadline for all of it; jobs run in the pool, sockets are watched."""

    def __init__(self, pool: Executor, what: str, budget_s: float, classify: Classify, where: str) -> None:
        self.what = what
        self.budget_s = budget_s
        self.where = where
        self._pool = pool
        self._classify = classify
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadline_s = 0.0
        self._lock = threading.Lock()
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._aborted = False
        self._timed_out = False
        self._outstanding = 0
        self._gave_up: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._reaper: asyncio.TimerHandle | None = None
        self._finished: asyncio.Future[None] | None = None
        self._closed = False

    # -- lifecycle (the event loop) ---------------------------------------------------------------

    def begin(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._deadline_s = time.monotonic() + self.budget_s
        self._gave_up = loop.create_future()
        self._finished = loop.create_future()
        self._timer = loop.call_later(self.budget_s, self._expire)

    def end(self) -> None:
        """No more jobs will be started; finished() resolves once the running ones have returned."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        self._maybe_finished()

    @property
    def remaining_s(self) -> float:
        return self._deadline_s - time.monotonic()

    def finished(self) -> asyncio.Future[None]:
        assert self._finished is not None, "begin() first"
        return self._finished

    def abort(self) -> None:
        """Give up: shut down every socket of this op (again, until its jobs return), refuse new ones."""
        with self._lock:
            self._aborted = True
        self._shut_sockets()
        if self._gave_up is not None and not self._gave_up.done():
            self._gave_up.set_result(None)
        if self._outstanding and self._loop is not None and self._reaper is None:
            self._reaper = self._loop.call_later(REAP_EVERY_S, self._reap)

    def _expire(self) -> None:
        self._timed_out = True
        log.debug("%s: %s gave up after %.1f s", self.where, self.what, self.budget_s)
        self.abort()

    def _reap(self) -> None:
        self._reaper = None
        if self._outstanding and self._loop is not None:
            self._shut_sockets()
            self._reaper = self._loop.call_later(REAP_EVERY_S, self._reap)

    def _shut_sockets(self) -> None:
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            # Not connected (yet, or any more): the reaper tries again while the job runs.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _job_done(self) -> None:
        self._outstanding -= 1
        self._maybe_finished()

    def _maybe_finished(self) -> None:
        if self._closed and self._outstanding == 0 and self._finished is not None and not self._finished.done():
            if self._reaper is not None:
                self._reaper.cancel()
                self._reaper = None
            self._finished.set_result(None)

    # -- the worker's side ------------------------------------------------------------------------

    def on_socket(self, sock: socket.socket | None) -> None:
        """From the audit hook, in the worker, before a connect or a name lookup."""
        with self._lock:
            if self._aborted:
                raise CallAbandoned(f"relaxd gave up on {self.what}")
            if sock is None:
                return
            self._sockets.add(sock)
        left_s = self.remaining_s
        current = sock.gettimeout()
        if left_s > 0 and (current is None or current > left_s):
            sock.settimeout(left_s)  # bounds the connect itself, which a shutdown does not end

    def _in_thread(self, fn: Callable[[], T]) -> T:
        thread = threading.current_thread()
        with self._lock:
            if self._aborted:
                raise CallAbandoned(f"relaxd gave up on {self.what}")
        setattr(thread, _OP_ATTRIBUTE, self)
        try:
            return fn()
        finally:
            setattr(thread, _OP_ATTRIBUTE, None)

    # -- running jobs (the event loop) ------------------------------------------------------------

    async def run(self, fn: Callable[[], T]) -> T:
        """fn() in the pool under this op; DeviceError on failure or when the op gives up."""
        assert self._loop is not None and self._gave_up is not None, "begin() first"
        if self._aborted:
            raise self._given_up_error()
        loop = self._loop
        self._outstanding += 1
        try:
            job = self._pool.submit(self._in_thread, fn)
        except RuntimeError as exc:  # the pool is shut down: relaxd is stopping
            self._outstanding -= 1
            raise self._classify(self.what, exc) from exc

        def done(_: Future[T]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                loop.call_soon_threadsafe(self._job_done)

        job.add_done_callback(done)
        waiter: asyncio.Future[Any] = asyncio.wrap_future(job, loop=loop)
        # A job given up on may still fail later: its exception is the abort's consequence, not news.
        waiter.add_done_callback(_retrieve)
        try:
            await asyncio.wait([waiter, self._gave_up], return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            self.abort()
            raise
        if not waiter.done():
            raise self._given_up_error()
        failure = waiter.exception()
        if failure is not None and self._aborted:
            raise self._given_up_error() from failure  # the failure is the abort's doing
        if failure is not None:
            log.debug("%s: %s failed", self.where, self.what, exc_info=failure)
            raise self._classify(self.what, failure) from failure
        result: T = waiter.result()
        return result

    def _given_up_error(self) -> Exception:
        err: OSError
        if self._timed_out:
            err = TimeoutError(f"no answer from {self.where} within {self.budget_s:g} s")
        else:
            err = CallAbandoned(f"relaxd gave up on {self.what}")
        return self._classify(self.what, err)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class BlockingCalls:
    """The process's one pool for blocking library calls (phue, soco, file syncs)."""

    def __init__(self, workers: int = 8) -> None:
        self.workers = workers
        self.pool = WorkerPool(workers)

    def op(self, what: str, budget_s: float, classify: Classify, where: str = "the device") -> Op:
        """An unfenced op (begin()/end() are the caller's); for devices that take parallel requests."""
        install_socket_fence()
        return Op(self.pool, what, budget_s, classify, where)

    def fence(self, where: str, classify: Classify) -> Fence:
        return Fence(self, where, classify)

    def close(self) -> None:
        """No new jobs; queued ones are dropped, running ones end on their own (daemon threads)."""
        self.pool.shutdown(wait=False, cancel_futures=True)


class Fence:
    """One device's calls, strictly one after another, even when one of them was given up."""

    def __init__(self, calls: BlockingCalls, where: str, classify: Classify) -> None:
        self.where = where
        self._calls = calls
        self._classify = classify
        self._lock = asyncio.Lock()

    def op(self, what: str, budget_s: float) -> FencedOp:
        """`async with fence.op(what, budget_s) as op:` then `await op.run(fn)`, maybe several at once."""
        return FencedOp(self, self._calls.op(what, budget_s, self._classify, self.where))

    async def call(self, what: str, fn: Callable[[], T], budget_s: float) -> T:
        async with self.op(what, budget_s) as op:
            return await op.run(fn)


class FencedOp:
    """The async context of one fenced op: waits for the fence within the op's budget."""

    def __init__(self, fence: Fence, op: Op) -> None:
        self._fence = fence
        self._op = op

    async def __aenter__(self) -> Op:
        op = self._op
        op.begin()
        try:
            async with asyncio.timeout(max(0.0, op.remaining_s)):
                await self._fence._lock.acquire()
        except TimeoutError:
            op.end()
            message = f"an earlier call to {self._fence.where} has not ended within {op.budget_s:g} s"
            raise self._fence._classify(op.what, TimeoutError(message)) from None
        except BaseException:
            op.end()
            raise
        return op

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        op = self._op
        op.end()
        lock = self._fence._lock
        finished = op.finished()
        if finished.done():
            lock.release()
        else:
            # The next op waits until this one's jobs have really returned (they were aborted).
            finished.add_done_callback(lambda _: lock.release())
