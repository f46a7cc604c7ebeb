"""`relaxd sim` as a process, and docs/sim.md: its flags, and every shell block runs as written and
does what it says."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import soco
import yaml
from soco.exceptions import SoCoUPnPException

from tests.mosquitto import free_port
from tests.sim_control_rig import ask

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "sim.md"
CURL = Path("/usr/bin/curl")


# -- `relaxd sim` ------------------------------------------------------------------------------------


@dataclass
class SimProcess:
    """`relaxd sim` running as a subprocess; output: its header and config snippet."""

    process: subprocess.Popen[str]
    output: str
    config: dict[str, Any]
    control_url: str

    @property
    def hue_address(self) -> str:
        return str(self.config["hue"]["host"])

    @property
    def sonos_port(self) -> int:
        return int(self.config["rooms"]["massage_room"]["speaker"]["host"].rpartition(":")[2])

    @property
    def control_port(self) -> int:
        return int(self.control_url.rstrip("/").rpartition(":")[2])


def distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


@contextlib.contextmanager
def run_sim(ports: list[int], stderr_path: Path) -> Iterator[SimProcess]:
    """Start `relaxd sim` on ports (Hue, Sonos, control), wait for its output (printed once
    everything listens), and SIGTERM it afterwards."""
    hue_port, sonos_port, control_port = ports
    command = [sys.executable, "-m", "relaxd", "sim", "--hue-port", str(hue_port), "--sonos-port", str(sonos_port)]
    command += ["--control-port", str(control_port)]
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True)
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in process.stdout or ():
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    output = ""
    try:
        deadline_s = time.monotonic() + 20
        while "max_volume:" not in output:
            try:
                output += lines.get(timeout=max(0.01, deadline_s - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"relaxd sim printed {output!r}; stderr: {stderr_path.read_text()}")
        match = re.search(r"^# fault control: (http://127\.0\.0\.1:(\d+)/)  \(see docs/sim\.md\)$", output, re.M)
        assert match is not None, output
        yield SimProcess(process, output, yaml.safe_load(output), match.group(1))
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(10) == 0, stderr_path.read_text()
        finally:
            process.kill()


@pytest.fixture(scope="module")
def sim_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    with run_sim(distinct_free_ports(3), tmp_path_factory.mktemp("sim") / "stderr") as process:
        yield process


def test_relaxd_sim_prints_the_control_url_and_serves_it(sim_process: SimProcess) -> None:
    header = [line for line in sim_process.output.splitlines() if line.startswith("#")]
    assert len(header) == 3 and sim_process.output.startswith("#")
    control_port = sim_process.control_port
    status, answer, _ = ask(control_port, "GET", "/")
    assert status == 200 and answer["hue"]["address"] == sim_process.hue_address
    assert answer["speakers"]["massage_room"]["address"].endswith(f":{sim_process.sonos_port}")
    # The knobs act on the devices the snippet points at.
    assert ask(control_port, "POST", "/hue/stop")[0] == 200
    host, _, port = sim_process.hue_address.partition(":")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, int(port)), timeout=5).close()
    assert ask(control_port, "POST", "/hue/start")[0] == 200
    username = sim_process.config["hue"]["username"]
    assert ask(control_port, "POST", "/hue/lights/2/hand", {"bri": 42})[0] == 200
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    connection.request("GET", f"/api/{username}/lights/2")
    assert json.loads(connection.getresponse().read())["state"]["bri"] == 42


def test_relaxd_sim_control_port_0_picks_a_free_one(tmp_path: Path) -> None:
    with run_sim([*distinct_free_ports(2), 0], tmp_path / "stderr") as process:
        assert process.control_port > 0 and ask(process.control_port, "GET", "/")[0] == 200


# -- docs/sim.md: every shell block runs as written ----------------------------------------------------


def shell_blocks() -> list[str]:
    return re.findall(r"^```shell\n(.*?)^```$", DOC.read_text(), re.S | re.M)


def test_the_docs_rehearsals_run_and_do_what_they_say(sim_process: SimProcess) -> None:
    assert CURL.exists(), "the docs' examples use curl"
    blocks = shell_blocks()
    titles = [block.splitlines()[0].removeprefix("# ").partition(":")[0] for block in blocks]
    checks = DocChecks(sim_process)
    assert titles == list(checks.by_title()), "every shell block in docs/sim.md needs its check here"
    env = {
        **os.environ,
        "SIM": sim_process.control_url.rstrip("/"),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    for index, (title, block) in enumerate(zip(titles, blocks, strict=True)):
        # Each block on its own, after the first one, which sets the variables.
        script = block if index == 0 else f"{blocks[0]}\n{block}"
        began_s = time.monotonic()
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], env=env, capture_output=True, text=True, timeout=30
        )
        took_s = time.monotonic() - began_s
        assert done.returncode == 0, f"{title}: {done.stderr}"
        checks.by_title()[title](done.stdout, took_s)


class DocChecks:
    """What each shell block of docs/sim.md says it does, checked with real clients."""

    def __init__(self, sim: SimProcess) -> None:
        self.sim = sim
        host, _, port = sim.hue_address.partition(":")
        self.hue_host, self.hue_port = host, int(port)
        self.username = sim.config["hue"]["username"]
        self.control_port = sim.control_port

    def by_title(self) -> dict[str, Callable[[str, float], None]]:
        return {
            "setup": self.setup,
            "status": self.status,
            "bridge down, then up": self.bridge_down_then_up,
            "a bridge that errors": self.bridge_errors,
            "a speaker that refuses to play": self.speaker_refuses,
            "a slow speaker": self.slow_speaker,
            "a trickling bridge": self.trickling_bridge,
            "hand changes": self.hand_changes,
            "pairing": self.pairing,
            "all clear": self.all_clear,
        }

    def state(self) -> Any:
        return ask(self.control_port, "GET", "/")[1]

    def light(self, light_id: int) -> Any:
        connection = http.client.HTTPConnection(self.hue_host, self.hue_port, timeout=10)
        connection.request("GET", f"/api/{self.username}/lights/{light_id}")
        return json.loads(connection.getresponse().read())

    def player(self) -> Any:
        return soco.SoCo("127.0.0.1", self.sim.sonos_port)

    def setup(self, out: str, took_s: float) -> None:
        assert out == f"bridge at {self.sim.hue_address}, speaker at 127.0.0.1:{self.sim.sonos_port}\n"

    def status(self, out: str, took_s: float) -> None:
        shown = json.loads(out.partition("\n")[2])  # after the setup block's line
        assert shown["hue"]["address"] == self.sim.hue_address and "massage_room" in shown["speakers"]

    def bridge_down_then_up(self, out: str, took_s: float) -> None:
        assert "no bridge (curl exit 7)" in out and out.endswith("Philips hue\n")
        assert self.state()["hue"]["running"] is True and self.light(1)["name"] == "Light 1"

    def bridge_errors(self, out: str, took_s: float) -> None:
        assert "'kind': 'fail'" in out and "'count': 2" in out
        assert [self.light(1)[0]["error"]["type"] for _ in range(2)] == [901, 901]
        assert self.light(1)["name"] == "Light 1"

    def speaker_refuses(self, out: str, took_s: float) -> None:
        with pytest.raises(SoCoUPnPException) as error:
            self.player().play()
        assert error.value.error_code == "701"
        self.player().play()

    def slow_speaker(self, out: str, took_s: float) -> None:
        answered = re.search(r"answered after ([\d.]+) s", out)
        assert answered is not None and float(answered.group(1)) >= 1.95 and took_s >= 1.95
        assert out.endswith("\n12\n") and self.player().volume == 12

    def trickling_bridge(self, out: str, took_s: float) -> None:
        assert "curl gave up after 2 s (exit 28)" in out and out.endswith("Philips hue\n")
        assert self.state()["hue"]["pending_faults"] == [] and took_s >= 2

    def hand_changes(self, out: str, took_s: float) -> None:
        assert out.endswith("\n60\n40\n")
        assert self.light(1)["state"]["bri"] == 60 and self.player().volume == 40

    def pairing(self, out: str, took_s: float) -> None:
        reply = json.loads(out.splitlines()[-1])
        assert len(reply[0]["success"]["username"]) == 40

    def all_clear(self, out: str, took_s: float) -> None:
        state = self.state()
        assert state["hue"]["pending_faults"] == [] and state["hue"]["latency_ms"] == 0
        assert state["speakers"]["massage_room"]["pending_faults"] == []


def test_the_docs_name_the_flags_and_defaults_of_relaxd_sim() -> None:
    from relaxd.app.cli import build_parser

    args = build_parser().parse_args(["sim"])
    text = DOC.read_text()
    for flag, default in (("--hue-port", args.hue_port), ("--sonos-port", args.sonos_port)):
        assert f"| `{flag}` | {default} |" in text
    assert f"| `--control-port` | {args.control_port} |" in text and args.control_port == 8099
    assert f"SIM=${{SIM:-http://127.0.0.1:{args.control_port}}}" in text
