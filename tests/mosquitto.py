"""A real Mosquitto broker per test, and a paho client that collects what it receives."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/usr/bin/mosquitto")
MOSQUITTO_PASSWD_CANDIDATES = ("/usr/bin/mosquitto_passwd", "/usr/local/bin/mosquitto_passwd")


def find_binary(candidates: Sequence[str], name: str) -> str | None:
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    return shutil.which(name)


def mosquitto_binary() -> str:
    path = find_binary(MOSQUITTO_CANDIDATES, "mosquitto")
    if path is None:
        # MQTT tests must run against a real broker (the project's test rules); a silent skip would hide that.
        raise RuntimeError(
            "the mosquitto binary is missing (looked in /usr/sbin, /usr/local/sbin and PATH); "
            "install it, e.g. `apt-get install mosquitto mosquitto-clients`"
        )
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.01) -> bool:
    """Poll predicate until it is true or the deadline passes; the result of the last poll."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def write_password_file(path: Path, users: dict[str, str]) -> Path:
    """A Mosquitto password file, made by mosquitto_passwd when installed, else hashed here."""
    tool = find_binary(MOSQUITTO_PASSWD_CANDIDATES, "mosquitto_passwd")
    path.write_text("")
    if tool is not None:
        for user, password in users.items():
            subprocess.run([tool, "-b", str(path), user, password], check=True, capture_output=True)
    else:
        # Mosquitto 2's own format: $7$ = PBKDF2-HMAC-SHA512, iterations, base64 salt and hash.
        lines = []
        for user, password in users.items():
            salt = os.urandom(12)
            digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101)
            lines.append(f"{user}:$7$101${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}")
        path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


class Mosquitto:
    """The mosquitto binary on 127.0.0.1, on one port for its whole life (restarts included)."""

    def __init__(
        self,
        tmp_path: Path,
        port: int = 0,
        extra_conf: str = "",
        *,
        allow_anonymous: bool = True,
        password_file: Path | None = None,
        persistence: bool = False,
        start_timeout_s: float = 10.0,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.dir = Path(tmp_path)
        self.extra_conf = extra_conf
        self.allow_anonymous = allow_anonymous
        self.password_file = password_file
        self.persistence = persistence
        self.start_timeout_s = start_timeout_s
        self.conf_path = self.dir / f"mosquitto-{self.port}.conf"
        self.log_path = self.dir / f"mosquitto-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _config(self) -> str:
        lines = [
            f"listener {self.port} {self.host}",
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
            # Without persistence a restart loses every retained message and session, as tests want.
            f"persistence {'true' if self.persistence else 'false'}",
            f"log_dest file {self.log_path}",
            "log_type all",
            "connection_messages true",
            # As root, mosquitto would switch to the `mosquitto` user and could not write our log.
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
        ]
        if self.persistence:
            lines.append(f"persistence_location {self.dir}/")
        if self.password_file is not None:
            lines.append(f"password_file {self.password_file}")
        return "\n".join(lines) + "\n" + self.extra_conf + "\n"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> Mosquitto:
        """Start (or restart) the broker on self.port and wait until it accepts connections."""
        if self.running:
            return self
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(self._config())
        self.proc = subprocess.Popen(
            [mosquitto_binary(), "-c", str(self.conf_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if not wait_until(self._accepting, self.start_timeout_s):
            stderr = self._reap()
            raise RuntimeError(
                f"mosquitto did not accept connections on {self.host}:{self.port} within "
                f"{self.start_timeout_s}s\nstderr: {stderr}\nlog:\n{self.log_text()}"
            )
        return self

    def _accepting(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(
                f"mosquitto exited (code {self.proc.returncode if self.proc else None}) on port {self.port}\n"
                f"stderr: {self._reap()}\nlog:\n{self.log_text()}"
            )
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def _reap(self) -> str:
        if self.proc is None:
            return ""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.kill()
            _, err = self.proc.communicate(timeout=5)
            return err.decode(errors="replace").strip()
        return ""

    def stop(self) -> None:
        """Terminate gracefully and wait."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._close_pipes()

    def kill(self) -> None:
        """SIGKILL: the broker vanishes without saying goodbye to anyone."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self._close_pipes()

    def _close_pipes(self) -> None:
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    qos: int

    @property
    def text(self) -> str:
        return self.payload.decode()


class Collector:
    """A paho client subscribed to topics (QoS 1) that records every message it receives."""

    def __init__(
        self,
        broker: Mosquitto,
        topics: Iterable[str],
        *,
        client_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        clean_session: bool = True,
    ) -> None:
        self.broker = broker
        self.topics = list(topics)
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._pending_mids: set[int] = set()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"collector-{uuid.uuid4().hex[:8]}",
            clean_session=clean_session,
        )
        self.client.reconnect_delay_set(1, 2)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure or not self.topics:
            self._subscribed.set()
            return
        _, mid = client.subscribe([(t, 1) for t in self.topics])
        if mid is not None:
            self._pending_mids.add(mid)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, rcs: Any, props: Any) -> None:
        self._pending_mids.discard(mid)
        if not self._pending_mids:
            self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain), msg.qos))

    def start(self, timeout_s: float = 5.0) -> Collector:
        """Connect and wait until every subscription is acknowledged (retained messages may follow)."""
        self.client.connect(self.broker.host, self.broker.port, keepalive=30)
        self.client.loop_start()
        if not self._subscribed.wait(timeout_s):
            raise TimeoutError(f"collector did not subscribe to {self.topics} within {timeout_s}s")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Collector:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.messages)

    def on(self, topic: str) -> list[Received]:
        return [m for m in self.snapshot() if m.topic == topic]

    def texts(self, topic: str) -> list[str]:
        return [m.text for m in self.on(topic)]

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout_s: float = 5.0) -> list[Received]:
        """Poll until predicate(messages so far) holds; AssertionError with what arrived otherwise."""
        if wait_until(lambda: predicate(self.snapshot()), timeout_s):
            return self.snapshot()
        shown = "\n".join(f"  {m.topic} retain={m.retain} {m.payload[:200]!r}" for m in self.snapshot())
        raise AssertionError(f"condition not met within {timeout_s}s; received:\n{shown or '  nothing'}")

    def wait_for_message(self, topic: str, payload: str | None = None, timeout_s: float = 5.0) -> Received:
        def match(m: Received) -> bool:
            return m.topic == topic and (payload is None or m.payload == payload.encode())

        self.wait_for(lambda msgs: any(match(m) for m in msgs), timeout_s)
        return next(m for m in self.snapshot() if match(m))

    def publish(
        self, topic: str, payload: str | bytes, retain: bool = False, qos: int = 1, timeout_s: float = 5.0
    ) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout_s)
        if not info.is_published():
            raise TimeoutError(f"publish to {topic} not acknowledged within {timeout_s}s")
