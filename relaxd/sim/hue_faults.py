"""Fault injection of the simulated Hue bridge: error answers, mangled answers, slow and trickled ones."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, NamedTuple

from relaxd.sim.faults import FaultKnobs, Pace, check_count
from relaxd.sim.hue_api import Reply
from relaxd.sim.hue_model import error

_FAULT_DESCRIPTIONS = {
    1: "unauthorized user",
    3: "resource, {address}, not available",
    901: "Internal error, 404",
}
# mangle(status, payload) -> (status, payload): rewrites an answer the bridge computed (fuzzing).
Mangle = Callable[[int, Any], tuple[int, Any]]


class _Fault(NamedTuple):
    error_type: int
    http_status: int
    path_contains: str
    body: bytes | None = None  # a raw body instead of an error object (garbage, truncated JSON)
    mangle: Mangle | None = None

    def describe(self) -> dict[str, Any]:
        if self.mangle is not None:
            return {"kind": "mangle"}
        if self.body is not None:
            return {"kind": "garble", "http_status": self.http_status}
        return {"kind": "fail", "error_type": self.error_type, "http_status": self.http_status}


class HueFaults(FaultKnobs[_Fault]):
    """The bridge's fault knobs (Python only; relaxd.sim.control offers them over HTTP)."""

    def __init__(self) -> None:
        # Paced answers match the request path (/api/<username>/...), like fail_next's path_contains.
        super().__init__(lambda pattern, path: pattern in path)

    def fail_next(
        self,
        count: int = 1,
        *,
        error_type: int = 901,
        http_status: int = 200,
        path_contains: str = "",
        body: bytes | None = None,
    ) -> None:
        """Answer the next count requests (to paths containing path_contains) with a bridge error
        object of error_type, or with a bare HTTP status when http_status is not 200, or with
        exactly body (any bytes: garbage, truncated JSON) and http_status when body is given."""
        check_count(count)
        with self._fault_lock:
            self._faults.extend([_Fault(error_type, http_status, path_contains, body)] * count)

    def mangle_next(self, mangle: Mangle, count: int = 1, *, path_contains: str = "") -> None:
        """Let the next count requests (to paths containing path_contains) be carried out, then
        answer with mangle(status, payload) instead (payload: the JSON value, or bytes)."""
        check_count(count)
        with self._fault_lock:
            self._faults.extend([_Fault(0, 200, path_contains, None, mangle)] * count)

    def slow_next(self, count: int = 1, *, delay_s: float, path_contains: str = "") -> None:
        """Answer the next count requests (to paths containing path_contains) delay_s late.

        Each request is carried out when it arrives (logged, rate-limited and applied to the
        lights then); only its answer waits, then goes out whole. If the client closes the
        connection meanwhile the bridge gives up; other connections are answered as usual;
        stop() cuts the wait short (the connection is closed unanswered). Combines with
        fail_next and mangle_next: their answer is the one sent late."""
        pace = Pace.slow(delay_s)
        self.pacing.add(path_contains, pace, count)

    def trickle_next(self, count: int = 1, *, interval_s: float, path_contains: str = "", chunk_bytes: int = 1) -> None:
        """Trickle the answers to the next count requests (to paths containing path_contains):
        chunk_bytes of the answer (status line and headers included) at once, then chunk_bytes
        more every interval_s, so that a client's per-read timeout longer than interval_s never
        trips while the whole answer takes long.

        As with slow_next, each request is carried out when it arrives; the bridge stops
        trickling when the client closes the connection or stop() is called."""
        pace = Pace.trickle(interval_s, chunk_bytes)
        self.pacing.add(path_contains, pace, count)

    def pending_faults(self) -> int:
        """Injected faults not yet used up (errors, mangles, slow and trickled answers)."""
        with self._fault_lock:
            return len(self._faults) + self.pacing.pending_count()

    def fault_summary(self) -> list[dict[str, Any]]:
        """The faults not yet used up, in the order they apply, e.g. {"kind": "slow",
        "delay_s": 12.0, "path_contains": "/lights", "count": 1}."""
        with self._fault_lock:
            faults = list(self._faults)
        summary: list[dict[str, Any]] = []
        # fail_next stores the same record count times: a run of one record is one entry.
        for _, run in itertools.groupby(faults, key=id):
            records = list(run)
            summary.append({**records[0].describe(), "path_contains": records[0].path_contains, "count": len(records)})
        for pending in self.pacing.pending():
            summary.append({**pending.pace.describe(), "path_contains": pending.pattern, "count": pending.remaining})
        return summary

    def _take_fault(self, path: str) -> _Fault | None:
        with self._fault_lock:
            index = next((i for i, f in enumerate(self._faults) if f.path_contains in path), None)
            return None if index is None else self._faults.pop(index)

    @staticmethod
    def _fault_reply(fault: _Fault, path: str) -> Reply:
        error_type, status = fault.error_type, fault.http_status
        if fault.body is not None:
            return status, fault.body
        if status != 200:
            known = status in HTTPStatus.__members__.values()
            return status, (HTTPStatus(status).phrase if known else "Error").encode()
        address = "/" + "/".join(path.strip("/").split("/")[2:])
        description = _FAULT_DESCRIPTIONS.get(error_type, "simulated bridge error")
        return 200, [error(error_type, address, description.format(address=address))]
