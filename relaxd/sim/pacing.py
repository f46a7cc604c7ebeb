"""Sending a simulator's answer late or in trickles over a handler's connection, stoppable at any time."""

from __future__ import annotations

import io
import logging
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler

from relaxd.sim.faults import CLIENT_GONE, SENT, STOPPED, AnswerPacing, Pace, PacedAnswer

logger = logging.getLogger(__name__)

# How often a wait looks whether the client is still there; a stop is noticed at once.
_POLL_S = 0.05


def answer_paced(
    handler: BaseHTTPRequestHandler,
    pacing: AnswerPacing,
    key: str,
    pace: Pace,
    write_answer: Callable[[], None],
    stopping: threading.Event,
    *,
    before_last_write: Callable[[], None] | None = None,
) -> PacedAnswer:
    """Send what write_answer writes (status line, headers, body) at pace, and log how it went.

    Gives up, closing the connection, as soon as stopping is set or the client has gone.
    before_last_write, if given, is called just before the answer's last piece is written."""
    real = handler.wfile
    buffer = io.BytesIO()
    handler.wfile = buffer
    try:
        write_answer()
    finally:
        handler.wfile = real
    data = buffer.getvalue()
    started_s = time.monotonic()
    sent, outcome = _send(handler, data, pace, stopping, before_last_write)
    # A half-sent answer leaves the connection unusable.
    handler.close_connection = True
    answer = PacedAnswer(key, pace, started_s, time.monotonic(), sent, len(data), outcome)
    pacing.record(answer)
    if outcome != SENT:
        logger.debug("paced answer to %s: %s after %d of %d bytes", handler.client_address, outcome, sent, len(data))
    return answer


def _send(
    handler: BaseHTTPRequestHandler,
    data: bytes,
    pace: Pace,
    stopping: threading.Event,
    before_last_write: Callable[[], None] | None,
) -> tuple[int, str]:
    connection = handler.connection
    gone = _wait(pace.delay_s, connection, stopping)
    if gone is not None:
        return 0, gone
    chunk_bytes = pace.chunk_bytes if pace.interval_s > 0 else max(1, len(data))
    sent = 0
    while sent < len(data):
        if sent:
            gone = _wait(pace.interval_s, connection, stopping)
            if gone is not None:
                return sent, gone
        piece = data[sent : sent + chunk_bytes]
        if before_last_write is not None and sent + len(piece) >= len(data):
            before_last_write()
        try:
            handler.wfile.write(piece)
        except OSError:
            # Broken pipe or reset: the client left; nothing to report beyond the outcome.
            return sent, CLIENT_GONE
        sent += len(piece)
    return sent, SENT


def _wait(seconds: float, connection: socket.socket, stopping: threading.Event) -> str | None:
    """Wait seconds; STOPPED or CLIENT_GONE if that cut the wait short, else None."""
    deadline_s = time.monotonic() + seconds
    while True:
        left_s = deadline_s - time.monotonic()
        if left_s <= 0:
            return None
        if stopping.wait(min(left_s, _POLL_S)):
            return STOPPED
        if _client_gone(connection):
            return CLIENT_GONE


def _client_gone(connection: socket.socket) -> bool:
    """Whether the client closed its side (end of stream waiting to be read)."""
    if isinstance(connection, ssl.SSLSocket):
        # TLS sockets refuse recv flags; the next write tells instead.
        return False
    try:
        poller = select.poll()
        poller.register(connection, select.POLLIN)
        return bool(poller.poll(0)) and connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True
