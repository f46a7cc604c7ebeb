"""A room's input loop: queued inputs handled one at a time, a timer for the next deadline, owned tasks."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Coroutine
from typing import Any

from relaxd.core.ports import Clock, TimerHandle


class RoomLoop:
    """The mechanics under the engine: nothing here knows what a session is.

    Inputs come from anywhere on the event loop and are handled in run() in order; handlers never
    await, so a room never blocks on a device. Work that awaits runs as a task owned here, and its
    outcome comes back as another input. A handler that raises is reported, and the loop goes on.
    """

    def __init__(self, name: str, clock: Clock) -> None:
        self.loop_name = name
        self.clock = clock
        self._inbox: deque[tuple[str, Any]] = deque()
        self._wake = asyncio.Event()
        self._timer: TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- what the engine provides -----------------------------------------------------------------

    def _handle(self, kind: str, value: Any) -> None:
        raise NotImplementedError

    def _internal_error(self, exc: Exception) -> None:
        raise NotImplementedError

    def seconds_until_due(self) -> float | None:
        raise NotImplementedError

    # -- the loop ---------------------------------------------------------------------------------

    def _put(self, kind: str, value: Any = None) -> None:
        self._inbox.append((kind, value))
        self._wake.set()

    async def run(self) -> None:
        """Handle inputs and due deadlines until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._drain()
            self._guard("due", None)
            self._arm_timer()

    def _drain(self) -> None:
        while self._inbox:
            kind, value = self._inbox.popleft()
            self._guard(kind, value)

    def _guard(self, kind: str, value: Any) -> None:
        try:
            self._handle(kind, value)
        except Exception as exc:
            self._internal_error(exc)

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        due_s = self.seconds_until_due()
        if due_s is not None:
            self._timer = self.clock.call_later(due_s, self._wake.set)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- owned tasks ------------------------------------------------------------------------------

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(work, name=self.loop_name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            exc = task.exception()
            if isinstance(exc, Exception):
                self._internal_error(exc)

    def owned_tasks(self) -> list[asyncio.Task[Any]]:
        return [t for t in self._tasks if not t.done()]

    async def close(self) -> None:
        """Cancel every owned task (after shutdown, or in tests)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._disarm()
