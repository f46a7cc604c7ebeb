"""Every ```sh block of the README is run as written, or (where it installs or needs root) checked: bash syntax and
every `relaxd` command line against the real parser."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from pydantic import BaseModel

from relaxd.core.config import Settings
from relaxd.sim.sonos_speaker import SonosSpeakerSim
from tests.mosquitto import Collector, Mosquitto
from tests.readme_rig import Shell, parse_problem, relaxd_commands, sh_blocks, user_env

# Every block, by a line that only it has: how this suite exercises it. A new block fails
# test_every_block_is_classified until it is added here.
RUN, CHECKED, WALKTHROUGH = "run here", "checked only", "run by tests/test_readme_walkthrough.py"
BLOCKS = {
    # Installs into .venv and runs the whole suite (this test among it).
    ".venv/bin/pip install -e . && .venv/bin/relaxd demo": CHECKED,
    # Installs into /opt.
    "/opt/relaxd/bin/relaxd check-config -c /etc/relaxd/relaxd.yaml": CHECKED,
    # The daemon in the foreground with placeholder secrets.
    "RELAXD_MQTT__PASSWORD=... RELAXD_HUE__USERNAME=... relaxd run -c /etc/relaxd/relaxd.yaml": CHECKED,
    "mosquitto_pub -t relaxd/request/status": RUN,
    "relaxd schedule add --room bedroom --routine classic": RUN,
    # Root: a system user, /etc, systemd.
    "useradd --system --home /var/lib/relaxd": CHECKED,
    "relaxd sim --hue-port $HUE_PORT": WALKTHROUGH,
    "relaxd status massage_room -c relaxd.yaml": WALKTHROUGH,
    "relaxd hue pair --host 127.0.0.1:$HUE_PORT": WALKTHROUGH,
}
SCHEDULE_ID = "rt-3f9a1c02de"  # the README's example id; the test puts in the one the daemon gave
TZ = ZoneInfo("Europe/Berlin")  # the README's schedules' zone


def block(marker: str) -> str:
    return next(b for b in sh_blocks() if marker in b)


def test_every_block_is_classified() -> None:
    blocks = sh_blocks()
    for text in blocks:
        markers = [m for m in BLOCKS if m in text]
        assert len(markers) == 1, f"classify this README block in BLOCKS (run or checked):\n{text}"
    for marker in BLOCKS:
        assert sum(marker in b for b in blocks) == 1, f"no (or more than one) README block holds {marker!r}"


@pytest.mark.parametrize("text", sh_blocks(), ids=lambda t: t.splitlines()[0][:40])
def test_every_block_is_bash_and_its_relaxd_commands_exist(text: str) -> None:
    syntax = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True, timeout=10, check=False)
    assert syntax.returncode == 0, syntax.stderr
    for args in relaxd_commands(text):
        assert parse_problem(args) is None, parse_problem(args)
    for name in re.findall(r"\b(RELAXD_\w+)=", text):
        assert name == "RELAXD_CONFIG" or settings_key(name), f"{name} is no config key"


def test_the_checker_finds_what_does_not_run() -> None:
    # A wrong implementation of the checks above would pass every block; these must not pass.
    assert parse_problem(["schedule", "list", "[--room", "bedroom]"]) is not None
    assert parse_problem(["sim", "--hue-prot", "8080"]) is not None
    assert parse_problem(["paws", "bedroom"]) is not None
    assert relaxd_commands("X=1 relaxd run -c a.yaml 2> log &\nuntil relaxd status --timeout 1; do :; done") == [
        ["run", "-c", "a.yaml"],
        ["status", "--timeout", "1"],
    ]
    assert not settings_key("RELAXD_MQTT__PASWORD") and settings_key("RELAXD_MQTT__PASSWORD")


def settings_key(name: str) -> bool:
    """Whether RELAXD_A__B names a key of the config (as pydantic-settings reads it)."""
    model: type[BaseModel] | None = Settings
    for part in name.removeprefix("RELAXD_").lower().split("__"):
        if model is None or part not in model.model_fields:
            return False
        annotation = model.model_fields[part].annotation
        args = getattr(annotation, "__args__", ())
        model = next((a for a in (annotation, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
    return True


# -- the blocks that run against a daemon -------------------------------------------------------------


class Daemon:
    """`relaxd run` with a room `bedroom` (the README's) on a simulated speaker, on the test's broker."""

    def __init__(self, tmp_path: Path, broker: Mosquitto) -> None:
        self.tmp_path, self.broker = tmp_path, broker
        self.speaker = SonosSpeakerSim.demo().start()
        self.config = tmp_path / "relaxd.yaml"
        config = {
            "timezone": str(TZ),
            "state_dir": str(tmp_path / "state"),
            "mqtt": {"host": broker.host, "port": broker.port},
            "rooms": {"bedroom": {"speaker": {"host": self.speaker.address}}},
        }
        self.config.write_text(yaml.safe_dump(config))
        self.log = (tmp_path / "daemon.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "relaxd", "run", "-c", str(self.config)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=user_env(tmp_path),
        )

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.log.close()
            self.speaker.stop()


@pytest.fixture
def daemon(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Daemon]:
    running = Daemon(tmp_path, mosquitto)
    try:
        with Collector(mosquitto, ["relaxd/status"]) as mqtt:
            mqtt.wait_for_message("relaxd/status", "online", timeout_s=20)
        yield running
    finally:
        running.close()


def test_the_status_request_with_mosquitto_pub_is_answered(daemon: Daemon, tmp_path: Path) -> None:
    tool = shutil.which("mosquitto_pub")
    assert tool is not None, "the README's MQTT example needs mosquitto_pub: apt-get install mosquitto-clients"
    # As written, mosquitto_pub talks to localhost:1883; its own config file points it at the test's broker.
    xdg = tmp_path / "xdg"
    xdg.mkdir()
    (xdg / "mosquitto_pub").write_text(f"-h {daemon.broker.host}\n-p {daemon.broker.port}\n")
    with Collector(daemon.broker, ["relaxd/response/#"]) as mqtt, Shell(tmp_path, user_env(tmp_path)) as shell:
        shell.env["XDG_CONFIG_HOME"] = str(xdg)
        ran = shell.run(block("mosquitto_pub -t relaxd/request/status"), timeout_s=20)
        assert ran.returncode == 0, str(ran)
        answer = json.loads(mqtt.wait_for_message("relaxd/response/status", timeout_s=10).payload)
    assert answer["status"] == "ok" and answer["transaction"] == "s1", answer
    assert answer["data"]["room"] == "bedroom" and answer["data"]["state"] == "idle", answer


def test_the_schedule_commands_run_against_the_daemon(daemon: Daemon, tmp_path: Path) -> None:
    text = block("relaxd schedule add --room bedroom --routine classic")
    env = user_env(tmp_path, RELAXD_CONFIG=str(daemon.config))  # the README's commands take no -c
    work = tmp_path / "work"
    work.mkdir()
    ids: list[str] = []
    outputs: list[str] = []
    with Shell(work, env) as shell:
        for line in (line for line in text.splitlines() if line.strip()):
            line = booked_in_the_future(line)
            if ids:
                line = line.replace(SCHEDULE_ID, ids[0])
            ran = shell.run(line, timeout_s=30)
            assert ran.returncode == 0, f"{line}\n{ran}"
            outputs.append(ran.stdout)
            if " add " in line:
                found = re.match(r"added (rt-[0-9a-f]+)", ran.stdout)
                assert found is not None, ran.stdout
                ids.append(found.group(1))
        assert len(ids) == 3
        listed, as_json, removed = outputs[3], json.loads(outputs[4]), outputs[5]
        assert all(i in listed for i in ids), listed
        assert [s["id"] for s in as_json["schedules"]] == ids and as_json["timezone"] == str(TZ)
        biweekly = as_json["schedules"][1]
        assert (biweekly["every"], biweekly["on"], biweekly["at"], biweekly["routine"]) == (
            "2 weeks",
            ["sun"],
            "10:00",
            "quick",
        )
        assert removed.startswith(f"removed {ids[0]}"), removed
        after = shell.run("relaxd schedule list --json")
        left: dict[str, Any] = json.loads(after.stdout)
        assert [s["id"] for s in left["schedules"]] == ids[1:]


def booked_in_the_future(line: str) -> str:
    """The README's booking, a year on each time it has passed (a booking in the past is refused)."""
    found = re.search(r"--once (\d{4})(-\d\d-\d\dT\d\d:\d\d)", line)
    if found is None:
        return line
    year = int(found.group(1))
    while datetime.fromisoformat(f"{year}{found.group(2)}").replace(tzinfo=TZ) <= datetime.now(TZ):
        year += 1
    return line.replace(found.group(0), f"--once {year}{found.group(2)}")
