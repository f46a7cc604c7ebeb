"""The HTTP side of the simulated Hue bridge: a threaded server, restartable, counting requests in flight."""

from __future__ import annotations

import json
import logging
import re
import socket
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal
from urllib.parse import urlsplit

from relaxd.sim.faults import AnswerPacing
from relaxd.sim.hue_limits import InFlight, SlidingWindow
from relaxd.sim.pacing import answer_paced
from relaxd.sim.serving import SimHttpServer, serve_in_thread, shut_down

# SlidingWindow (defined in hue_limits) is importable from here too, as it was first.
__all__ = ["Handler", "HttpServer", "SlidingWindow"]

logger = logging.getLogger(__name__)

_USERNAME_IN_PATH = re.compile(r"/api/[^/\s]+")
# (method, path, raw body) -> (HTTP status, JSON payload or raw bytes)
Handler = Callable[[str, str, bytes], tuple[int, Any]]
# The TLS context for the next connection (None: plain HTTP only); called for every connection.
TlsSource = Callable[[], ssl.SSLContext | None]
# What a bridge serving HTTPS does with plain HTTP on the same port: serve it too (square bridge),
# or answer 301 to https:// (Hue Bridge Pro).
PlainHttp = Literal["serve", "redirect"]
# (method, path, raw body) of a plain request answered with a redirect.
RedirectLog = Callable[[str, str, bytes], None]
_TLS_HANDSHAKE = 0x16
_HANDSHAKE_TIMEOUT_S = 10.0


class HttpServer:
    """A ThreadingHTTPServer on host:port in a background thread, restartable on the same port.

    With TLS, each connection's first byte says what it is: a TLS handshake is served over TLS (in
    the connection's own thread), plain HTTP is served or redirected as plain_http says.
    Answers are sent as pacing says (slow or trickled) when a pending pace matches the path;
    in_flight counts each request from its arrival until just before its answer's last bytes are
    written (a client holding the whole answer never finds its request still counted)."""

    def __init__(
        self,
        host: str,
        port: int,
        handler: Handler,
        tls: ssl.SSLContext | TlsSource | None,
        pacing: AnswerPacing | None = None,
        in_flight: InFlight | None = None,
        plain_http: PlainHttp = "serve",
        on_redirect: RedirectLog | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._handler = handler
        fixed = tls
        self._tls: TlsSource = (lambda: fixed) if fixed is None or isinstance(fixed, ssl.SSLContext) else fixed
        self._plain_http = plain_http
        self._on_redirect = on_redirect
        self._pacing = pacing if pacing is not None else AnswerPacing(lambda pattern, path: pattern in path)
        self.in_flight = in_flight if in_flight is not None else InFlight()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._server is not None:
            return
        server = _Server((self.host, self.port), self._handler, self._pacing, self.in_flight)
        server.tls = self._tls
        server.plain_http = self._plain_http
        server.on_redirect = self._on_redirect
        self.port = server.server_address[1]
        self._server = server
        self._thread = serve_in_thread(server, "hue-sim")

    @property
    def running(self) -> bool:
        return self._server is not None

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        shut_down(server, thread)


class _Server(SimHttpServer):
    def __init__(self, address: tuple[str, int], handler: Handler, pacing: AnswerPacing, in_flight: InFlight) -> None:
        super().__init__(address, _RequestHandler)
        self.handler = handler
        self.pacing = pacing
        self.in_flight = in_flight
        self.tls: TlsSource = lambda: None
        self.plain_http: PlainHttp = "serve"
        self.on_redirect: RedirectLog | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        context = self.tls()
        try:
            # In the connection's thread: a slow or silent client holds up nobody else.
            request.settimeout(_HANDSHAKE_TIMEOUT_S)
            tls = request.recv(1, socket.MSG_PEEK)[:1] == bytes([_TLS_HANDSHAKE])
            request.settimeout(None)
        except OSError:
            return  # the client left before saying anything
        if not tls:
            super().finish_request(request, client_address)
            return
        if context is None:
            return  # a bridge without HTTPS: the handshake meets a closed connection
        try:
            secure = context.wrap_socket(request, server_side=True)
        except OSError:  # includes ssl.SSLError: a client that gave up or does not trust us
            logger.debug("hue sim: TLS handshake with %s failed", client_address, exc_info=True)
            return
        try:
            secure.settimeout(None)
            super().finish_request(secure, client_address)
        finally:
            secure.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that timed out leave broken pipes behind; that is the point of latency tests.
        logger.debug("hue sim: error while answering %s", client_address, exc_info=True)


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "nginx"
    sys_version = ""

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        server = self.server
        path = urlsplit(self.path).path
        if server.plain_http == "redirect" and not isinstance(self.connection, ssl.SSLSocket):
            self._redirect(raw)
            return
        with server.in_flight.request() as answered:
            # Taken at arrival, like the request itself: only the answer is paced.
            pace = server.pacing.take(path)
            status, payload = server.handler(self.command, self.path, raw)
            # Out of flight just before the answer's last bytes: a client that has read them may
            # send its next request at once, and that one must not find this one still counted.
            if pace is None:
                answered()
                self._answer(status, payload)
            else:
                answer_paced(
                    self,
                    server.pacing,
                    path,
                    pace,
                    lambda: self._answer(status, payload),
                    server.stopping,
                    before_last_write=answered,
                )

    def _answer(self, status: int, payload: Any) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if status == 200 else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        if status == 429:
            self.send_header("Retry-After", "1")
        self.end_headers()
        self.wfile.write(data)

    def _redirect(self, raw: bytes) -> None:
        """What a Bridge Pro's plain HTTP side does with every request: 301 to the same URL over HTTPS."""
        if self.server.on_redirect is not None:
            self.server.on_redirect(self.command, self.path, raw)
        address = self.server.server_address
        host, port = str(address[0]), address[1]
        self.send_response(301)
        self.send_header("Location", f"https://{host}:{port}{self.path}")
        self.send_header("Content-Type", "text/html")
        body = b"<html><head><title>301 Moved Permanently</title></head></html>"
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        # Paths carry the username, a secret even on a simulator.
        text = _USERNAME_IN_PATH.sub("/api/***", format % args)
        logger.debug("hue sim: %s", text)
