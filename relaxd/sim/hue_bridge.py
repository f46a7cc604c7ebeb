"""A simulated Hue bridge: a real HTTP server on 127.0.0.1 speaking the REST API v1 (phue works)."""

from __future__ import annotations

import copy
import json
import logging
import secrets
import ssl
import threading
import time
from collections.abc import Iterable
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from relaxd.sim.hue_api import HueApiState, Reply
from relaxd.sim.hue_faults import HueFaults
from relaxd.sim.hue_http import HttpServer, PlainHttp
from relaxd.sim.hue_limits import BRIDGE_RATE_LIMITS, GROUP_COMMANDS_PER_S, LIGHT_COMMANDS_PER_S, HueLimits, RateLimits
from relaxd.sim.hue_model import (
    COLOR_TEMPERATURE,
    DIMMABLE,
    EXTENDED_COLOR,
    MODELS,
    GroupType,
    LightModel,
    SimGroup,
    SimLight,
    error,
)
from relaxd.sim.hue_tls import HueHttps, SimCertificates

# The limits (defined in hue_limits) are importable from here too, as they were first.
__all__ = ["GROUP_COMMANDS_PER_S", "LIGHT_COMMANDS_PER_S", "HandChange", "HueBridgeSim", "LogEntry", "RateLimits"]

logger = logging.getLogger(__name__)


class LogEntry(NamedTuple):
    """One request as the bridge received it (body: parsed JSON, raw text if invalid, None if empty)."""

    at_s: float
    method: str
    path: str
    body: Any


class HandChange(NamedTuple):
    """A change made "in the Hue app" through the inspection API."""

    at_s: float
    light_id: str
    fields: dict[str, Any]


