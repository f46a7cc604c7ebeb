"""A simulated Sonos speaker: a real UPnP/SOAP HTTP server on 127.0.0.1 that soco drives unchanged."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any

from relaxd.sim import sonos_groups
from relaxd.sim.pacing import answer_paced
from relaxd.sim.serving import SimHttpServer, serve_in_thread, shut_down
from relaxd.sim.sonos_actions import dispatch
from relaxd.sim.sonos_didl import Library
from relaxd.sim.sonos_faults import ANY_ACTION, Mangle, SonosFaults, action_name
from relaxd.sim.sonos_soap import (
    UPnPError,
    device_description_xml,
    fault_xml,
    parse_arguments,
    parse_soap_action,
    response_xml,
    scpd_xml,
    service_by_control_url,
    service_by_scpd_url,
)
from relaxd.sim.sonos_state import SimState, SpeakerModel

log = logging.getLogger(__name__)

__all__ = ["ANY_ACTION", "Mangle", "SimState", "SoapCall", "SonosSpeakerSim"]


@dataclass(frozen=True)
class SoapCall:
    """One control request as the speaker received it."""

    service: str
    action: str
    args: Mapping[str, str]
    at: float  # time.monotonic() when it arrived
    error_code: int | None  # the UPnP errorCode answered, None on success


class SonosSpeakerSim(SpeakerModel, SonosFaults):
    """A Sonos One on 127.0.0.1:port; stop() and start() again keep the port and all state.

    Besides the UPnP server it has a Python API for tests and the demo: `state()` reads
    everything, `hand_*` act as the user with the Sonos app, `load_queue()` and
    `start_cloud_queue()` set scenes up, `requests()` is the request log, `fail_next()`
    injects UPnP errors, `mangle_next()` and `garble_next()` malformed answers, `slow_next()`
    and `trickle_next()` late answers (see SonosFaults), and `latency_ms` delays every request.
    """

    def __init__(
        self,
        port: int = 0,
        room_name: str = "Massage Room",
        latency_ms: float = 0,
        *,
        library: Library | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        SpeakerModel.__init__(self, room_name, library=library, clock=clock)
        SonosFaults.__init__(self)
        self.host = "127.0.0.1"
        self.latency_ms = latency_ms
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        # bounded: `relaxd sim` may serve a polling Home Assistant for days
        self._log: deque[SoapCall] = deque(maxlen=50_000)
        self._meta_lock = threading.Lock()

    @classmethod
    def demo(cls, port: int = 0, room_name: str = "Massage Room", latency_ms: float = 0) -> SonosSpeakerSim:
        """A speaker (not yet started) playing everyday music from its queue at volume 25."""
        sim = cls(port, room_name, latency_ms)
        sim.load_queue(track=2, position_s=41.0)
        sim.set_volume(25)
        return sim

    @staticmethod
    def group(coordinator: SonosSpeakerSim, *members: SonosSpeakerSim) -> None:
        """Group members under coordinator (one household), as the Sonos app does: each member
        joins the coordinator's group. Do it before soco first looks: soco caches the zone group
        state for a few seconds."""
        sonos_groups.same_household(coordinator, *(m for m in members if m.household is not coordinator.household))
        for member in members:
            with coordinator.household.lock:
                sonos_groups.join(member, coordinator.uid)

    @staticmethod
    def household_of(*speakers: SonosSpeakerSim) -> None:
        """One household for all of them (as in a home), each speaker in a group of its own."""
        sonos_groups.same_household(*speakers)

    def join(self, coordinator: SonosSpeakerSim) -> None:
        """Join coordinator's group (what the Sonos app's "group" does)."""
        SonosSpeakerSim.group(coordinator, self)

    def unjoin(self) -> None:
        """Leave the group: the speaker becomes the coordinator of a group of its own (a coordinator's
        group plays on under its first member)."""
        with self.household.lock:
            sonos_groups.leave(self)

    def layout(self) -> sonos_groups.Layout:
        """The household's groups now: {coordinator uid: (coordinator uid, member uids...)}."""
        with self.household.lock:
            return sonos_groups.layout(self)

    def power_off(self) -> None:
        """Pull the plug for good: unreachable, and gone from the household's groups (its group plays
        on under another member), unlike stop(), which is a network failure."""
        with self.household.lock:
            sonos_groups.power_off(self)
        self.stop()

    def power_on(self) -> SonosSpeakerSim:
        """Plugged in again: back in the household on its own, with its own state."""
        with self.household.lock:
            sonos_groups.power_on(self)
        return self.start()

    # --- lifecycle ----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._port

    @property
    def address(self) -> str:
        return f"{self.host}:{self._port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> SonosSpeakerSim:
        if self._server is not None:
            return self
        server = _Server((self.host, self._port), self)
        self._port = server.server_address[1]
        self.location = f"http://{self.address}/xml/device_description.xml"
        self._server = server
        self._thread = serve_in_thread(server, f"sonos-sim-{self._port}")
        log.info("simulated Sonos speaker %r on %s", self.room_name, self.address)
        return self

    def stop(self) -> None:
        """Unplug the speaker: new connections are refused, delayed and trickled answers given up."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        shut_down(server, thread)

    def __enter__(self) -> SonosSpeakerSim:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- request log ---------------------------------------------------------------------------
    def requests(self, action: str | None = None) -> list[SoapCall]:
        with self._meta_lock:
            return [c for c in self._log if action is None or c.action == action]

    def clear_requests(self) -> None:
        with self._meta_lock:
            self._log.clear()

    def handle_control(self, path: str, soap_action: str, body: bytes) -> tuple[int, str | bytes]:
        """Answer one control POST: (HTTP status, SOAP envelope, or what a mangle made of it)."""
        service = service_by_control_url(path)
        service_name, action, args = "", "", {}
        mangle: Mangle | None = None
        try:
            service_name, action = parse_soap_action(soap_action)
            if service is None or service.name != service_name or action not in service.actions:
                raise UPnPError(401, "Invalid Action")
            args = parse_arguments(body, action)
            if any(name not in args for name in service.actions[action][0]):
                raise UPnPError(402, "Invalid Args")
            fault = self._take_fault(action)
            if fault is not None and fault.mangle is None:
                raise UPnPError(fault.code, "injected")
            mangle = fault.mangle if fault is not None else None
            status, answer = 200, response_xml(service, action, dispatch(self, action, args))
        except UPnPError as error:
            self._record(service_name, action, args, error.code)
            status, answer = 500, fault_xml(error)
        else:
            self._record(service_name, action, args, None)
        return mangle(status, answer) if mangle is not None else (status, answer)

    def _record(self, service: str, action: str, args: Mapping[str, str], code: int | None) -> None:
        with self._meta_lock:
            self._log.append(SoapCall(service, action, dict(args), time.monotonic(), code))

    def document(self, path: str) -> str | None:
        """The XML documents soco GETs: device description and service descriptions."""
        if path == "/xml/device_description.xml":
            return device_description_xml(room_name=self.room_name, uid=self.uid, mac=self.mac, location_host=self.host)
        spec = service_by_scpd_url(path)
        return scpd_xml(spec) if spec is not None else None


class _Server(SimHttpServer):
    def __init__(self, address: tuple[str, int], sim: SonosSpeakerSim) -> None:
        self.sim = sim
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "Linux UPnP/1.0 Sonos/95.0-77060 (ZPS18)"
    sys_version = ""

    def _delay(self) -> None:
        latency_ms = self.server.sim.latency_ms
        if latency_ms > 0:
            time.sleep(latency_ms / 1000)

    def _send(self, status: int, text: str | bytes) -> None:
        data = text.encode("utf-8") if isinstance(text, str) else text
        self.send_response(status)
        self.send_header("Content-Type", 'text/xml; charset="utf-8"')
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._delay()
        document = self.server.sim.document(self.path.split("?")[0])
        if document is None:
            self.send_error(404)
            return
        self._send(200, document)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        sim, soap_action = self.server.sim, self.headers.get("SOAPACTION", "")
        action = action_name(soap_action)
        # Taken at arrival, like the request itself: only the answer is paced.
        pace = sim.pacing.take(action)
        self._delay()
        status, text = sim.handle_control(self.path, soap_action, body)
        if pace is None:
            self._send(status, text)
        else:
            answer_paced(self, sim.pacing, action, pace, lambda: self._send(status, text), self.server.stopping)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)
