"""An embedded MQTT broker (amqtt, pure Python) on 127.0.0.1 for `relaxd demo` without Mosquitto."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import warnings
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

log = logging.getLogger(__name__)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedBroker:
    """amqtt in its own thread and event loop; anonymous, 127.0.0.1 only, nothing kept on disk."""

    def __init__(self, port: int = 0) -> None:
        self.host = "127.0.0.1"
        self._wanted_port = port
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: Any = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> EmbeddedBroker:
        from amqtt.broker import Broker

        # amqtt is chatty at INFO (every connection) and its plugins warn about unused options.
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", message=".*psutil.*", category=DeprecationWarning)
        self.port = self._wanted_port or _free_port()
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "sys_interval": 0,
            "auth": {"allow-anonymous": True, "plugins": ["auth_anonymous"]},
            "topic-check": {"enabled": False},
        }
        loop = asyncio.new_event_loop()
        self._loop = loop
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                # Made in its own thread: amqtt creates futures for "the current loop" in __init__,
                # and a caller's thread may have none (after an asyncio test, say).
                broker = Broker(config, loop=loop)
                self._broker = broker
                loop.run_until_complete(broker.start())
            except BaseException as exc:  # reported to the caller below
                failure.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="embedded-mqtt-broker", daemon=True)
        self._thread.start()
        if not started.wait(timeout_s):
            raise OSError(f"the embedded MQTT broker did not start within {timeout_s:g} s")
        if failure:
            raise OSError(f"the embedded MQTT broker could not start: {failure[0]}")
        log.debug("embedded MQTT broker on %s", self.address)
        return self

    def stop(self, timeout_s: float = 3.0) -> None:
        loop, broker = self._loop, self._broker
        if loop is None or broker is None:
            return
        future = asyncio.run_coroutine_threadsafe(broker.shutdown(), loop)
        try:
            future.result(timeout_s)
        except (FutureTimeout, Exception):  # a slow shutdown must not hang the demo's exit
            log.debug("embedded broker shutdown did not finish cleanly")
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._loop = self._broker = None
