"""One Hue API request in a worker thread (phue's API model over http.client), and the one error wrapper."""

from __future__ import annotations

import http.client
import json
import logging
import os
import ssl
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import phue

from relaxd.adapters.hue.identity import Identity, IdentityError, Verifier, ssl_error_means_no_tls
from relaxd.core.ports import DeviceError

logger = logging.getLogger(__name__)

DEVICE = "lights"
# "auto", True or False (a str in the signature so CLI flags pass through; checked at run time).
HttpsMode = str | bool
RETRY_AFTER_429_S = 1.0
MAX_RETRY_AFTER_S = 5.0
_REDIRECTS = (301, 302, 303, 307, 308)
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
        self._secrets: list[str] = []
        self.timeout_s = timeout_s

    def hide(self, secret: str) -> None:
        """One more username to keep out of messages (the one pairing just got)."""
        self._secrets.append(secret)

    def redact(self, text: str) -> str:
        for secret in (self._username, *self._secrets):
            text = text.replace(secret, "***") if secret else text
        return text

    def fence(self, what: str, budget_s: float) -> DeviceError:
        """An earlier request to the same lights (given up on) has still not returned."""
        return DeviceError(DEVICE, f"{what}: an earlier request to these lights has not ended within {budget_s:g} s")

    def __call__(self, what: str, exc: BaseException) -> DeviceError:
        if isinstance(exc, RateLimited):
            return RateLimited(exc.message, exc.retry_after_s)
        if isinstance(exc, IdentityError):
            return IdentityError(exc.message)
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

    https: True for HTTPS only (Hue Bridge Pro), False for plain HTTP, "auto" for HTTPS first: a bridge
    whose identity is in the config is only ever spoken to over HTTPS; one without (an old config) gets
    plain HTTP only when it does not speak TLS at all. Every HTTPS connection is checked against the
    identity before the request is written (see identity.py). A redirect is never followed: a followed
    `POST /api` turns into a GET, and a redirect's target is not the bridge relaxd checked.
    """

    def __init__(self, errors: BridgeErrors, https: HttpsMode, identity: Identity | None = None) -> None:
        if https not in ("auto", True, False):
            raise ValueError(f"https must be 'auto', True or False, not {https!r}")
        self.errors = errors
        self.host = errors.host
        self.identity = identity if identity is not None else Identity()
        self.verifier = Verifier(self.identity, errors.host)
        auto = https == "auto" and not self.identity.known
        self._scheme: str | None = None if auto else ("http" if https is False else "https")
        self._told = False

    @property
    def scheme(self) -> str | None:
        """The scheme in use (None: auto, not found out yet)."""
        return self._scheme

    def request(self, mode: str, address: str, data: Any, on_sent: Callable[[], None]) -> Any:
        """One API request (blocking): the answer's JSON; bridge error objects and 429 raised."""
        body = None if data is None or mode in ("GET", "DELETE") else json.dumps(data).encode()
        status, payload, retry_after_s, location = self._send(mode, address, body, on_sent)
        shown = f"{mode} {self.errors.redact(address)}"
        logger.debug("hue %s -> HTTP %s", shown, status)
        if status == 429:
            raise RateLimited(f"{shown}: HTTP 429 (the bridge is rate limiting)", retry_after_s)
        if status in _REDIRECTS:
            raise DeviceError(DEVICE, _redirect_message(self.host, status, location), code=status)
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

    def _send(self, mode: str, address: str, body: bytes | None, on_sent: Callable[[], None]) -> _Answer:
        scheme = self._scheme
        if scheme is not None:
            return self._send_once(scheme, mode, address, body, on_sent)
        try:
            result = self._send_once("https", mode, address, body, on_sent)
        except (NoTls, ConnectionRefusedError) as exc:
            logger.info("hue bridge %s does not speak HTTPS (%s); trying plain HTTP", self.host, type(exc).__name__)
            result = self._send_once("http", mode, address, body, on_sent)
            if result[0] not in _REDIRECTS:
                self._scheme = "http"
                logger.warning(
                    "hue bridge %s speaks plain HTTP only: its username crosses the network unencrypted", self.host
                )
            return result
        self._scheme = "https"
        return result

    def _send_once(
        self, scheme: str, mode: str, address: str, body: bytes | None, on_sent: Callable[[], None]
    ) -> _Answer:
        # A per-read timeout only; the whole request's deadline is the op's (blocking.py).
        timeout_s = self.errors.timeout_s
        connection: http.client.HTTPConnection
        if scheme == "https":
            connection = http.client.HTTPSConnection(self.host, timeout=timeout_s, context=self.verifier.context())
        else:
            connection = http.client.HTTPConnection(self.host, timeout=timeout_s)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            if isinstance(connection, http.client.HTTPSConnection):
                self._connect_checked(connection)
            connection.request(mode, address, body=body, headers=headers)
            on_sent()
            response = connection.getresponse()
            payload = response.read()
            retry_after = response.getheader("Retry-After") or ""
            location = response.getheader("Location") or ""
        finally:
            connection.close()
        retry_after_s = float(retry_after) if retry_after.replace(".", "", 1).isdigit() else RETRY_AFTER_429_S
        return response.status, payload, min(retry_after_s, MAX_RETRY_AFTER_S), location

    def _connect_checked(self, connection: http.client.HTTPSConnection) -> None:
        """The TLS handshake, then the identity check: nothing is written before both passed."""
        try:
            connection.connect()
        except ssl.SSLCertVerificationError as exc:
            raise IdentityError(
                f"the certificate of the bridge at {self.host} is not signed by a Hue bridge CA "
                f"({exc.verify_message}); nothing was sent to it"
            ) from exc
        except (ssl.SSLError, ConnectionResetError) as exc:
            if ssl_error_means_no_tls(exc):
                raise NoTls(f"the bridge at {self.host} does not speak HTTPS ({type(exc).__name__})") from exc
            raise
        sock = connection.sock
        self.verifier.check(sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else None)
        if not self.identity.verify and not self._told:
            self._told = True
            logger.warning(
                "hue bridge %s: verify is false, its certificate is not checked: anyone on the network could "
                "pose as it and learn its username",
                self.host,
            )


# (HTTP status, body, seconds to wait after a 429, Location header)
_Answer = tuple[int, bytes, float, str]


class NoTls(DeviceError):
    """The other end answered the TLS handshake with something that is not TLS."""

    def __init__(self, message: str) -> None:
        super().__init__(DEVICE, message)


def _redirect_message(host: str, status: int, location: str) -> str:
    target = urlsplit(location)
    # Only scheme and host: the path would carry the username.
    where = f" to {target.scheme}://{target.netloc}/" if target.scheme and target.netloc else ""
    return (
        f"the bridge at {host} answers with a redirect (HTTP {status}{where}), which relaxd never follows: "
        "a bridge that serves HTTPS only does this to plain HTTP. Set `https: true` (or `auto`) for it "
        "and pair over HTTPS"
    )


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
