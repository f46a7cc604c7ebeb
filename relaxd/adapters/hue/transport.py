"""One Hue bridge: phue's API model over relaxd's own transport (timeouts, HTTPS, pacing, errors)."""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import phue

from relaxd.adapters.hue.pacing import ConnectionSlots, Pacer, group_pacer, light_pacer
from relaxd.adapters.hue.shapes import groups_problem, lights_problem
from relaxd.core.ports import DeviceError

logger = logging.getLogger(__name__)

DEVICE = "lights"
# "auto", True or False (a str in the signature so CLI flags pass through; checked at run time).
HttpsMode = str | bool
T = TypeVar("T")

# Newer firmware answers more than about three concurrent requests with 429/503.
MAX_CONCURRENT_REQUESTS = 3
RETRY_AFTER_429_S = 1.0
_LIGHT_COMMAND = re.compile(r"^/api/[^/]+/lights/\d+/state/?$")
_GROUP_COMMAND = re.compile(r"^/api/[^/]+/groups/\d+/action/?$")
_REDIRECTS = (301, 302, 303, 307, 308)
# What a bridge that only serves HTTPS does to a plain HTTP request: refuse, reset or redirect.
_TRY_HTTPS_AFTER = (ConnectionRefusedError, ConnectionResetError, http.client.BadStatusLine)


def quiet_phue() -> None:
    """phue logs the username at INFO and every request at DEBUG: keep it to warnings."""
    logging.getLogger("phue").setLevel(logging.WARNING)


quiet_phue()


class _PhueBridge(phue.Bridge):  # type: ignore[misc]
    """phue's Bridge with relaxd's transport; never reads ~/.python_hue and never pairs."""

    def __init__(self, owner: HueBridge) -> None:
        self._owner = owner
        # Both ip and username given, and an explicit config path: phue never looks at HOME.
        super().__init__(ip=owner.host, username=owner.username, config_file_path=os.devnull)

    def connect(self) -> None:
        # phue's connect() would log the username and fall back to its config file.
        return None

    def register_app(self) -> None:
        raise DeviceError(DEVICE, "the bridge does not know this username; pair with `relaxd hue pair`")

    def request(self, mode: str = "GET", address: str | None = None, data: Any = None) -> Any:
        return self._owner.transport(mode, address or "/", data)


