"""Home Assistant never sees a stale room as available: the recovered state goes out before `online`."""

from __future__ import annotations

import json
from typing import Any

from relaxd.adapters.mqtt import MqttBus
from relaxd.core.config import MqttConfig
from relaxd.core.topics import Topics
from tests.mosquitto import Collector, Mosquitto

RECOVERED: dict[str, Any] = {
    "room": "bedroom",
    "state": "restoring",
    "session_id": None,
    "routine": "classic",
    "devices": {},
}


def test_recovered_state_reaches_a_live_subscriber_before_online(mosquitto: Mosquitto) -> None:
    """Seen: after a crash HA showed the dead session because `online` (availability) came first."""
    with Collector(mosquitto, ["relaxd/#"]) as ha:  # subscribed before relaxd connects: sees the live order
        bus = MqttBus(MqttConfig(host=mosquitto.host, port=mosquitto.port), Topics(), lambda t, p, r: None)
        # What the daemon does: rooms recover (and publish their state) before the bus starts.
        bus.publish_state("bedroom", RECOVERED, "restoring")
        bus.start()
        try:
            assert bus.wait_connected(5)
            got = ha.wait_for(lambda ms: {m.topic for m in ms} >= {"relaxd/status", "relaxd/bedroom/state"})
        finally:
            bus.stop()
    order = [m.topic for m in got]
    assert order.index("relaxd/bedroom/state") < order.index("relaxd/status")
    assert order.index("relaxd/bedroom/phase") < order.index("relaxd/status")
    assert json.loads(next(m.payload for m in got if m.topic == "relaxd/bedroom/state")) == RECOVERED
    assert next(m.text for m in got if m.topic == "relaxd/status") == "online"
