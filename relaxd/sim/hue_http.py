"""The HTTP side of the simulated Hue bridge: a threaded server, restartable, counting requests in flight."""

from __future__ import annotations

import json
import logging
import re
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
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


class HttpServer:
    """A ThreadingHTTPServer on host:port in a background thread, restartable on the same port.

    Answers are sent as pacing says (slow or trickled) when a pending pace matches the path;
    in_flight counts each request from its arrival until just before its answer's last bytes are
    written (a client holding the whole answer never finds its request still counted)."""

    def __init__(
        self,
        host: str,
        port: int,
        handler: Handler,
        ssl_context: ssl.SSLContext | None,
        pacing: AnswerPacing | None = None,
        in_flight: InFlight | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._handler = handler
        self._ssl_context = ssl_context
        self._pacing = pacing if pacing is not None else AnswerPacing(lambda pattern, path: pattern in path)
        self.in_flight = in_flight if in_flight is not None else InFlight()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._server is not None:
            return
        server = _Server((self.host, self.port), self._handler, self._pacing, self.in_flight)
        if self._ssl_context is not None:
            server.socket = self._ssl_context.wrap_socket(server.socket, server_side=True)
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

    do_GET = do_PUT = do_POST = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        # Paths carry the username, a secret even on a simulator.
        text = _USERNAME_IN_PATH.sub("/api/***", format % args)
        logger.debug("hue sim: %s", text)
