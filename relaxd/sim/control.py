"""The simulators' fault knobs over HTTP: a small JSON API on 127.0.0.1 (see docs/sim.md)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

from relaxd.sim.control_fields import ApiError
from relaxd.sim.control_routes import ControlApi
from relaxd.sim.hue_bridge import HueBridgeSim
from relaxd.sim.serving import SimHttpServer, serve_in_thread, shut_down
from relaxd.sim.sonos_speaker import SonosSpeakerSim

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
# A body a little over the limit is read and dropped before the 413, so that the client is not
# reset while still sending and does see the answer; beyond this the connection is just closed.
_DRAIN_BYTES = 1024 * 1024


class ControlServer:
    """The control API over a Hue bridge (or None) and speakers by name; start() binds 127.0.0.1."""

    def __init__(self, hue: HueBridgeSim | None, speakers: Mapping[str, SonosSpeakerSim], port: int = 0) -> None:
        self.host = "127.0.0.1"
        self._port = port
        self.api = ControlApi(hue, speakers)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._port}/"

    def start(self) -> ControlServer:
        if self._server is None:
            server = _Server((self.host, self._port), self.api)
            self._port = server.server_address[1]
            self._server = server
            self._thread = serve_in_thread(server, f"sim-control-{self._port}")
            logger.info("simulator control API on %s", self.url)
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        shut_down(server, thread)

    def __enter__(self) -> ControlServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class _Server(SimHttpServer):
    def __init__(self, address: tuple[str, int], api: ControlApi) -> None:
        self.api = api
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    """Exactly one JSON answer per request, whatever the request looks like."""

    server: _Server
    server_version = "relaxd-sim-control"
    sys_version = ""
    # A client that sends nothing must not keep a thread forever.
    timeout = 10

    def _serve(self) -> None:
        allow: tuple[str, ...] = ()
        try:
            # The body first, whatever the path: a client still sending must not be reset.
            raw = self._read_body()
            parts = [unquote(p) for p in urlsplit(self.path).path.split("/") if p]
            status, payload = 200, self.server.api.handle(self.command, parts, lambda: _decode(raw))
        except ApiError as exc:
            status, payload, allow = exc.status, {"error": exc.message}, exc.allow
        except Exception:
            logger.exception("sim control: %s %s failed", self.command, self.path)
            status, payload = 500, {"error": "internal: the simulator logged what went wrong"}
        self._reply(status, payload, allow)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _serve

    def version_string(self) -> str:
        return self.server_version

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise ApiError(411, "body: send it with a Content-Length (no chunked encoding)")
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            return b""
        try:
            length = int(raw_length)
            if length < 0:
                raise ValueError(raw_length)
        except ValueError:
            self.close_connection = True
            raise ApiError(400, f"Content-Length: not a number of bytes: {raw_length!r}") from None
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            if length <= _DRAIN_BYTES:
                self._read(length)
            raise ApiError(413, f"body: {length} bytes, more than the {MAX_BODY_BYTES} allowed")
        raw = self._read(length)
        if len(raw) < length:
            raise ApiError(400, "body: shorter than its Content-Length")
        return raw

    def _read(self, length: int) -> bytes:
        try:
            return self.rfile.read(length)
        except TimeoutError:
            self.close_connection = True
            raise ApiError(408, f"body: not all {length} bytes arrived within {self.timeout} s") from None

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # What the base class refuses by itself (bad request line, unknown method, huge headers)
        # gets a JSON answer too instead of an HTML page.
        self.close_connection = True
        phrase = HTTPStatus(code).phrase if code in HTTPStatus.__members__.values() else "error"
        self._reply(code, {"error": f"request: {message or phrase}"}, ())

    def _reply(self, status: int, payload: Any, allow: tuple[str, ...]) -> None:
        data = (json.dumps(payload, indent=2) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if allow:
            self.send_header("Allow", ", ".join(allow))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("sim control: %s " + format, self.address_string(), *args)


def _decode(raw: bytes) -> Any:
    """The JSON body, None when there is none."""
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError(400, "body: not valid JSON") from None