class HueBridgeSim(HueFaults, HueLimits, HueHttps):
    """A Hue bridge on 127.0.0.1 with a Python inspection API for tests, benchmarks and the demo.

    Faults: latency_ms delays carrying out every request; fail_next, mangle_next, slow_next
    and trickle_next (see HueFaults) shape the next answers; stop() is the bridge unplugged.
    Limits (see HueLimits): rate_limits (the real bridge's by default; shorter windows make
    pacing tests fast), rate_limited_count, in_flight and max_in_flight.
    HTTPS (https=True) as a real bridge: a leaf certificate with CN = bridge_id and no subjectAltName,
    signed by certificates' CA (its own if none is given), plain HTTP on the same port answered as
    plain_http says ("redirect": 301, as the Bridge Pro; "serve": as the square bridge).
    """

    def __init__(
        self,
        port: int = 0,
        lights: int = 3,
        latency_ms: float = 0,
        username: str | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        rate_limits: RateLimits = BRIDGE_RATE_LIMITS,
        https: bool = False,
        plain_http: PlainHttp = "redirect",
        bridge_id: str | None = None,
        certificates: SimCertificates | None = None,
    ) -> None:
        HueFaults.__init__(self)
        HueLimits.__init__(self, rate_limits)
        self.host = "127.0.0.1"
        self.latency_ms = latency_ms
        # Real usernames are 40 hex characters; bridge ids are 001788FFFE and 6 more hex digits.
        self.username = username or secrets.token_hex(20)
        self.bridge_id = (bridge_id or f"001788FFFE{secrets.token_hex(3)}").upper()
        self.https = https or ssl_context is not None
        self._own_certificates = https and certificates is None
        self.certificates = certificates if certificates is not None else SimCertificates()
        self._context = ssl_context
        tls = self._tls_context if self.https else None
        plain = plain_http if self.https else "serve"
        self._http = HttpServer(
            self.host, port, self.handle, tls, self.pacing, self._in_flight, plain, self._redirected
        )
        self._lock = threading.RLock()
        self._api = HueApiState(self.username, self.bridge_id, "BSB003" if plain == "redirect" else "BSB002")
        self._log: list[LogEntry] = []
        self._redirects: list[LogEntry] = []
        self._hand_log: list[HandChange] = []
        for index in range(lights):
            self._add_default_light(index)
        if lights:
            self.add_group("Massage Room", list(self._api.lights))

    # -- lifecycle --------------------------------------------------------------------------

    @classmethod
    def demo_room(cls, port: int = 0, latency_ms: float = 0) -> HueBridgeSim:
        """A room of three lights in different states and a Room group "Massage Room"."""
        sim = cls(port=port, lights=0, latency_ms=latency_ms)
        ceiling = sim.add_light(EXTENDED_COLOR, "Ceiling", on=True, bri=254, ct=181, colormode="ct")
        lamp = sim.add_light(EXTENDED_COLOR, "Floor lamp", on=True, bri=140, xy=[0.2182, 0.1352], colormode="xy")
        bedside = sim.add_light(DIMMABLE, "Bedside lamp", on=False, bri=200)
        sim.add_group("Massage Room", [ceiling, lamp, bedside])
        return sim

    def start(self) -> None:
        """Bind (the same port again after stop(): state is kept) and serve in a background thread."""
        self._http.start()
        logger.debug("hue sim listening on %s", self.address)

    def stop(self) -> None:
        """Unplug the bridge: new connections are refused, delayed and trickled answers given up."""
        self._http.stop()
        if self._own_certificates and not self._http.running:
            self.certificates.close()
            self._context = None

    # -- HTTPS -------------------------------------------------------------------------------------

    def redirected(self) -> list[LogEntry]:
        """Plain HTTP requests answered with a 301 (they never reached the API)."""
        with self._lock:
            return list(self._redirects)

    def _redirected(self, method: str, raw_path: str, raw_body: bytes) -> None:
        entry = LogEntry(time.monotonic(), method, urlsplit(raw_path).path, raw_body.decode("utf-8", "replace") or None)
        with self._lock:
            self._redirects.append(entry)

    @property
    def running(self) -> bool:
        return self._http.running

    def __enter__(self) -> HueBridgeSim:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._http.port

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    # -- HTTP -------------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, raw_body: bytes) -> Reply:
        """Answer one request: log, latency, injected faults, rate limits, then the v1 routes."""
        arrived_s = time.monotonic()
        path = urlsplit(raw_path).path
        body: Any = None
        body_ok = True
        if raw_body:
            try:
                body = json.loads(raw_body)
            except ValueError:
                body, body_ok = raw_body.decode("utf-8", "replace"), False
        with self._lock:
            self._log.append(LogEntry(arrived_s, method, path, body))
        if self.latency_ms > 0:
            time.sleep(self.latency_ms / 1000)
        parts = [p for p in path.split("/") if p]
        with self._lock:
            fault = self._take_fault(path)
            if fault is not None and fault.mangle is None:
                return self._fault_reply(fault, path)
            reply = self._route(method, parts, body, body_ok)
        if fault is not None and fault.mangle is not None:
            status, payload = reply
            # A copy: the answer may share objects with the bridge's own state.
            return fault.mangle(status, copy.deepcopy(payload))
        return reply

    def _route(self, method: str, parts: list[str], body: Any, body_ok: bool) -> Reply:
        with self._lock:
            # Admission time (not arrival) keeps the window monotonic under concurrent requests.
            if not self._admit(method, parts, time.monotonic()):
                return 429, b"Too Many Requests"
            if not parts or parts[0] != "api":
                return 404, b"Not Found"
            if len(parts) == 1:
                if not body_ok:
                    return 200, [error(2, "/", "body contains invalid json")]
                if method == "POST":
                    return self._api.pair(body)
                return 200, [error(4, "/", f"method, {method}, not available for resource, /")]
            if not body_ok:
                return 200, [error(2, "/" + "/".join(parts[2:]), "body contains invalid json")]
            return self._api.route(method, parts[1], parts[2:], body if method != "GET" else None)

    # -- inspection and test API (Python only, not over HTTP) ---------------------------------

    def request_log(self) -> list[LogEntry]:
        with self._lock:
            return list(self._log)

    def clear_request_log(self) -> None:
        with self._lock:
            self._log.clear()

    def hand_log(self) -> list[HandChange]:
        with self._lock:
            return list(self._hand_log)

    @property
    def link_button_pressed(self) -> bool:
        """Whether pairing is open (the button was pressed in the last 30 s)."""
        with self._lock:
            return self._api.link_button_pressed()

    def press_link_button(self, ago_s: float = 0.0) -> None:
        """Press the link button now (or pretend it was pressed ago_s seconds ago)."""
        with self._lock:
            self._api.link_pressed_at = time.monotonic() - ago_s

    def add_light(self, model: LightModel, name: str | None = None, **state: Any) -> str:
        """Add a light with initial state fields (no validation); returns its id."""
        with self._lock:
            light_id = str(max((int(i) for i in self._api.lights), default=0) + 1)
            light = SimLight.create(light_id, name or f"Light {light_id}", model, **state)
            self._api.lights[light_id] = light
            return light_id

    def add_group(self, name: str, light_ids: list[str], type: GroupType = "Room") -> str:
        with self._lock:
            group_id = str(max((int(i) for i in self._api.groups), default=0) + 1)
            self._api.groups[group_id] = SimGroup(group_id, name, [str(i) for i in light_ids], type=type)
            return group_id

    def set_group_lights(self, group: int | str, light_ids: Iterable[int | str]) -> None:
        """Make a group hold exactly light_ids, as the Hue app would (and `PUT /groups/<id>` with
        "lights" does): known lights only, at least one in a LightGroup; a light put in a Room
        leaves the Room it was in. No rate limit, nothing in the request log. group: an id or else
        a name; KeyError for an unknown group, ValueError (the bridge's description) if refused,
        and then nothing changed."""
        with self._lock:
            found = self._api.group(str(group)) or next((g for g in self._api.groups.values() if g.name == group), None)
            if found is None:
                raise KeyError(group)
            ids = [str(i) for i in light_ids]
            refusal = self._api.members_refusal(found, ids)
            if refusal is not None:
                raise ValueError(refusal)
            self._api.set_members(found, ids)

    def group_names(self) -> list[str]:
        with self._lock:
            return [g.name for g in self._api.groups.values()]

    def group_lights(self, name: str) -> list[str]:
        with self._lock:
            return next(list(g.light_ids) for g in self._api.groups.values() if g.name == name)

    def group_json(self, group_id: int | str) -> dict[str, Any]:
        with self._lock:
            group = self._api.group(str(group_id))
            if group is None:
                raise KeyError(group_id)
            return group.to_json(self._api.lights)

    def light_ids(self) -> list[str]:
        with self._lock:
            return list(self._api.lights)

    def light_names(self) -> list[str]:
        with self._lock:
            return [light.name for light in self._api.lights.values()]

    def light(self, light_id: int | str) -> dict[str, Any]:
        """The light as GET /lights/<id> would return it."""
        with self._lock:
            return self._api.lights[str(light_id)].to_json()

    def light_state(self, light_id: int | str) -> dict[str, Any]:
        return dict(self.light(light_id)["state"])

    def set_light_by_hand(self, light_id: int | str, **fields: Any) -> None:
        """Change a light as the Hue app would (bridge rules, no rate limit); KeyError for an
        unknown light, ValueError ("<field>: <bridge's description>; ...") if refused, and then
        nothing changed."""
        with self._lock:
            light = self._api.lights[str(light_id)]
            address = f"/lights/{light_id}/state"
            # A dry run first: the bridge applies what passed, a refused hand change applies nothing.
            results = copy.deepcopy(light).command(dict(fields), address)
            errors = [
                f"{r['error']['address'].rpartition('/')[2]}: {r['error']['description']}"
                for r in results
                if "error" in r
            ]
            if errors:
                raise ValueError("; ".join(errors))
            light.command(dict(fields), address)
            self._hand_log.append(HandChange(time.monotonic(), str(light_id), dict(fields)))

    def set_reachable(self, light_id: int | str, reachable: bool) -> None:
        with self._lock:
            self._api.lights[str(light_id)].state["reachable"] = reachable

    def _add_default_light(self, index: int) -> None:
        model = MODELS[index % len(MODELS)]
        if model is EXTENDED_COLOR and (index // len(MODELS)) % 2:
            self.add_light(model, on=True, bri=180, xy=[0.3227, 0.329], colormode="xy")
        elif model is EXTENDED_COLOR:
            self.add_light(model, on=True, bri=200, ct=233, colormode="ct")
        elif model is COLOR_TEMPERATURE:
            self.add_light(model, on=True, bri=150, ct=400)
        else:
            self.add_light(model, on=False, bri=254)
