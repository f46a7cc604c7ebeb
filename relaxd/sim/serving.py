"""Running a simulator's HTTP server in a background thread, and stopping it quickly."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import BaseServer
from typing import Any

logger = logging.getLogger(__name__)


class SimHttpServer(ThreadingHTTPServer):
    """A threaded HTTP server whose handlers can see that it is stopping (stopping is set)."""

    daemon_threads = True
    # stop() must not wait for handlers sleeping out a latency or trickling an answer.
    block_on_close = False
    # The default backlog of 5 drops connections of a burst, which clients retry only after 1 s.
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], handler_class: type[BaseHTTPRequestHandler]) -> None:
        # Before the bind: a handler may look at it as soon as requests arrive.
        self.stopping = threading.Event()
        super().__init__(address, handler_class)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that gave up leave broken pipes behind: the point of the simulated faults.
        logger.debug("sim: error while answering %s", client_address, exc_info=True)


def serve_in_thread(server: BaseServer, name: str, poll_interval_s: float = 0.02) -> threading.Thread:
    """Serve until shut_down(); a short poll keeps stop quick (shutdown waits for the loop to notice)."""
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": poll_interval_s}, name=name, daemon=True
    )
    thread.start()
    return thread


def shut_down(server: BaseServer | None, thread: threading.Thread | None, timeout_s: float = 5.0) -> None:
    """Stop serving and release the port (a restart may bind it again at once)."""
    if server is None:
        return
    if isinstance(server, SimHttpServer):
        # First, so that answers being delayed or trickled give up instead of outliving the server.
        server.stopping.set()
    server.shutdown()
    server.server_close()
    if thread is not None:
        thread.join(timeout_s)