class HueBridge:
    """A physical Hue bridge shared by rooms. Thread-safe; the constructor does no I/O.

    https: True for bridges that only serve HTTPS (Hue Bridge Pro), False for plain HTTP, "auto"
    to try HTTP first and switch to HTTPS when the bridge refuses, resets or redirects the plain
    request (then remembered). HTTPS skips certificate checks: bridges use self-signed certificates.
    """

    def __init__(self, host: str, username: str, https: HttpsMode = "auto", timeout_s: float = 5.0) -> None:
        if https not in ("auto", True, False):
            raise ValueError(f"https must be 'auto', True or False, not {https!r}")
        quiet_phue()
        self.host = host
        self.username = username
        self.https = https
        self.timeout_s = timeout_s
        self._scheme: str | None = None if https == "auto" else ("https" if https else "http")
        self._light_pacer: Pacer = light_pacer()
        self._group_pacer: Pacer = group_pacer()
        self._slots = ConnectionSlots(MAX_CONCURRENT_REQUESTS)
        self._lock = threading.Lock()
        self._phue: _PhueBridge | None = None

    def __repr__(self) -> str:
        return f"HueBridge(host={self.host!r}, https={self.https!r})"

    # -- the one error wrapper ------------------------------------------------------------------

    def call(self, what: str, action: Callable[[Any], T]) -> T:
        """Run action(phue_bridge); every failure comes out as DeviceError."""
        try:
            return action(self._bridge())
        except DeviceError:
            raise
        except TimeoutError as exc:
            raise DeviceError(DEVICE, f"{what}: no answer from {self.host} within {self.timeout_s:g} s") from exc
        except ConnectionRefusedError as exc:
            raise DeviceError(DEVICE, f"{what}: {self.host} refused the connection") from exc
        except Exception as exc:  # phue raises anything from OSError to KeyError
            detail = self._redact(f"{type(exc).__name__}: {exc}")
            raise DeviceError(DEVICE, f"{what}: {detail}") from exc

    def _bridge(self) -> _PhueBridge:
        with self._lock:
            if self._phue is None:
                self._phue = _PhueBridge(self)
            return self._phue

    def _redact(self, text: str) -> str:
        return text.replace(self.username, "***") if self.username else text

    # -- what rooms use ---------------------------------------------------------------------------

    def get_lights(self) -> dict[str, Any]:
        """GET /lights, checked: everything relaxd reads has the type the API gives it."""
        lights = _expect_dict(self.call("reading lights", lambda b: b.get_light()), "lights")
        _raise_shape("lights", lights_problem(lights))
        return lights

    def get_groups(self) -> dict[str, Any]:
        groups = _expect_dict(self.call("reading groups", lambda b: b.get_group()), "groups")
        _raise_shape("groups", groups_problem(groups))
        return groups

    def set_light_state(self, light_id: int, body: dict[str, Any]) -> None:
        # An int id: phue takes a string id for a light name.
        self.call(f"setting light {light_id}", lambda b: b.set_light(int(light_id), dict(body)))

    def set_group_action(self, group_id: int, body: dict[str, Any]) -> None:
        self.call(f"setting group {group_id}", lambda b: b.set_group(int(group_id), dict(body)))

    def check(self) -> None:
        """One GET of the config; an unknown username only gets the public part of it."""
        config = self.call("reading config", lambda b: b.request("GET", f"/api/{b.username}/config"))
        if not isinstance(config, dict) or "whitelist" not in config:
            raise DeviceError(DEVICE, "the bridge does not know this username; pair with `relaxd hue pair`", code=1)

    # -- transport --------------------------------------------------------------------------------

    def transport(self, mode: str, address: str, data: Any) -> Any:
        """One API request: paced, retried once after a 429, bridge error objects raised."""
        pacer = None
        if mode == "PUT" and _LIGHT_COMMAND.match(address):
            pacer = self._light_pacer
        elif mode == "PUT" and _GROUP_COMMAND.match(address):
            pacer = self._group_pacer
        body = None if data is None or mode in ("GET", "DELETE") else json.dumps(data).encode()
        for attempt in (1, 2):
            if pacer is not None:
                pacer.acquire()
            self._slots.acquire(command=pacer is not None)
            try:
                status, payload, retry_after_s = self._send(mode, address, body)
            finally:
                self._slots.release()
            if status != 429 or attempt == 2:
                break
            logger.info("hue bridge %s is rate limiting; retrying in %.1f s", self.host, retry_after_s)
            time.sleep(retry_after_s)
        logger.debug("hue %s %s -> HTTP %s", mode, self._redact(address), status)
        if status != 200:
            raise DeviceError(DEVICE, f"{mode} {self._redact(address)}: HTTP {status}", code=status)
        try:
            result = json.loads(payload)
        except ValueError as exc:
            raise DeviceError(DEVICE, f"{mode} {self._redact(address)}: the bridge sent invalid JSON") from exc
        errors = (
            [e["error"] for e in result if isinstance(e, dict) and "error" in e] if isinstance(result, list) else []
        )
        if errors:
            text = "; ".join(f"{e.get('description')} ({e.get('address')})" for e in errors)
            code = errors[0].get("type")
            raise DeviceError(DEVICE, self._redact(text), code=code if isinstance(code, int) else None)
        return result

    def _send(self, mode: str, address: str, body: bytes | None) -> tuple[int, bytes, float]:
        """One request over one of the connection slots (the caller holds it)."""
        scheme = self._scheme
        if scheme is not None:
            return self._send_once(scheme, mode, address, body)
        try:
            status, payload, retry_after_s = self._send_once("http", mode, address, body)
        except _TRY_HTTPS_AFTER as exc:
            logger.info("hue bridge %s refused plain HTTP (%s); trying HTTPS", self.host, exc)
        else:
            if status not in _REDIRECTS:
                self._scheme = "http"
                return status, payload, retry_after_s
            logger.info("hue bridge %s redirects plain HTTP; trying HTTPS", self.host)
        result = self._send_once("https", mode, address, body)
        self._scheme = "https"
        return result

    def _send_once(self, scheme: str, mode: str, address: str, body: bytes | None) -> tuple[int, bytes, float]:
        connection: http.client.HTTPConnection
        if scheme == "https":
            connection = http.client.HTTPSConnection(self.host, timeout=self.timeout_s, context=_bridge_tls_context())
        else:
            connection = http.client.HTTPConnection(self.host, timeout=self.timeout_s)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            connection.request(mode, address, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            retry_after = response.getheader("Retry-After") or ""
        finally:
            connection.close()
        retry_after_s = float(retry_after) if retry_after.replace(".", "", 1).isdigit() else RETRY_AFTER_429_S
        return response.status, payload, min(retry_after_s, 5.0)


def _bridge_tls_context() -> ssl.SSLContext:
    # Bridges present self-signed certificates (Signify's own CA, CN = bridge id): no CA checks.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _expect_dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DeviceError(DEVICE, f"the bridge sent {what} in an unexpected shape")
    return value


def _raise_shape(what: str, problem: str | None) -> None:
    # A broken or foreign answer must come out as a DeviceError, not as a TypeError three calls later.
    if problem is not None:
        raise DeviceError(DEVICE, f"the bridge sent {what} in an unexpected shape: {problem}")


def pair(
    host: str,
    https: HttpsMode = "auto",
    timeout_s: float = 5.0,
    wait_s: float = 30.0,
    on_tick: Callable[[float], None] | None = None,
    devicetype: str | None = None,
    poll_s: float = 1.0,
) -> str:
    """The link-button flow: POST /api every poll_s until the button is pressed; returns the username.

    on_tick(seconds_left) is called before each wait. devicetype defaults to "relaxd#<hostname>".
    """
    bridge = HueBridge(host, "", https=https, timeout_s=timeout_s)
    request = {"devicetype": devicetype or f"relaxd#{socket.gethostname()[:19]}"}
    deadline_s = time.monotonic() + wait_s
    while True:
        try:
            result = bridge.call("pairing", lambda b: b.request("POST", "/api", request))
        except DeviceError as exc:
            if exc.code != 101:
                raise
        else:
            try:
                username = result[0]["success"]["username"]
            except (LookupError, TypeError) as exc:
                raise DeviceError(DEVICE, "pairing: the bridge sent an unexpected answer") from exc
            if not isinstance(username, str) or not username:
                raise DeviceError(DEVICE, "pairing: the bridge sent an unexpected answer")
            return username
        left_s = deadline_s - time.monotonic()
        if left_s <= 0:
            raise DeviceError(
                DEVICE,
                f"the link button on the bridge at {host} was not pressed within {wait_s:g} s: "
                "press the round button on the bridge, then pair again",
                code=101,
            )
        if on_tick is not None:
            on_tick(left_s)
        time.sleep(min(poll_s, left_s))
