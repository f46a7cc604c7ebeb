"""End to end: `relaxd run` breathing a room on the simulators, its breath topic seen over Mosquitto."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from relaxd.adapters.mqtt_outbox import Outbox
from relaxd.core.topics import Topics
from relaxd.core.units import percent_to_bri_254
from tests.mosquitto import Collector, Mosquitto
from tests.test_e2e_run import Rig, names

pytestmark = pytest.mark.e2e
BREATHE_FAST = {
    "phases": [
        {
            "name": "breathe",
            "duration": "10m",
            "lights": {"brightness": "30%", "color_temp": "2200K"},
            "music": {"volume": 10, "ramp": "0s"},
            "breathing": {"inhale": "1.6s", "exhale": "1.6s", "brightness": ["20%", "40%"], "volume_swell": 2},
        }
    ]
}


@pytest.fixture
def rig(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Rig]:
    r = Rig(tmp_path, mosquitto)
    config = yaml.safe_load(r.config.read_text())
    config["routines"]["breathe_fast"] = BREATHE_FAST
    r.config.write_text(yaml.safe_dump(config))
    yield r
    r.close()


def test_the_daemon_publishes_every_breath_edge_at_qos_0_and_the_bridge_gets_it_on_time(rig: Rig) -> None:
    before = rig.before()
    with Collector(rig.broker, ["relaxd/#"]) as mqtt:
        rig.start_daemon()
        mqtt.wait_for_message("relaxd/status", "online", timeout_s=20)
        mqtt.publish("relaxd/room1/set", json.dumps({"action": "start", "routine": "breathe_fast"}))
        mqtt.wait_for(lambda m: len([x for x in m if x.topic == "relaxd/room1/breath"]) >= 5, timeout_s=15)
        mqtt.publish("relaxd/room1/set", "stop")
        msgs = mqtt.wait_for(lambda m: "room_restored" in names(m), timeout_s=15)
    edges = [m for m in msgs if m.topic == "relaxd/room1/breath"]
    assert all(m.qos == 0 and m.retain is False for m in edges)
    data = [json.loads(m.payload) for m in edges]
    assert [d["breath"] for d in data[:4]] == ["inhale", "exhale", "inhale", "exhale"]
    assert all(d["duration_s"] == 1.6 and d["lights"] is True for d in data[:4])
    # At the bridge: each followed edge's group command within 50 ms of the daemon's plan (its `at`,
    # the wall clock; the simulator stamps arrivals on this host's monotonic clock).
    offset_s = time.time() - time.monotonic()
    puts = [e for e in rig.hue.request_log() if e.method == "PUT" and e.path.endswith("/action")]
    assert len(puts) >= 4
    for edge, put in zip(data[:4], puts[:4], strict=True):
        planned_s = datetime.fromisoformat(edge["at"]).timestamp()
        assert -0.005 < put.at_s + offset_s - planned_s < 0.050, (edge, put)
        assert put.body["bri"] == percent_to_bri_254(40 if edge["breath"] == "inhale" else 20)
        assert put.body["transitiontime"] == 16
    # The volume swelled with the breath (10 + 2 over an inhale), and went back down with the exhale.
    volumes = [int(c.args["DesiredVolume"]) for c in rig.speakers["room1"].requests("SetVolume")]
    assert volumes[:5] == [10, 11, 12, 11, 10] and volumes[-1] == 25  # then the restore: back to 25
    assert rig.before()["lights"] == before["lights"]  # stop restored the room as always
    assert rig.stop_daemon() == 0


def test_a_breath_edge_while_the_broker_is_away_is_dropped_quietly(caplog: pytest.LogCaptureFixture) -> None:
    class NoClient:
        def publish(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("nothing may be queued for a QoS 0 message")

    outbox = Outbox(Topics(), max_queued=10)
    caplog.set_level(logging.INFO)
    sent = outbox.send(NoClient(), "relaxd/room1/breath", b"{}", connected=False, retain=False, qos=0)  # type: ignore[arg-type]
    assert sent is None and outbox.queued_offline == 0  # no room taken from the events' queue
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]  # and no warning per edge
