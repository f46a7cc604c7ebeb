"""README "Trying it without hardware": its shell blocks run as written, dim the simulated room and give it back."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from relaxd.sim.hue_bridge import HueBridgeSim
from relaxd.sim.sonos_speaker import SonosSpeakerSim
from tests.mosquitto import Collector, Mosquitto, free_port, wait_until
from tests.readme_rig import Shell, relaxd_commands, section, sh_blocks, user_env

pytestmark = pytest.mark.e2e
TITLE = "## Trying it without hardware"
CURL = Path("/usr/bin/curl")


def walkthrough() -> list[str]:
    return sh_blocks(section(TITLE))


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.load(answer)


def lights_seen(hue: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per light what a restore promises: on, bri and the colour of its colormode."""
    out = {}
    for light_id, light in hue["lights"].items():
        state = light["state"]
        colour = {"hs": ("hue", "sat"), "xy": ("xy",), "ct": ("ct",)}.get(state.get("colormode"), ())
        out[light_id] = {k: state[k] for k in ("on", "bri", "colormode", *colour) if k in state}
    return out


def fresh_sim_lights() -> dict[str, dict[str, Any]]:
    """The lights of a fresh `relaxd sim --lights 4` (the walkthrough's), before anyone touched them."""
    sim = HueBridgeSim(lights=4)
    return lights_seen({"lights": {i: sim.light(i) for i in sim.light_ids()}})


def events(mqtt: Collector) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in mqtt.on("relaxd/massage_room/event")]


def test_the_walkthrough_has_its_three_blocks_and_needs_nothing_but_its_variables() -> None:
    blocks = walkthrough()
    assert len(blocks) == 3, "the walkthrough test below runs exactly three blocks; update it with the README"
    first = blocks[0]
    # Ports only through the variables of its first line, so that it runs anywhere (and in this test).
    assert first.splitlines()[0] == (
        "HUE_PORT=${HUE_PORT:-8080} SONOS_PORT=${SONOS_PORT:-1400} "
        "SIM_PORT=${SIM_PORT:-8099} MQTT_PORT=${MQTT_PORT:-1883}"
    )
    everything = "\n".join(blocks)
    assert not re.search(r"\b(8080|1400|8099|1883)\b", everything.split("\n", 1)[1])
    assert "state_dir:" in first and "until grep -q max_volume sim.yaml" in first
    commands = [c[0] for b in blocks for c in relaxd_commands(b)]
    assert commands == ["sim", "run", "status", "start", "status", "stop", "hue"]


def test_the_walkthrough_runs_as_written(mosquitto: Mosquitto, tmp_path: Path) -> None:
    assert CURL.exists(), "the walkthrough uses curl"
    setup, look_and_stop, pairing = walkthrough()
    ports = {mosquitto.port}
    while len(ports) < 4:
        ports.add(free_port())
    hue_port, sonos_port, sim_port = sorted(ports - {mosquitto.port})
    work = tmp_path / "work"
    work.mkdir()
    # An earlier run's snippet (another bridge's username) must not be taken for this run's.
    (work / "sim.yaml").write_text('hue: {host: "127.0.0.1:9", username: "stale"}\nrooms: {r: {max_volume: 30}}\n')
    env = user_env(
        tmp_path,
        HUE_PORT=str(hue_port),
        SONOS_PORT=str(sonos_port),
        SIM_PORT=str(sim_port),
        MQTT_PORT=str(mosquitto.port),
    )
    sim = f"http://127.0.0.1:{sim_port}"
    expected_lights = fresh_sim_lights()
    expected_speaker = SonosSpeakerSim.demo().state()
    with Collector(mosquitto, ["relaxd/#"]) as mqtt, Shell(work, env) as shell:
        first = shell.run(setup, timeout_s=45)
        assert first.returncode == 0, f"{first}\nlog:\n{daemon_log(work)}"
        assert "massage_room" in first.stdout, first  # what `relaxd start` printed

        # During the session: the first phase's scene (40 %, 2400 K) on every light, announced on MQTT.
        def dimmed() -> bool:
            return all(s["on"] and s["bri"] == 102 for s in lights_seen(get(f"{sim}/hue")).values())

        assert wait_until(dimmed, 10), lights_seen(get(f"{sim}/hue"))
        assert all(s.get("ct") == 417 for s in lights_seen(get(f"{sim}/hue")).values() if "ct" in s)
        mqtt.wait_for(lambda _: any(e["event"] == "phase_started" for e in events(mqtt)), 10)
        started = next(e for e in events(mqtt) if e["event"] == "phase_started")
        assert started["phase"] == "settle" and started["phase_index"] == 0
        assert json.loads(mqtt.texts("relaxd/massage_room/state")[-1])["state"] == "running"

        second = shell.run(look_and_stop, timeout_s=30)
        assert second.returncode == 0, str(second)
        assert "running" in second.stdout and "settle" in second.stdout, second.stdout
        assert '"bri": 102' in second.stdout  # what the curl line shows: the dimmed lights

        # After: the room exactly as a fresh simulator has it, and said so on MQTT.
        mqtt.wait_for(lambda _: any(e["event"] == "room_restored" for e in events(mqtt)), 20)
        names = [e["event"] for e in events(mqtt)]
        order = ["session_started", "phase_started", "session_stopped", "room_restored"]
        assert [n for n in names if n in order] == order, names
        stopped = next(e for e in events(mqtt) if e["event"] == "session_stopped")
        restored = next(e for e in events(mqtt) if e["event"] == "room_restored")
        assert stopped["reason"] == "mqtt", stopped
        light_names = sorted(light["name"] for light in get(f"{sim}/hue")["lights"].values())
        assert sorted(restored["details"]["lights"]["restored"]) == light_names and len(light_names) == 4, restored
        assert restored["details"]["speaker"]["unrestorable"] == {}, restored
        assert lights_seen(get(f"{sim}/hue")) == expected_lights
        speaker = get(f"{sim}/sonos/massage_room")
        # Back on its own queue (the uri names the speaker's random uid), at its volume, playing.
        assert speaker["uri"].startswith("x-rincon-queue:RINCON_") and expected_speaker.uri.startswith(
            "x-rincon-queue:RINCON_"
        )
        assert (speaker["volume"], speaker["mute"], speaker["transport_state"]) == (
            expected_speaker.volume,
            expected_speaker.mute,
            expected_speaker.transport_state,
        )

        # Pairing: the link button pressed over HTTP, then `relaxd hue pair` prints a username that works.
        third = shell.run(pairing, timeout_s=30)
        assert third.returncode == 0, str(third)
        found = re.search(r'username: "([0-9a-f]{40})"', third.stdout)
        assert found is not None, third.stdout
        paired = found.group(1)
        snippet = (work / "sim.yaml").read_text()
        assert paired not in snippet and f"host: 127.0.0.1:{hue_port}" in third.stdout
        assert set(get(f"http://127.0.0.1:{hue_port}/api/{paired}/lights")) == {"1", "2", "3", "4"}


def daemon_log(work: Path) -> str:
    log = work / "relaxd.log"
    return log.read_text()[-4000:] if log.exists() else "(no relaxd.log)"
