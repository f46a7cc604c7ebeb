"""Requests over MQTT: a table from verb to handler, and exactly one reply for every request."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

Handler = Callable[[dict[str, Any]], Awaitable[Any]]
MAX_TRANSACTION_CHARS = 256


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
        transaction: str | int | None = None
        try:
            request = parse_request(payload)
            raw_tx = request.pop("transaction", None)
            if isinstance(raw_tx, str):
                transaction = raw_tx[:MAX_TRANSACTION_CHARS]
            elif isinstance(raw_tx, int) and not isinstance(raw_tx, bool):
                transaction = raw_tx
            handler = self.table.get(verb)
            if handler is None:
                raise ValueError(f"unknown request {verb!r}; known: {', '.join(self.table)}")
            data = await handler(request)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            return {"status": "error", "error": str(exc), "transaction": transaction}
        return {"status": "ok", "data": data, "transaction": transaction}

    async def _status(self, request: dict[str, Any]) -> Any:
        room = request.get("room")
        if room is not None:
            if not isinstance(room, str) or room not in self.rooms:
                raise ValueError(f"unknown room {room!r}")
            return self.rooms[room].status()
        return {room_id: source.status() for room_id, source in self.rooms.items()}

    def _schedule_handler(self, verb: str) -> Handler:
        async def handle(request: dict[str, Any]) -> Any:
            if self.schedules is None:
                raise ValueError("schedules are not loaded")
            return await self.schedules.handle(verb, request)

        return handle


def parse_request(payload: bytes) -> dict[str, Any]:
    text = payload.decode("utf-8").strip()
    loaded = json.loads(text) if text else {}
    if not isinstance(loaded, dict):
        raise ValueError("request must be a JSON object")
    return loaded
