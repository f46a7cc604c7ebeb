"""One Hue API request in a worker thread (phue's API model over http.client), and the one error wrapper."""

from __future__ import annotations

import http.client
import json
import logging
import os
import ssl
from collections.abc import Callable
from typing import Any

import phue

from relaxd.core.ports import DeviceError

logger = logging.getLogger(__name__)

DEVICE = "lights"
# "auto", True or False (a str in the signature so CLI flags pass through; checked at run time).
HttpsMode = str | bool
RETRY_AFTER_429_S = 1.0
MAX_RETRY_AFTER_S = 5.0
_REDIRECTS = (301, 302, 303, 307, 308)
# What a bridge that only serves HTTPS does to a plain HTTP request: refuse, reset or redirect.
_TRY_HTTPS_AFTER = (ConnectionRefusedError, ConnectionResetError, http.client.BadStatusLine)
NOT_PAIRED = "the bridge does not know this username; pair with `relaxd hue pair`"


def quiet_phue() -> None:
    """phue logs the username at INFO and every request at DEBUG: keep it to warnings."""
    logging.getLogger("phue").setLevel(logging.WARNING)


quiet_phue()


class RateLimited(DeviceError):
    """HTTP 429 from the bridge, with how long it asked to wait (capped)."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(DEVICE, message, code=429)
        self.retry_after_s = retry_after_s


class BridgeErrors:
    """The adapter's one error wrapper: any failure of a request to one bridge as a DeviceError,
    never with the username in it."""

    def __init__(self, host: str, username: str, timeout_s: float) -> None:
        self.host = host
        self._username = username
        self.timeout_s = timeout_s

    def redact(self, text: str) -> str:
        return text.replace(self._username, "***") if self._username else text

    def fence(self, what: str, budget_s: float) -> DeviceError:
        """An earlier request to the same lights (given up on) has still not returned."""
        return DeviceError(DEVICE, f"{what}: an earlier request to these lights has not ended within {budget_s:g} s")

    def __call__(self, what: str, exc: BaseException) -> DeviceError:
        if isinstance(exc, RateLimited):
            return RateLimited(exc.message, exc.retry_after_s)
        if isinstance(exc, DeviceError):  # a copy: the original becomes its cause
            return DeviceError(exc.device, exc.message, code=exc.code)
        if isinstance(exc, TimeoutError):
            return DeviceError(DEVICE, f"{what}: no answer from {self.host} within {self.timeout_s:g} s")
        if isinstance(exc, ConnectionRefusedError):
            return DeviceError(DEVICE, f"{what}: {self.host} refused the connection")
        detail = self.redact(f"{type(exc).__name__}: {exc}")  # phue raises anything from OSError to KeyError
        return DeviceError(DEVICE, f"{what}: {detail}")


class Transport:
    """How to reach one bridge over http.client; shared by the worker threads.

    https: True for bridges that only serve HTTPS (Hue Bridge Pro), False for plain HTTP, "auto"
    to try HTTP first and switch to HTTPS when the bridge refuses, resets or redirects the plain
    request (then remembered). HTTPS skips certificate checks: bridges use self-signed certificates.
    """

    def __init__(self, errors: BridgeErrors, https: HttpsMode) -> None:
        if https not in ("auto", True, False):
            raise ValueError(f"https must be 'auto', True or False, not {https!r}")
        self.errors = errors
        self.host = errors.host
        self._scheme: str | None = None if https == "auto" else ("https" if https else "http")

    def request(self, mode: str, address: str, data: Any, on_sent: Callable[[], None]) -> Any:
        """One API request (blocking): the answer's JSON; bridge error objects and 429 raised."""
        body = None if data is None or mode in ("GET", "DELETE") else json.dumps(data).encode()
        status, payload, retry_after_s = self._send(mode, address, body, on_sent)
        shown = f"{mode} {self.errors.redact(address)}"
        logger.debug("hue %s -> HTTP %s", shown, status)
        if status == 429:
            raise RateLimited(f"{shown}: HTTP 429 (the bridge is rate limiting)", retry_after_s)
        if status != 200:
            raise DeviceError(DEVICE, f"{shown}: HTTP {status}", code=status)
        try:
            result = json.loads(payload)
        except ValueError as exc:
            raise DeviceError(DEVICE, f"{shown}: the bridge sent invalid JSON") from exc
        errors = (
            [e["error"] for e in result if isinstance(e, dict) and "error" in e] if isinstance(result, list) else []
        )
        if errors:
            text = "; ".join(f"{e.get('description')} ({e.get('address')})" for e in errors if isinstance(e, dict))
            code = errors[0].get("type") if isinstance(errors[0], dict) else None
            raise DeviceError(DEVICE, self.errors.redact(text), code=code if isinstance(code, int) else None)
        return result

    def _send(
        self, mode: str, address: str, body: bytes | None, on_sent: Callable[[], None]
    ) -> tuple[int, bytes, float]:
        scheme = self._scheme
        if scheme is not None:
            return self._send_once(scheme, mode, address, body, on_sent)
        try:
            status, payload, retry_after_s = self._send_once("http", mode, address, body, on_sent)
        except _TRY_HTTPS_AFTER as exc:
            logger.info("hue bridge %s refused plain HTTP (%s); trying HTTPS", self.host, type(exc).__name__)
        else:
            if status not in _REDIRECTS:
                self._scheme = "http"
                return status, payload, retry_after_s
            logger.info("hue bridge %s redirects plain HTTP; trying HTTPS", self.host)
        result = self._send_once("https", mode, address, body, on_sent)
        self._scheme = "https"
        return result

    def _send_once(
        self, scheme: str, mode: str, address: str, body: bytes | None, on_sent: Callable[[], None]
    ) -> tuple[int, bytes, float]:
        # A per-read timeout only; the whole request's deadline is the op's (blocking.py).
        timeout_s = self.errors.timeout_s
        connection: http.client.HTTPConnection
        if scheme == "https":
            connection = http.client.HTTPSConnection(self.host, timeout=timeout_s, context=_bridge_tls_context())
        else:
            connection = http.client.HTTPConnection(self.host, timeout=timeout_s)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            connection.request(mode, address, body=body, headers=headers)
            on_sent()
            response = connection.getresponse()
            payload = response.read()
            retry_after = response.getheader("Retry-After") or ""
        finally:
            connection.close()
        retry_after_s = float(retry_after) if retry_after.replace(".", "", 1).isdigit() else RETRY_AFTER_429_S
        return response.status, payload, min(retry_after_s, MAX_RETRY_AFTER_S)


def _bridge_tls_context() -> ssl.SSLContext:
    # Bridges present self-signed certificates (Signify's own CA, CN = bridge id): no CA checks.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class PhueBridge(phue.Bridge):  # type: ignore[misc]
    """phue's Bridge for one request over relaxd's transport; never reads ~/.python_hue, never pairs.

    One is made per request (cheap, no I/O) so the request knows whom to tell that it was sent."""

    def __init__(self, transport: Transport, username: str, on_sent: Callable[[], None]) -> None:
        self._transport = transport
        self._on_sent = on_sent
        # Both ip and username given, and an explicit config path: phue never looks at HOME.
        super().__init__(ip=transport.host, username=username, config_file_path=os.devnull)

    def connect(self) -> None:
        # phue's connect() would log the username and fall back to its config file.
        return None

    def register_app(self) -> None:
        raise DeviceError(DEVICE, NOT_PAIRED)

    def request(self, mode: str = "GET", address: str | None = None, data: Any = None) -> Any:
        return self._transport.request(mode, address or "/", data, self._on_sent)
