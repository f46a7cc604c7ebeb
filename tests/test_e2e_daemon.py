"""End to end: remote CLI commands, systemd notify, and a broker restart during a session."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from relaxd.app.demo_view import light_states
from tests.mosquitto import Collector, Mosquitto, wait_until
from tests.test_e2e_run import Rig, names, same_room

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def rig(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Rig]:
    r = Rig(tmp_path, mosquitto)
    yield r
    r.close()


def cli(rig: Rig, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relaxd", *args, "-c", str(rig.config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_start_status_stop_from_the_command_line(rig: Rig) -> None:
    before = rig.before()
    with Collector(rig.broker, ["relaxd/#"]) as mqtt:
        rig.start_daemon()
        mqtt.wait_for_message("relaxd/status", "online", timeout_s=20)
        started = cli(rig, "start", "room1", "--routine", "slow")
        assert started.returncode == 0 and "room1: started slow (1 phase" in started.stdout, started.stderr
        status = cli(rig, "status", "room1", "--json")
        assert status.returncode == 0
        state = json.loads(status.stdout)
        assert state["state"] == "running" and state["phase"] == "long"
        again = cli(rig, "start", "room1")
        assert again.returncode == 1 and "cannot start while running" in again.stderr
        stopped = cli(rig, "stop", "room1")
        assert stopped.returncode == 0 and "room1: stopped" in stopped.stdout
        mqtt.wait_for(lambda m: "room_restored" in names(m), timeout_s=15)
        unknown = cli(rig, "stop", "attic")
        assert unknown.returncode == 1 and "unknown room 'attic'" in unknown.stderr
    same_room(before, rig.before())
    assert rig.stop_daemon() == 0


def test_cli_without_a_daemon_says_so(rig: Rig) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "relaxd", "status", "--timeout", "1", "-c", str(rig.config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1 and "relaxd is offline" in result.stderr


def test_systemd_ready_and_stopping_are_notified(rig: Rig, tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(20)
    try:
        os.environ["NOTIFY_SOCKET"] = str(path)
        rig.start_daemon()
    finally:
        del os.environ["NOTIFY_SOCKET"]
    try:
        assert sock.recv(1024).startswith(b"READY=1")
        assert rig.proc is not None
        rig.proc.send_signal(signal.SIGTERM)
        assert sock.recv(1024).startswith(b"STOPPING=1")
        assert rig.proc.wait(timeout=30) == 0
    finally:
        sock.close()


def test_the_broker_going_away_does_not_stop_the_session(rig: Rig) -> None:
    before = rig.before()
    with Collector(rig.broker, ["relaxd/#"]) as mqtt:
        rig.start_session(mqtt, "fast", before)
    rig.broker.stop()  # no persistence: every retained message is gone with it
    # The session runs on and finishes without the broker: the room is restored regardless.
    deadline_ok = wait_until(lambda: light_states(rig.hue) == before["lights"], 30, interval_s=0.1)
    assert deadline_ok, "room not restored while the broker was away"
    rig.broker.start()
    with Collector(rig.broker, ["relaxd/#"]) as mqtt:
        # Events published while the broker was away arrive after the reconnect.
        mqtt.wait_for(
            lambda m: "room_restored" in names(m) and any(x.topic == "relaxd/room1/phase" for x in m), timeout_s=40
        )
    with Collector(rig.broker, ["relaxd/#"]) as late:  # retained state was republished, not remembered
        msgs = late.wait_for(
            lambda m: {"relaxd/room1/state", "relaxd/room1/phase", "relaxd/status"} <= {x.topic for x in m if x.retain},
            timeout_s=10,
        )
        state = json.loads([m for m in msgs if m.topic == "relaxd/room1/state"][-1].payload)
        assert state["state"] == "idle"
        assert late.texts("relaxd/room1/phase")[-1] == "idle" and late.texts("relaxd/status")[-1] == "online"
    same_room(before, rig.before())
    assert rig.stop_daemon() == 0


def test_the_systemd_unit_is_hardened_and_does_not_restart_on_config_errors() -> None:
    unit = (ROOT / "systemd" / "relaxd.service").read_text()
    lines = {line.split("=", 1)[0]: line.split("=", 1)[1] for line in unit.splitlines() if "=" in line}
    assert lines["Type"] == "notify" and lines["Restart"] == "on-failure"
    assert lines["RestartPreventExitStatus"] == "78" and lines["StateDirectory"] == "relaxd"
    assert lines["ProtectSystem"] == "strict" and lines["ProtectHome"] == "yes"
    assert lines["PrivateTmp"] == "yes" and lines["NoNewPrivileges"] == "yes"
    assert lines["User"] == "relaxd" and "relaxd run" in lines["ExecStart"]
    assert set(lines["RestrictAddressFamilies"].split()) <= {"AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"}
    assert int(lines["TimeoutStopSec"]) >= 30
