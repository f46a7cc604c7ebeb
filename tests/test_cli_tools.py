"""`relaxd hue pair` and `relaxd sim` as a user runs them."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import threading
from typing import Any

import yaml

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.hue import HueBridge, HueLights
from relaxd.adapters.sonos import SonosSpeaker
from relaxd.sim.hue_bridge import HueBridgeSim
from tests.mosquitto import free_port


def test_hue_pair_prints_the_username_after_the_link_button() -> None:
    with HueBridgeSim(lights=1) as sim:
        proc = subprocess.Popen(
            [sys.executable, "-m", "relaxd", "hue", "pair", "--host", sim.address, "--https", "false", "--wait", "20"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "Press the link button" in first
        timer = threading.Timer(1.5, sim.press_link_button)  # the user walks to the bridge
        timer.start()
        out, err = proc.communicate(timeout=30)
        timer.cancel()
    assert proc.returncode == 0, err
    config = yaml.safe_load(out.split("(it is a secret):", 1)[1])
    username = config["hue"]["username"]
    assert len(username) >= 10 and config["hue"]["host"] == sim.address
    assert sim.request_log()[0].method == "POST"


def test_hue_pair_gives_up_with_a_clear_message() -> None:
    with HueBridgeSim(lights=1) as sim:
        result = subprocess.run(
            [sys.executable, "-m", "relaxd", "hue", "pair", "--host", sim.address, "--https", "false", "--wait", "1"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 1 and "link button" in result.stderr


def test_sim_prints_a_config_snippet_that_works() -> None:
    hue_port, sonos_port = free_port(), free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "relaxd",
            "sim",
            "--hue-port",
            str(hue_port),
            "--sonos-port",
            str(sonos_port),
            "--lights",
            "4",
            "--control-port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not lines or not lines[-1].startswith("    max_volume"):
            lines.append(proc.stdout.readline())
            assert lines[-1], "relaxd sim ended early"
        snippet = yaml.safe_load("".join(lines))
        assert snippet["hue"]["host"] == f"127.0.0.1:{hue_port}"
        room = next(iter(snippet["rooms"].values()))
        assert room["speaker"]["host"] == f"127.0.0.1:{sonos_port}"

        async def snapshots() -> tuple[dict[str, Any], dict[str, Any]]:
            calls = BlockingCalls(workers=2)
            try:
                bridge = HueBridge(snippet["hue"]["host"], snippet["hue"]["username"], calls=calls, https=False)
                lights = HueLights(bridge, group=room["lights"]["group"])
                return await lights.snapshot(), await SonosSpeaker(host=room["speaker"]["host"], calls=calls).snapshot()
            finally:
                calls.close()

        lights, speaker = asyncio.run(snapshots())
        assert len(lights["lights"]) == 4 and speaker
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
