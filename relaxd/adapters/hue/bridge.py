"""One Hue bridge shared by every room on it: paced, fenced requests in the one pool, shared reads."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.hue.identity import Identity
from relaxd.adapters.hue.pacing import Gate, Kind, Pacing
from relaxd.adapters.hue.shapes import groups_problem, lights_problem
from relaxd.adapters.hue.transport import (
    DEVICE,
    NOT_PAIRED,
    BridgeErrors,
    HttpsMode,
    PhueBridge,
    RateLimited,
    Transport,
)
from relaxd.core.ports import DeviceError

logger = logging.getLogger(__name__)
T = TypeVar("T")
# An action on phue's API model; with integer ids, one phue call is exactly one HTTP request.
Action = Callable[[PhueBridge], T]


class HueBridge:
    """A physical Hue bridge: every request of every room on it goes through here.

    Each HTTP request is one op of the shared pool (a deadline for all of it, aborted when its caller
    is cancelled), admitted by the bridge's gate (at most `connections` in flight, commands paced
    first come first served at the send, per-light fences). Concurrent reads of the lights (or the
    groups) share one request. The constructor does no I/O; everything else runs on the event loop.
    """

    def __init__(
        self,
        host: str,
        username: str,
        *,
        calls: BlockingCalls,
        https: HttpsMode = "auto",
        timeout_s: float = 5.0,
        pacing: Pacing | None = None,
        identity: Identity | None = None,
        name: str | None = None,
    ) -> None:
        self.host = host
        self.username = username
        self.https = https
        self.timeout_s = timeout_s
        self.name = name
        self._calls = calls
        self._errors = BridgeErrors(host, username, timeout_s)
        self.transport = Transport(self._errors, https, identity)
        self._gate = Gate(pacing or Pacing(), self._errors.fence)
        self._lights_read = _SharedRead(self._read_lights)
        self._groups_read = _SharedRead(self._read_groups)

    def __repr__(self) -> str:
        named = f"name={self.name!r}, " if self.name is not None else ""
        return f"HueBridge({named}host={self.host!r}, https={self.https!r})"

    @property
    def in_flight(self) -> int:
        """Requests admitted whose thread has not returned yet."""
        return self._gate.in_flight

    # -- what rooms use ---------------------------------------------------------------------------

    async def lights(self) -> dict[str, Any]:
        """GET /lights, checked (shared by concurrent callers: do not modify the answer)."""
        return await self._lights_read.get()

    async def groups(self) -> dict[str, Any]:
        """GET /groups, checked (shared by concurrent callers: do not modify the answer)."""
        return await self._groups_read.get()

    async def set_light(self, light_id: int, body: dict[str, Any]) -> None:
        light = int(light_id)  # phue takes a string id for a light name
        command = dict(body)
        await self.request(f"setting light {light}", "light", [light], lambda b: b.set_light(light, command))

    async def set_group(self, group_id: int, light_ids: Iterable[int], body: dict[str, Any]) -> None:
        group, command = int(group_id), dict(body)
        members = [int(i) for i in light_ids]
        await self.request(f"setting group {group}", "group", members, lambda b: b.set_group(group, command))

    async def check(self) -> None:
        """One GET of the config; an unknown username only gets the public part of it."""
        config = await self.request(
            "reading config", "read", [], lambda b: b.request("GET", f"/api/{b.username}/config")
        )
        if not isinstance(config, dict) or "whitelist" not in config:
            raise DeviceError(DEVICE, NOT_PAIRED, code=1)

    def hide(self, secret: str) -> None:
        """Keep secret (a username just paired) out of every message and log line from now on."""
        self._errors.hide(secret)

    # -- requests ---------------------------------------------------------------------------------

    async def request(
        self,
        what: str,
        kind: Kind,
        light_ids: Iterable[int],
        action: Action[T],
        on_admitted: Callable[[], None] | None = None,
    ) -> T:
        """One HTTP request through the gate, retried once after an HTTP 429; DeviceError on failure.

        kind "light" and "group" are paced commands touching light_ids; anything else is "read".
        """
        lights = frozenset(light_ids)
        try:
            return await self._once(what, kind, lights, action, on_admitted)
        except RateLimited as exc:
            logger.info("hue bridge %s is rate limiting; retrying in %.1f s", self.host, exc.retry_after_s)
            await asyncio.sleep(exc.retry_after_s)
        try:
            return await self._once(what, kind, lights, action, on_admitted)
        except RateLimited as exc:
            raise DeviceError(DEVICE, exc.message, code=429) from exc

    async def _once(
        self,
        what: str,
        kind: Kind,
        lights: frozenset[int],
        action: Action[T],
        on_admitted: Callable[[], None] | None,
    ) -> T:
        admitted = await self._gate.enter(kind, lights, what, self.timeout_s)
        op = self._calls.op(what, budget_s=self.timeout_s, classify=self._errors, where=self.host)
        try:
            op.begin()
        except BaseException:
            admitted.abandon()
            raise
        # The slot and the fences are held until the request has really returned in its thread.
        op.finished().add_done_callback(lambda _: admitted.leave())
        try:
            if on_admitted is not None:
                on_admitted()
            phue_bridge = PhueBridge(self.transport, self.username, admitted.sent)
            return await op.run(lambda: action(phue_bridge))
        finally:
            op.end()

    async def _read_lights(self, on_admitted: Callable[[], None]) -> dict[str, Any]:
        lights = _expect_dict(await self.request("reading lights", "read", [], _get_lights, on_admitted), "lights")
        _raise_shape("lights", lights_problem(lights))
        return lights

    async def _read_groups(self, on_admitted: Callable[[], None]) -> dict[str, Any]:
        groups = _expect_dict(await self.request("reading groups", "read", [], _get_groups, on_admitted), "groups")
        _raise_shape("groups", groups_problem(groups))
        return groups


def _get_lights(bridge: PhueBridge) -> Any:
    return bridge.get_light()


def _get_groups(bridge: PhueBridge) -> Any:
    return bridge.get_group()


class _SharedRead:
    """Concurrent callers share one read while it has not been sent: its answer is then no older than
    any of their calls (a read already on its way may predate a caller's last command). A caller
    cancelled leaves the read to the others; the last one to leave cancels it."""

    def __init__(self, read: Callable[[Callable[[], None]], Awaitable[dict[str, Any]]]) -> None:
        self._read = read
        self._joinable: _Flight | None = None

    async def get(self) -> dict[str, Any]:
        flight = self._joinable
        if flight is None:
            flight = _Flight()
            flight.task = asyncio.get_running_loop().create_task(self._run(flight))
            flight.task.add_done_callback(_retrieve)
            self._joinable = flight
        task = flight.task
        flight.waiters += 1
        try:
            return await asyncio.shield(task)
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not task.done():
                if self._joinable is flight:  # a newcomer must not join a read being cancelled
                    self._joinable = None
                task.cancel()

    async def _run(self, flight: _Flight) -> dict[str, Any]:
        def sent_soon() -> None:
            if self._joinable is flight:
                self._joinable = None

        try:
            return await self._read(sent_soon)
        finally:
            sent_soon()


class _Flight:
    __slots__ = ("task", "waiters")

    def __init__(self) -> None:
        self.task: asyncio.Task[dict[str, Any]]
        self.waiters = 0


def _retrieve(task: asyncio.Task[Any]) -> None:
    # Nobody may be waiting for a shared read any more: its failure is then nobody's news.
    if not task.cancelled():
        task.exception()


def _expect_dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DeviceError(DEVICE, f"the bridge sent {what} in an unexpected shape")
    return value


def _raise_shape(what: str, problem: str | None) -> None:
    # A broken or foreign answer must come out as a DeviceError, not as a TypeError three calls later.
    if problem is not None:
        raise DeviceError(DEVICE, f"the bridge sent {what} in an unexpected shape: {problem}")
