"""A tiny HTTP server on 127.0.0.1 that answers slowly or trickles, for the blocking-call layer's tests."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class SlowHttp:
    """Every request is logged on arrival; the answer waits delay_s, then trickles one byte per trickle_s."""

    delay_s: float = 0.0
    trickle_s: float = 0.0
    body: bytes = b'{"ok": true}'
    arrived: list[tuple[float, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def paths(self) -> list[str]:
        with self._lock:
            return [p for _, p in self.arrived]

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            path = data.split(b" ", 2)[1].decode()
            with self._lock:
                self.arrived.append((time.monotonic(), path))
            answer = (
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                b"Connection: close\r\n\r\n" % len(self.body)
            ) + self.body
            if self._stop.wait(self.delay_s):
                return
            try:
                if self.trickle_s <= 0:
                    conn.sendall(answer)
                    return
                for i in range(len(answer)):
                    conn.sendall(answer[i : i + 1])
                    if self._stop.wait(self.trickle_s):
                        return
            except OSError:
                return  # the client gave up

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):  # wakes the accept() below; close() alone does not
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
