"""`kill -9` of `relaxd run` mid-session in a room of two speakers, one of them grouped with another room:
the next start gives every speaker and the layout back, and the other room never changed."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relaxd.sim.sonos_speaker import SonosSpeakerSim
from tests.mosquitto import Collector, Mosquitto, wait_until
from tests.reliability import TEST_TIMEOUT_S, event_names, phases, reconfigure, room_events, wait_online
from tests.sonos_rig import CALM_FIRST, home
from tests.test_e2e_run import Rig

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(TEST_TIMEOUT_S)]


@pytest.fixture
def rig(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[tuple[Rig, SonosSpeakerSim]]:
    """room1 has two speakers: its own, listening to room2's group, and a bath speaker on its own."""
    r = Rig(tmp_path, mosquitto, rooms=2)
    bath = SonosSpeakerSim.demo(room_name="Bath").start()
    bath.hand_play_uri("x-sonosapi-stream:s24146?sid=254&flags=8224&sn=0")
    bath.hand_set_volume(9)
    room1, room2 = r.speakers["room1"], r.speakers["room2"]
    SonosSpeakerSim.household_of(room2, room1, bath)
    SonosSpeakerSim.group(room2, room1)
    room1.hand_set_volume(17)

    def change(config: dict[str, Any]) -> None:
        config["routines"]["test"] = phases(600, 600, 600)
        room = config["rooms"]["room1"]
        room.update(routine="test", music={"playlist": "Calm"}, speakers=[room.pop("speaker"), {"host": bath.address}])

    reconfigure(r, change)
    yield r, bath
    r.close()
    bath.stop()


def commands(sim: SonosSpeakerSim) -> list[str]:
    return [c.action for c in sim.requests() if not c.action.startswith("Get")]


def test_kill_9_mid_session_with_a_group_then_the_next_start_restores_every_speaker_and_the_layout(
    rig: tuple[Rig, SonosSpeakerSim],
) -> None:
    r, bath = rig
    room1, room2 = r.speakers["room1"], r.speakers["room2"]
    sims = (room2, room1, bath)
    before = home(*sims)
    lights_before = r.before()["lights"]
    assert before["layout"]["room2"] == ("room2", "room1")
    with Collector(r.broker, ["relaxd/#"]) as mqtt:
        r.start_daemon()
        wait_online(mqtt, rooms=2)
        mqtt.publish("relaxd/room1/set", "start")
        # Phase one: both speakers of room1 grouped, playing the calm playlist at volume 12.
        assert wait_until(lambda: set(home(*sims)["layout"].get("room1", ())) == {"room1", "Bath"}, 10)
        assert wait_until(lambda: bath.state().queue[:1] == (CALM_FIRST,) and bath.state().volume == 12, 10)
        during = home(*sims)
        assert during["layout"]["room2"] == ("room2",) and during["room1"]["volume"] == 12
        assert during["Bath"]["queue"][0] == CALM_FIRST
        assert during["room2"] == before["room2"] and commands(room2) == []
        file = r.tmp_path / "state" / "snapshots" / "room1.snapshot.json"
        saved = json.loads(file.read_text())["data"]["devices"]["speaker"]
        assert saved["format"] == "relaxd-sonos/2" and len(saved["speakers"]) == 2
        assert r.stop_daemon(signal.SIGKILL) == -signal.SIGKILL
        assert home(*sims)["layout"] == during["layout"]  # nothing was given back by the dead daemon
        mqtt.clear()
        r.start_daemon()
        msgs = mqtt.wait_for(lambda m: "room_restored" in event_names(m), timeout_s=30)
        assert "restore_failed" not in event_names(msgs)
        restored = next(e for e in room_events(msgs) if e["event"] == "room_restored")
        assert "group" in restored["details"]["speaker"]["restored"]
        assert wait_until(lambda: home(*sims) == before, 5)
        assert r.before()["lights"] == lights_before
        assert commands(room2) == []  # the other room was never sent anything
        assert not file.exists()
        assert r.stop_daemon() == 0
