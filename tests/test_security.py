"""`relaxd run` over MQTT with TLS and a password; secrets never leave; state files are private."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import MosquittoFactory
from tests.mosquitto import Collector, Mosquitto, free_port, wait_until, write_password_file
from tests.reliability import TEST_TIMEOUT_S, event_names, reconfigure
from tests.test_e2e_run import Rig, same_room
from tests.test_mqtt_adapter import make_certificates

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(TEST_TIMEOUT_S)]
MQTT_SECRET = "mqtt-pw-Zq8-never-shown"
OBSERVER_SECRET = "observer-pw-7Kx"


def tls_collector(broker: Mosquitto, port: int, ca: Path, topics: list[str]) -> Collector:
    """A Collector that talks TLS (verifying the broker against ca) to port, as user observer."""
    endpoint: Any = SimpleNamespace(host=broker.host, port=port)
    collector = Collector(endpoint, topics, username="observer", password=OBSERVER_SECRET)
    collector.client.tls_set(ca_certs=str(ca))
    return collector


def connect_outcome(
    host: str,
    port: int,
    *,
    username: str | None = None,
    password: str | None = None,
    ca: Path | None = None,
    timeout_s: float = 5.0,
) -> str:
    """What the broker says to a client: "Success", "Not authorized", ... or "no answer"."""
    done = threading.Event()
    outcome = ["no answer"]
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{time.monotonic_ns()}")
    if username is not None:
        client.username_pw_set(username, password)
    if ca is not None:
        client.tls_set(ca_certs=str(ca))

    def on_connect(c: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        outcome[0] = str(reason)
        done.set()

    client.on_connect = on_connect
    try:
        client.connect(host, port, keepalive=10)
    except OSError as exc:  # TLS refused before MQTT even starts
        return f"{type(exc).__name__}: {exc}"
    client.loop_start()
    done.wait(timeout_s)
    client.loop_stop()
    client.disconnect()
    return outcome[0]


def tree_modes(root: Path) -> dict[str, str]:
    """Every file and directory below root (and root) with its permission bits."""
    found = {".": oct(stat.S_IMODE(root.stat().st_mode))}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = oct(stat.S_IMODE(path.stat().st_mode))
    return found


def test_the_daemon_runs_over_tls_with_a_password_and_never_shows_a_secret(
    tmp_path: Path, mosquitto_factory: MosquittoFactory
) -> None:
    ca, cert, key = make_certificates(tmp_path)
    passwd = write_password_file(tmp_path / "passwd", {"relaxd": MQTT_SECRET, "observer": OBSERVER_SECRET})
    tls_port = free_port()
    broker = mosquitto_factory(
        allow_anonymous=False,
        password_file=passwd,
        extra_conf=(f"listener {tls_port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n"),
    ).start()
    assert wait_until(lambda: f"port {tls_port}" in broker.log_text(), 5)
    rig = Rig(tmp_path, broker)
    hue_secret = rig.hue.username
    try:
        reconfigure(
            rig,
            lambda c: c.update(
                log_level="DEBUG",
                mqtt={
                    "host": "127.0.0.1",
                    "port": tls_port,
                    "username": "relaxd",
                    "password": MQTT_SECRET,
                    "tls": {"ca_certs": str(ca)},
                    "keepalive": "10s",
                },
            ),
        )
        # The broker lets nobody in without the password, over TLS or not.
        assert connect_outcome(broker.host, broker.port) == "Not authorized"
        assert connect_outcome(broker.host, tls_port, ca=ca) == "Not authorized"
        assert connect_outcome(broker.host, tls_port, ca=ca, username="relaxd", password="wrong") == "Not authorized"
        before = rig.before()
        with tls_collector(broker, tls_port, ca, ["#"]).start() as observer:
            old_umask = os.umask(0)  # the daemon's files must be private whatever umask it inherits
            try:
                rig.start_daemon()
            finally:
                os.umask(old_umask)
            observer.wait_for_message("relaxd/status", "online", timeout_s=20)
            observer.publish("relaxd/room1/set", "start")
            observer.wait_for(lambda m: "phase_started" in event_names(m), timeout_s=10)
            # State files during a session: 0600 files in 0700 directories.
            modes = tree_modes(tmp_path / "state")
            assert "snapshots/room1.snapshot.json" in modes
            for name, mode in modes.items():
                is_dir = (tmp_path / "state" / name).is_dir()
                assert mode == ("0o700" if is_dir else "0o600"), (name, mode)
            # Error paths, which is where secrets slip into messages: the bridge says the user is
            # unknown, fails, sends garbage, then vanishes for a moment.
            rig.hue.fail_next(error_type=1, path_contains="/lights")
            rig.hue.fail_next(http_status=503)
            rig.hue.fail_next(body=b"<html>" + hue_secret.encode() + b"</html>")
            observer.wait_for(lambda m: "device_unavailable" in event_names(m), timeout_s=10)
            observer.wait_for(lambda m: "room_restored" in event_names(m), timeout_s=30)
            msgs = observer.snapshot()
        same_room(before, rig.before())
        assert rig.stop_daemon() == 0
        log = rig.daemon_log()
        assert " DEBUG " in log and "over TLS" in log and "hue GET /api/***/" in log
        assert "unauthorized user" in log  # the error was logged, only without the username
        everything = [log, *(m.payload.decode("utf-8", "replace") for m in msgs), *(m.topic for m in msgs)]
        check = subprocess.run(
            [sys.executable, "-m", "relaxd", "check-config", "-c", str(rig.config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert check.returncode == 0 and "**********" in check.stdout
        bad = rig.config.with_name("bad.yaml")
        bad.write_text(
            rig.config.read_text().replace("mqtt:", "mqtt:\n  colour: red", 1).replace("timeout: 2s", "timeout: soon")
        )
        error = subprocess.run(
            [sys.executable, "-m", "relaxd", "check-config", "-c", str(bad)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert error.returncode == 78 and "mqtt.colour: unknown key" in error.stderr
        everything += [check.stdout, check.stderr, error.stdout, error.stderr]
        for secret in (MQTT_SECRET, hue_secret):
            leaks = [
                text[max(0, text.find(secret) - 80) : text.find(secret) + 40] for text in everything if secret in text
            ]
            assert not leaks, leaks
    finally:
        rig.close()


def test_the_daemon_refuses_a_broker_it_cannot_verify_and_survives_being_refused(
    tmp_path: Path, mosquitto_factory: MosquittoFactory
) -> None:
    ca, cert, key = make_certificates(tmp_path)
    other_dir = tmp_path / "other-ca"
    other_dir.mkdir()
    other_ca, _, _ = make_certificates(other_dir)
    passwd = write_password_file(tmp_path / "passwd", {"relaxd": MQTT_SECRET, "observer": OBSERVER_SECRET})
    tls_port = free_port()
    broker = mosquitto_factory(
        allow_anonymous=False,
        password_file=passwd,
        extra_conf=(f"listener {tls_port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n"),
    ).start()
    assert wait_until(lambda: f"port {tls_port}" in broker.log_text(), 5)
    cases = {
        # A broker whose certificate another CA signed: relaxd must not talk to it at all.
        "untrusted": {
            "port": tls_port,
            "username": "relaxd",
            "password": MQTT_SECRET,
            "tls": {"ca_certs": str(other_ca)},
        },
        # No password: the broker refuses relaxd, and relaxd keeps trying without dying.
        "anonymous": {"port": tls_port, "tls": {"ca_certs": str(ca)}},
    }
    rigs = []
    try:
        with tls_collector(broker, tls_port, ca, ["relaxd/#"]).start() as observer:
            for name, mqtt_cfg in cases.items():
                case_dir = tmp_path / name
                case_dir.mkdir()
                rig = Rig(case_dir, broker)
                rigs.append(rig)
                client = {"host": "127.0.0.1", **mqtt_cfg, "client_id": f"relaxd-{name}"}
                reconfigure(rig, lambda c, m=client: c.update(log_level="DEBUG", mqtt=m))  # type: ignore[misc]
                rig.start_daemon()
            untrusted, anonymous = rigs
            assert wait_until(lambda: "certificate verify failed" in untrusted.daemon_log(), 20, 0.1), (
                untrusted.daemon_log()
            )
            assert wait_until(lambda: "refused the connection" in anonymous.daemon_log(), 20, 0.1), (
                anonymous.daemon_log()
            )
            assert wait_until(lambda: "not authorised" in broker.log_text().lower(), 5, 0.1)
            assert observer.on("relaxd/status") == []  # neither got in
            for rig in rigs:
                assert rig.proc is not None and rig.proc.poll() is None
                assert rig.stop_daemon(signal.SIGTERM) == 0
                assert MQTT_SECRET not in rig.daemon_log() and "Traceback" not in rig.daemon_log()
    finally:
        for rig in rigs:
            rig.close()


def test_an_unreachable_broker_is_logged_with_the_reason(caplog: pytest.LogCaptureFixture) -> None:
    from relaxd.adapters.mqtt import MqttBus
    from relaxd.core.config import MqttConfig
    from relaxd.core.topics import Topics

    bus = MqttBus(MqttConfig(host="127.0.0.1", port=free_port()), Topics(), lambda t, p, r: None)
    bus.start()
    try:
        assert wait_until(lambda: "unreachable" in caplog.text, 5)
        assert "unreachable (Connection refused)" in caplog.text
    finally:
        bus.stop()
