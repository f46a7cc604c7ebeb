"""MqttBus against a real Mosquitto: status and last will, retained state, reconnects, auth, TLS."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from relaxd.adapters.mqtt import MqttBus
from relaxd.core.config import MqttConfig, TlsConfig
from relaxd.core.topics import Topics
from tests.conftest import MosquittoFactory
from tests.mosquitto import Collector, Mosquitto, free_port, wait_until, write_password_file

REPO = Path(__file__).resolve().parents[1]
TOPICS = Topics()
STATE = {"room": "bedroom", "state": "running", "routine": "classic", "phase": "effleurage", "phase_index": 0}


class Inbox:
    """on_message for a bus: records (topic, payload, retained); raise_first makes the first call fail."""

    def __init__(self, raise_first: bool = False) -> None:
        self.raise_first = raise_first
        self.calls = 0
        self.got: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()

    def __call__(self, topic: str, payload: bytes, retained: bool) -> None:
        with self._lock:
            self.calls += 1
            first = self.calls == 1
        if self.raise_first and first:
            raise RuntimeError("handler exploded on purpose")
        with self._lock:
            self.got.append((topic, payload, retained))

    def payloads(self, topic: str) -> list[bytes]:
        with self._lock:
            return [p for t, p, _ in self.got if t == topic]


BusFactory = Callable[..., MqttBus]


@pytest.fixture
def make_bus() -> Iterator[BusFactory]:
    buses: list[MqttBus] = []

    def make(
        broker: Mosquitto | None = None,
        *,
        port: int | None = None,
        inbox: Inbox | None = None,
        subscriptions: tuple[str, ...] = (),
        on_connect: Callable[[], None] | None = None,
        bus_kwargs: dict[str, Any] | None = None,
        **config: Any,
    ) -> MqttBus:
        config.setdefault("host", "127.0.0.1")
        config.setdefault("port", port if port is not None else broker.port if broker else free_port())
        bus = MqttBus(MqttConfig(**config), TOPICS, inbox or Inbox(), subscriptions, on_connect, **(bus_kwargs or {}))
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        bus.stop()


def late_view(broker: Mosquitto, **kwargs: Any) -> Collector:
    """A subscriber that arrives after the fact: it can only see retained messages."""
    return Collector(broker, ["relaxd/#"], **kwargs).start()


def test_online_is_retained_on_connect(mosquitto: Mosquitto, make_bus: BusFactory) -> None:
    bus = make_bus(mosquitto)
    assert not bus.connected
    bus.start()
    assert bus.wait_connected(5)
    assert bus.connected
    with Collector(mosquitto, ["relaxd/status"]) as live:  # publishing is asynchronous
        live.wait_for_message("relaxd/status", "online")
    with late_view(mosquitto) as view:
        status = view.wait_for_message("relaxd/status")
    assert (status.text, status.retain, status.qos) == ("online", True, 1)


WILL_SCRIPT = """
import sys, time
from relaxd.adapters.mqtt import MqttBus
from relaxd.core.config import MqttConfig
from relaxd.core.topics import Topics
bus = MqttBus(MqttConfig(host=sys.argv[1], port=int(sys.argv[2])), Topics(), lambda t, p, r: None)
bus.start()
assert bus.wait_connected(10), "no connection"
print("connected", flush=True)
time.sleep(60)
"""


def test_last_will_offline_when_the_process_dies(mosquitto: Mosquitto) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", WILL_SCRIPT, mosquitto.host, str(mosquitto.port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the script gives up by itself after 10 s
        assert line.strip() == "connected", proc.stderr.read() if proc.stderr else ""
        with Collector(mosquitto, ["relaxd/status"]) as live:
            live.wait_for_message("relaxd/status", "online")
            proc.kill()  # SIGKILL: no clean disconnect, the broker must fire the will
            live.wait_for_message("relaxd/status", "offline")
    finally:
        proc.kill()
        proc.communicate(timeout=5)
    with late_view(mosquitto) as view:
        status = view.wait_for_message("relaxd/status")
        assert (status.text, status.retain) == ("offline", True)


def test_stop_publishes_offline_explicitly(mosquitto: Mosquitto, make_bus: BusFactory) -> None:
    # A clean disconnect discards the will, so only an explicit publish can leave `offline`.
    bus = make_bus(mosquitto)
    bus.start()
    assert bus.wait_connected(5)
    bus.stop()
    assert not bus.connected
    with late_view(mosquitto) as view:
        status = view.wait_for_message("relaxd/status")
    assert (status.text, status.retain) == ("offline", True)


def test_state_and_phase_retained_event_not(mosquitto: Mosquitto, make_bus: BusFactory) -> None:
    bus = make_bus(mosquitto)
    bus.start()
    assert bus.wait_connected(5)
    with Collector(mosquitto, ["relaxd/#"]) as live:
        bus.publish_state("bedroom", STATE, "effleurage")
        bus.publish_event("bedroom", {"event": "phase_started", "room": "bedroom", "seq": 1})
        event = live.wait_for_message("relaxd/bedroom/event")
        assert json.loads(event.payload) == {"event": "phase_started", "room": "bedroom", "seq": 1}
        assert event.qos == 1
        assert {m.qos for m in live.snapshot()} == {1}
    with late_view(mosquitto) as view:
        view.wait_for(
            lambda ms: {m.topic for m in ms} >= {"relaxd/status", "relaxd/bedroom/state", "relaxd/bedroom/phase"}
        )
        state = view.on("relaxd/bedroom/state")
        phase = view.on("relaxd/bedroom/phase")
        assert [json.loads(m.payload) for m in state] == [STATE] and state[0].retain
        assert [m.text for m in phase] == ["effleurage"] and phase[0].retain
        assert view.on("relaxd/bedroom/event") == []


def test_latest_state_per_room_wins(mosquitto: Mosquitto, make_bus: BusFactory) -> None:
    bus = make_bus(mosquitto)
    bus.start()
    assert bus.wait_connected(5)
    bus.publish_state("bedroom", {**STATE, "phase": "effleurage"}, "effleurage")
    bus.publish_state("bedroom", {**STATE, "phase": "petrissage"}, "petrissage")
    with Collector(mosquitto, ["relaxd/studio/phase"]) as live:  # publishing is asynchronous
        bus.publish_state("studio", {**STATE, "room": "studio", "state": "idle"}, "idle")
        live.wait_for_message("relaxd/studio/phase", "idle")
    with late_view(mosquitto) as view:
        view.wait_for(lambda ms: len({m.topic for m in ms}) >= 5)
        assert view.texts("relaxd/bedroom/phase") == ["petrissage"]
        assert view.texts("relaxd/studio/phase") == ["idle"]


def test_start_returns_at_once_while_the_broker_is_down(
    mosquitto_factory: MosquittoFactory, make_bus: BusFactory
) -> None:
    broker = mosquitto_factory()  # not started yet
    bus = make_bus(broker)
    began = time.monotonic()
    bus.start()
    bus.publish_state("bedroom", STATE, "effleurage")
    bus.publish_event("bedroom", {"event": "session_started", "room": "bedroom", "seq": 1})
    assert time.monotonic() - began < 0.5
    assert not bus.connected
    broker.start()
    assert bus.wait_connected(10)
    with late_view(broker) as view:
        view.wait_for(lambda ms: {m.topic for m in ms} >= {"relaxd/status", "relaxd/bedroom/state"})
        assert view.texts("relaxd/status") == ["online"]
        assert [json.loads(m.payload) for m in view.on("relaxd/bedroom/state")] == [STATE]


def test_broker_restart_reconnects_resubscribes_and_republishes(mosquitto: Mosquitto, make_bus: BusFactory) -> None:
    inbox = Inbox()
    connects: list[float] = []
    bus = make_bus(
        mosquitto,
        inbox=inbox,
        subscriptions=(TOPICS.set_wildcard,),
        on_connect=lambda: connects.append(time.monotonic()),
    )
    bus.start()
    assert bus.wait_connected(5)
    bus.subscribe("zigbee2mqtt/+")  # added at run time, renewed on reconnect like the others
    bus.publish_state("bedroom", STATE, "effleurage")
    with late_view(mosquitto) as view:
        view.wait_for_message("relaxd/bedroom/phase", "effleurage")

    mosquitto.kill()
    assert wait_until(lambda: not bus.connected, 5)
    mosquitto.start()  # no persistence: retained state and subscriptions are gone
    assert bus.wait_connected(10)
    assert wait_until(lambda: len(connects) == 2, 5)

    with late_view(mosquitto) as view:
        view.wait_for(
            lambda ms: {m.topic for m in ms} >= {"relaxd/status", "relaxd/bedroom/state", "relaxd/bedroom/phase"}
        )
        assert view.texts("relaxd/status") == ["online"]
        assert view.texts("relaxd/bedroom/phase") == ["effleurage"]
        assert [json.loads(m.payload) for m in view.on("relaxd/bedroom/state")] == [STATE]
        view.publish("relaxd/bedroom/set", "stop")
        view.publish("zigbee2mqtt/button", '{"action": "single"}')
    assert wait_until(lambda: inbox.payloads("relaxd/bedroom/set") == [b"stop"], 5)
    assert wait_until(lambda: inbox.payloads("zigbee2mqtt/button") == [b'{"action": "single"}'], 5)


def test_a_state_unacknowledged_at_the_crash_does_not_overwrite_a_later_one(
    mosquitto: Mosquitto, make_bus: BusFactory
) -> None:
    # paho resends unacknowledged messages after on_connect, i.e. after the republish of the
    # latest state; the bus must keep the stale one from winning.
    bus = make_bus(mosquitto)
    bus.start()
    assert bus.wait_connected(5)
    assert mosquitto.proc is not None
    os.kill(mosquitto.proc.pid, signal.SIGSTOP)  # the broker takes the PUBLISH but never acks it
    try:
        bus.publish_state("bedroom", {**STATE, "phase": "effleurage"}, "effleurage")
    finally:
        mosquitto.kill()
    assert wait_until(lambda: not bus.connected, 5)
    bus.publish_state("bedroom", {**STATE, "phase": "petrissage"}, "petrissage")
    mosquitto.start()
    assert bus.wait_connected(10)
    with late_view(mosquitto) as view:
        view.wait_for(lambda ms: {m.topic for m in ms} >= {"relaxd/bedroom/state", "relaxd/bedroom/phase"})
        assert view.texts("relaxd/bedroom/phase") == ["petrissage"]
        assert [json.loads(m.payload)["phase"] for m in view.on("relaxd/bedroom/state")] == ["petrissage"]


def test_events_published_while_the_broker_is_away_arrive_after_reconnect(
    mosquitto_factory: MosquittoFactory, make_bus: BusFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # A persistent subscriber session on a persistent broker sees every message whatever reconnects first.
    broker = mosquitto_factory(persistence=True).start()
    follower = Collector(broker, ["relaxd/+/event"], client_id="follower", clean_session=False).start()
    bus = make_bus(broker, bus_kwargs={"max_queued": 3})
    bus.start()
    assert bus.wait_connected(5)
    try:
        broker.stop()
        assert wait_until(lambda: not bus.connected, 5)
        for seq in range(1, 6):  # two more than the queue holds
            bus.publish_event("bedroom", {"event": "check_in", "room": "bedroom", "seq": seq})
        bus.publish_state("bedroom", STATE, "effleurage")  # kept aside, not queued
        assert "queue full" in caplog.text
        broker.start()
        assert bus.wait_connected(10)
        follower.wait_for(lambda ms: len(ms) >= 3, timeout_s=10)
        with late_view(broker) as view:
            view.wait_for_message("relaxd/bedroom/phase", "effleurage")
        assert [json.loads(m.payload)["seq"] for m in follower.snapshot()] == [1, 2, 3]
    finally:
        follower.stop()


def test_publishing_while_the_broker_is_down_never_raises_nor_blocks(
    make_bus: BusFactory, caplog: pytest.LogCaptureFixture
) -> None:
    bus = make_bus(port=free_port(), bus_kwargs={"max_queued": 100})
    bus.publish_event("bedroom", {"event": "room_restored", "room": "bedroom", "seq": 1})  # before start
    bus.start()
    began = time.monotonic()
    for seq in range(300):
        bus.publish_state("bedroom", {**STATE, "phase_index": seq}, "effleurage")
        bus.publish_event("bedroom", {"event": "check_in", "room": "bedroom", "seq": seq})
        bus.publish("relaxd/response/status", '{"status": "ok"}')
    assert time.monotonic() - began < 2.0
    assert not bus.connected
    assert "queue full" in caplog.text
    began = time.monotonic()
    bus.stop()
    assert time.monotonic() - began < 7.0  # at worst one connect timeout of paho's


def test_an_exception_in_on_message_does_not_stop_later_messages(
    mosquitto: Mosquitto, make_bus: BusFactory, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = Inbox(raise_first=True)
    bus = make_bus(mosquitto, inbox=inbox, subscriptions=(TOPICS.set_wildcard,))
    bus.start()
    assert bus.wait_connected(5)
    with Collector(mosquitto, []) as sender:
        for action in ("start", "pause", "resume"):
            sender.publish("relaxd/bedroom/set", action)
    assert wait_until(lambda: inbox.payloads("relaxd/bedroom/set") == [b"pause", b"resume"], 5)
    assert inbox.calls == 3
    assert bus.connected
    assert "handler exploded on purpose" in caplog.text


def test_retained_flag_reaches_on_message(mosquitto: Mosquitto, make_bus: BusFactory) -> None:
    with Collector(mosquitto, []) as sender:
        sender.publish("relaxd/bedroom/set", "start", retain=True)
    inbox = Inbox()
    bus = make_bus(mosquitto, inbox=inbox, subscriptions=(TOPICS.set_wildcard,))
    bus.start()
    assert wait_until(lambda: len(inbox.got) == 1, 5)
    assert inbox.got == [("relaxd/bedroom/set", b"start", True)]


def test_username_password_and_anonymous_refused(
    mosquitto_factory: MosquittoFactory, make_bus: BusFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "s3cr3t-pa55"
    passwd = write_password_file(tmp_path / "passwd", {"relaxd": secret})
    broker = mosquitto_factory(allow_anonymous=False, password_file=passwd).start()

    anonymous = make_bus(broker, client_id="anon")
    wrong = make_bus(broker, client_id="wrong", username="relaxd", password=SecretStr("nope"))
    anonymous.start()
    wrong.start()
    assert wait_until(lambda: caplog.text.count("refused the connection") >= 2, 5)
    assert not anonymous.connected and not wrong.connected

    good = make_bus(broker, client_id="good", username="relaxd", password=SecretStr(secret))
    good.start()
    assert good.wait_connected(5)
    with late_view(broker, username="relaxd", password=secret) as view:
        assert view.wait_for_message("relaxd/status").text == "online"
    assert secret not in caplog.text


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make certificates")
def test_tls_with_a_private_ca(mosquitto_factory: MosquittoFactory, make_bus: BusFactory, tmp_path: Path) -> None:
    ca, cert, key = make_certificates(tmp_path)
    tls_port = free_port()
    broker = mosquitto_factory(
        extra_conf=(f"listener {tls_port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n")
    ).start()
    assert wait_until(lambda: f"port {tls_port}" in broker.log_text(), 5)
    bus = make_bus(broker, port=tls_port, tls=TlsConfig(ca_certs=ca))
    bus.start()
    assert bus.wait_connected(5)
    with late_view(broker) as view:  # the plain listener sees what came in over TLS
        assert view.wait_for_message("relaxd/status").text == "online"


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 (IP SAN, so the hostname check passes)."""
    ca_key, ca, key, csr, cert = (directory / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    run(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
        "-days",
        "2",
        "-subj",
        "/CN=relaxd test CA",
    )
    run(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        "/CN=127.0.0.1",
    )
    run(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(cert),
        "-days",
        "2",
        "-extfile",
        str(ext),
    )
    return ca, cert, key
