"""Fault injection of the simulated Sonos speaker: UPnP errors, mangled answers, slow and trickled ones."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from relaxd.sim.faults import FaultKnobs, Pace, check_count
from relaxd.sim.sonos_soap import UPnPError, parse_soap_action

# mangle(status, envelope) -> (status, body): rewrites an answer the speaker computed (fuzzing).
Mangle = Callable[[int, str], tuple[int, str | bytes]]
ANY_ACTION = "*"


@dataclass
class _Fault:
    action: str  # or ANY_ACTION
    code: int
    remaining: int
    mangle: Mangle | None = None  # instead of a UPnP error: the real answer, rewritten

    def matches(self, action: str) -> bool:
        return self.remaining > 0 and self.action in (action, ANY_ACTION)

    def describe(self) -> dict[str, Any]:
        if self.mangle is not None:
            return {"kind": "mangle", "action": self.action, "times": self.remaining}
        return {"kind": "fail", "action": self.action, "code": self.code, "times": self.remaining}


def action_name(soap_action: str) -> str:
    """The action a SOAPACTION header names, "" when it names none."""
    try:
        return parse_soap_action(soap_action)[1]
    except UPnPError:
        return ""


class SonosFaults(FaultKnobs[_Fault]):
    """The speaker's fault knobs (Python only; relaxd.sim.control offers them over HTTP)."""

    def __init__(self) -> None:
        super().__init__(lambda pattern, action: pattern in (action, ANY_ACTION))

    def fail_next(self, action: str, code: int, times: int = 1) -> None:
        """Answer the next `times` requests for action ("*": any action) with UPnP error code."""
        check_count(times, "times")
        with self._fault_lock:
            self._faults.append(_Fault(action, code, times))

    def mangle_next(self, action: str, mangle: Mangle, times: int = 1) -> None:
        """Carry out the next `times` requests for action ("*": any action), then answer with
        mangle(HTTP status, SOAP envelope) instead: malformed XML, odd codes, wrong values."""
        check_count(times, "times")
        with self._fault_lock:
            self._faults.append(_Fault(action, 0, times, mangle))

    def garble_next(self, action: str, body: str | bytes, status: int = 200, times: int = 1) -> None:
        """Answer the next `times` requests for action ("*": any action) with exactly body."""
        self.mangle_next(action, lambda _status, _text: (status, body), times)

    def slow_next(self, action: str, delay_s: float, times: int = 1) -> None:
        """Answer the next `times` control requests for action ("*": any action) delay_s late.

        Each request is carried out when it arrives (the state changes, the request log records
        it then); only its answer waits, then goes out whole. If the client closes the
        connection meanwhile the speaker gives up; other connections are answered as usual;
        stop() cuts the wait short (the connection is closed unanswered). Combines with
        fail_next and mangle_next: their answer is the one sent late. Only SOAP actions are
        paced, not the XML documents (device and service descriptions)."""
        check_count(times, "times")
        self.pacing.add(action, Pace.slow(delay_s), times)

    def trickle_next(self, action: str, interval_s: float, times: int = 1, chunk_bytes: int = 1) -> None:
        """Trickle the answers to the next `times` control requests for action ("*": any
        action): chunk_bytes of the answer (status line and headers included) at once, then
        chunk_bytes more every interval_s, so that a client's per-read timeout longer than
        interval_s never trips while the whole answer takes long.

        As with slow_next, each request is carried out when it arrives; the speaker stops
        trickling when the client closes the connection or stop() is called."""
        check_count(times, "times")
        self.pacing.add(action, Pace.trickle(interval_s, chunk_bytes), times)

    def pending_faults(self) -> int:
        """Injected faults not yet used up (errors, mangles, slow and trickled answers)."""
        with self._fault_lock:
            return sum(f.remaining for f in self._faults) + self.pacing.pending_count()

    def fault_summary(self) -> list[dict[str, Any]]:
        """The faults not yet used up, e.g. {"kind": "slow", "delay_s": 12.0, "action": "Play",
        "times": 1}; errors and mangles first, in the order they apply, then paced answers."""
        with self._fault_lock:
            summary = [f.describe() for f in self._faults if f.remaining > 0]
        for pending in self.pacing.pending():
            summary.append({**pending.pace.describe(), "action": pending.pattern, "times": pending.remaining})
        return summary

    def _take_fault(self, action: str) -> _Fault | None:
        with self._fault_lock:
            for fault in self._faults:
                if fault.matches(action):
                    fault.remaining -= 1
                    return fault
        return None
