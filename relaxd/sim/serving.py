"""Running a simulator's HTTP server in a background thread, and stopping it quickly."""

from __future__ import annotations

import threading
from socketserver import BaseServer


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
    server.shutdown()
    server.server_close()
    if thread is not None:
        thread.join(timeout_s)
