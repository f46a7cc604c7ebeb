"""Supervised tasks: an exception in one is logged with its traceback and the task restarted, never silent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)
RESTART_FIRST_S = 1.0
RESTART_MAX_S = 30.0


class Supervisor:
    """Runs the daemon's long-lived tasks (rooms, schedules, requests, health); stop() ends them all."""

    def __init__(self, restart_first_s: float = RESTART_FIRST_S) -> None:
        self.restart_first_s = restart_first_s
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.failures: dict[str, int] = {}
        self._stopping = False

    def spawn(self, name: str, factory: Callable[[], Coroutine[Any, Any, None]], *, restart: bool = True) -> None:
        """Run factory() as task `name`; if it fails, log it and start it again after a back-off."""
        self._tasks[name] = asyncio.create_task(self._keep(name, factory, restart), name=name)

    async def _keep(self, name: str, factory: Callable[[], Coroutine[Any, Any, None]], restart: bool) -> None:
        delay_s = self.restart_first_s
        while True:
            try:
                await factory()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.failures[name] = self.failures.get(name, 0) + 1
                if not restart or self._stopping:
                    log.exception("task %s failed", name)
                    return
                log.exception("task %s failed; starting it again in %.0f s", name, delay_s)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, RESTART_MAX_S)
                continue
            if not restart or self._stopping:
                return
            log.error("task %s ended on its own; starting it again", name)

    def alive(self) -> list[str]:
        return [name for name, task in self._tasks.items() if not task.done()]

    def dead(self) -> list[str]:
        return [name for name, task in self._tasks.items() if task.done()]

    async def stop(self, names: list[str] | None = None) -> None:
        """Cancel the tasks named (default: all) and wait until they have ended."""
        self._stopping = names is None or self._stopping
        chosen = [self._tasks.pop(n) for n in list(self._tasks) if names is None or n in names]
        for task in chosen:
            task.cancel()
        await asyncio.gather(*chosen, return_exceptions=True)
