"""Requests over MQTT: a table from verb to handler, and exactly one reply for every request."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from relaxd.core.events import MAX_COMMAND_BYTES, echoed_transaction, excerpt

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
MAX_REQUEST_BYTES = MAX_COMMAND_BYTES


class StatusSource(Protocol):
    def status(self) -> dict[str, Any]: ...


class ScheduleHandler(Protocol):
    async def handle(self, verb: str, request: dict[str, Any]) -> Any: ...


class Requests:
    """`<base>/request/<verb>` -> the reply for `<base>/response/<verb>` (status ok/error, data, transaction)."""

    def __init__(self, rooms: Mapping[str, StatusSource], schedules: ScheduleHandler | None = None) -> None:
        self.rooms = rooms
        self.schedules = schedules
        self.table: dict[str, Handler] = {"status": self._status}
        for verb in ("schedule/add", "schedule/list", "schedule/remove"):
            self.table[verb] = self._schedule_handler(verb)

    def is_quick(self, verb: str) -> bool:
        """Answered at once, never queued behind state-dir writes."""
        return verb == "status"

    async def answer(self, verb: str, payload: bytes) -> dict[str, Any]:
        """The one reply to a request, whatever it holds: `ok` with data, or `error` with a reason."""
        transaction: str | int | float | None = None
        try:
            request = parse_request(payload)
            transaction = echoed_transaction(request.pop("transaction", None))
            handler = self.table.get(verb)
            if handler is None:
                raise ValueError(f"unknown request {excerpt(verb)}; known: {', '.join(self.table)}")
            data = await handler(request)
        except ValueError as exc:
            return {"status": "error", "error": str(exc), "transaction": transaction}
        return {"status": "ok", "data": data, "transaction": transaction}

    async def _status(self, request: dict[str, Any]) -> Any:
        room = request.pop("room", None)
        if request:
            raise ValueError(f"unknown field(s) {excerpt(', '.join(sorted(map(str, request))))}; status takes room")
        if room is not None:
            if not isinstance(room, str) or room not in self.rooms:
                raise ValueError(f"room: unknown room {excerpt(room)}")
            return self.rooms[room].status()
        return {room_id: source.status() for room_id, source in self.rooms.items()}

    def _schedule_handler(self, verb: str) -> Handler:
        async def handle(request: dict[str, Any]) -> Any:
            if self.schedules is None:
                raise ValueError("schedules are not loaded")
            return await self.schedules.handle(verb, request)

        return handle


def parse_request(payload: bytes) -> dict[str, Any]:
    """A request's JSON object; ValueError with a reason a person can read (never the parser's own)."""
    if len(payload) > MAX_REQUEST_BYTES:
        raise ValueError(f"request too large ({len(payload)} bytes, at most {MAX_REQUEST_BYTES})")
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError("request is not UTF-8 text") from None
    try:
        loaded = json.loads(text) if text else {}
    except (ValueError, RecursionError):
        raise ValueError('request is not valid JSON; send an object such as {"transaction": "t1"}') from None
    if not isinstance(loaded, dict):
        raise ValueError("request must be a JSON object")
    return loaded
