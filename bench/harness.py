"""The rig: relaxd as a subprocess, a Hue simulator with answer times, MQTT watchers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from bench.common import ROOT, end_process, start_process
from relaxd.sim.hue_bridge import HueBridgeSim

LOOPBACK = "127.0.0.1"
T = TypeVar("T")


# --- the daemon ---------------------------------------------------------------------------------


def base_config(workdir: Path, broker_port: int, hue: HueBridgeSim | None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "state_dir": str(workdir / "state"),
        "mqtt": {"host": LOOPBACK, "port": broker_port},
        "rooms": {},
        "routines": {},
    }
    if hue is not None:
        config["hue"] = {"host": hue.address, "username": hue.username, "https": False, "timeout": "5s"}
    return config


class Daemon:
    """`relaxd run -c FILE` as a subprocess; stderr goes to a log file in workdir. launcher, when
    given, replaces `-m relaxd` (e.g. `-c <source> <args>`: a wrapper that then runs relaxd's CLI)."""

    def __init__(
        self, workdir: Path, config: dict[str, Any], name: str = "relaxd", launcher: list[str] | None = None
    ) -> None:
        self.workdir = workdir
        self.launcher = launcher or ["-m", "relaxd"]
        self.config_path = workdir / f"{name}.yaml"
        self.log_path = workdir / f"{name}.log"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.proc: subprocess.Popen[Any] | None = None
        self.started_at = 0.0

    def start(self) -> Daemon:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it; closed below
        try:
            self.started_at = time.monotonic()
            self.proc = start_process(
                [sys.executable, *self.launcher, "run", "-c", str(self.config_path)],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        finally:
            log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 60.0) -> int | None:
        if self.proc is None:
            return None
        return end_process(self.proc, timeout_s)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


# --- simulators with completion times ------------------------------------------------------------


class Done(NamedTuple):
    """A Hue request as answered: the instant its effect was on the bridge (after the latency)."""

    at_s: float
    method: str
    path: str  # without /api/<username>
    status: int
    body: Any


class TimedHueBridgeSim(HueBridgeSim):
    """HueBridgeSim that also logs when each request was answered (the sim logs only arrivals)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._done: list[Done] = []
        super().__init__(*args, **kwargs)

    def handle(self, method: str, raw_path: str, raw_body: bytes) -> Any:
        reply = super().handle(method, raw_path, raw_body)
        parts = urlsplit(raw_path).path.split("/")
        short = "/" + "/".join(parts[3:]) if len(parts) > 2 and parts[1] == "api" else raw_path
        try:
            body = json.loads(raw_body) if raw_body else None
        except ValueError:
            body = None
        with self._lock:
            self._done.append(Done(time.monotonic(), method, short, int(reply[0]), body))
        return reply

    def done_log(self, since_s: float = 0.0) -> list[Done]:
        with self._lock:
            return [d for d in self._done if d.at_s >= since_s]


# --- MQTT ---------------------------------------------------------------------------------------


class Msg(NamedTuple):
    at_s: float  # time.monotonic() when received
    topic: str
    payload: bytes
    retain: bool
    data: Any  # parsed JSON of events and states, else None


class Watcher:
    """A paho client that timestamps every message it receives and lets callers wait on them."""

    def __init__(self, port: int, topics: list[str]) -> None:
        self.port = port
        self.topics = topics
        self.messages: list[Msg] = []
        self.event_counts: Counter[str] = Counter()
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:8]}")
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, *args: Any) -> None:
        client.subscribe([(t, 1) for t in self.topics])

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        at_s = time.monotonic()
        payload = bytes(msg.payload)
        data = None
        if msg.topic.endswith(("/event", "/state")):
            try:
                data = json.loads(payload)
            except ValueError:
                data = None
        with self._cond:
            self.messages.append(Msg(at_s, msg.topic, payload, bool(msg.retain), data))
            if msg.topic.endswith("/event") and isinstance(data, dict):
                self.event_counts[str(data.get("event"))] += 1
            self._cond.notify_all()

    def start(self, timeout_s: float = 10.0) -> Watcher:
        self.client.connect(LOOPBACK, self.port, keepalive=60)
        self.client.loop_start()
        if not self._subscribed.wait(timeout_s):
            raise TimeoutError("bench watcher did not subscribe")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> Watcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def mark(self) -> int:
        with self._cond:
            return len(self.messages)

    def since(self, index: int) -> list[Msg]:
        with self._cond:
            return self.messages[index:]

    def wait(self, check: Callable[[], T | None], timeout_s: float, what: str = "condition") -> T:
        """Wait (woken by each message) until check() returns something not None."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                result = check()
                if result is not None:
                    return result
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"timed out after {timeout_s:g}s waiting for {what}")
                self._cond.wait(min(left, 0.5))

    def wait_event(self, room: str, event: str, start: int, timeout_s: float, count: int = 1) -> list[Msg]:
        """The first `count` events named `event` of room received from index start on."""
        topic = f"relaxd/{room}/event"

        def check() -> list[Msg] | None:
            found = [
                m
                for m in self.messages[start:]
                if m.topic == topic and isinstance(m.data, dict) and m.data.get("event") == event
            ]
            return found[:count] if len(found) >= count else None

        return self.wait(check, timeout_s, f"{count}x {event} of {room}")

    def wait_count(self, event: str, count: int, timeout_s: float) -> None:
        self.wait(lambda: True if self.event_counts[event] >= count else None, timeout_s, f"{count}x {event}")

    def publish(self, topic: str, payload: str, timeout_s: float = 5.0) -> float:
        """Publish (QoS 1, not retained); returns time.monotonic() just before the publish."""
        at_s = time.monotonic()
        info = self.client.publish(topic, payload, qos=1, retain=False)
        info.wait_for_publish(timeout_s)
        return at_s


def wall_offset() -> float:
    """time.time() - time.monotonic(), to put the daemon's wall-clock timestamps on our clock."""
    samples = []
    for _ in range(5):
        a = time.monotonic()
        w = time.time()
        b = time.monotonic()
        samples.append((b - a, w - (a + b) / 2))
    return min(samples)[1]


def iso_to_wall(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
