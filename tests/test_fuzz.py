"""Fuzzed commands and trigger payloads on the real broker against a running `relaxd run`, checked against a model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from relaxd.core.configfile import all_routines, load_settings
from relaxd.core.events import ACTIONS
from tests.engine_rig import MakeRig
from tests.engine_rig import Rig as EngineRig
from tests.mosquitto import Collector, Mosquitto, Received
from tests.reliability import (
    COMMAND_FUZZ_BATCH,
    COMMAND_FUZZ_BATCHES,
    TEST_TIMEOUT_S,
    TRIGGER_FUZZ_BATCHES,
    RoomModel,
    last_state,
    phases,
    reconfigure,
    settle_and_check,
    wait_online,
)
from tests.test_e2e_run import Rig, same_room

pytestmark = pytest.mark.timeout(TEST_TIMEOUT_S)
BUTTON = "zigbee2mqtt/Massage Button"  # {"action": "single"} toggles room1 (the Rig's trigger)
TEXT_BUTTON = "fuzz/text"  # the exact text ON starts room1
ROUTINES = ["test", "slow", "classic", "quick"]
SETTINGS = settings(
    deadline=None, database=None, phases=(Phase.explicit, Phase.generate), suppress_health_check=list(HealthCheck)
)


@pytest.fixture
def rig(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Rig]:
    r = Rig(tmp_path, mosquitto)

    def change(config: dict[str, Any]) -> None:
        # Only phases far longer than the test, so every event follows from a command; one light
        # by name (no group command, paced at one a second) keeps device work quick.
        config["routines"] = {"test": phases(600, 600, 600), "slow": phases(600)}
        config["rooms"]["room1"].update(routine="test", lights={"names": ["room1 ceiling"]})
        config["triggers"].append({"topic": TEXT_BUTTON, "match": "ON", "room": "room1", "do": "start"})

    reconfigure(r, change)
    yield r
    r.close()


# --- payloads ---------------------------------------------------------------------------------

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)
actions = st.one_of(
    st.sampled_from(ACTIONS),
    st.sampled_from([a.upper() for a in ACTIONS]),
    st.sampled_from(["", "START ", "play", "stopp", "st\u0430rt", "toggle\x00"]),
    json_values,
)
routines = st.one_of(
    st.sampled_from(ROUTINES), st.sampled_from(["", "Test", "nope", "x" * 65, "t\u00e9st"]), json_values
)
minutes = st.one_of(
    st.floats(min_value=-10, max_value=300),
    st.sampled_from([0, 240, 240.000001, 1e-300, 1e308]),
    st.floats(allow_nan=True, allow_infinity=True),
    json_values,
)
transactions = st.one_of(st.text(max_size=30), st.integers(), st.text(min_size=250, max_size=300), json_values)


@st.composite
def json_commands(draw: st.DrawFn) -> bytes:
    command: dict[str, Any] = {}
    if draw(st.integers(0, 9)) > 0:
        command["action"] = draw(actions)
    for key, values in (("routine", routines), ("minutes", minutes), ("transaction", transactions)):
        if draw(st.booleans()):
            command[key] = draw(values)
    if draw(st.integers(0, 5)) == 0:
        command.update(draw(st.dictionaries(st.text(max_size=12), json_values, max_size=2)))
    text = json.dumps(command, allow_nan=True)
    if draw(st.integers(0, 9)) == 0:  # hand-written JSON goes wrong in its own ways
        text = draw(st.sampled_from([text[:-1], text + "}", text.replace('"', "'"), " \n" + text + "\t"]))
    return text.encode()


command_payloads = st.one_of(
    st.sampled_from([a.encode() for a in ACTIONS]),
    st.builds(
        lambda a, pad: (pad + a + pad).encode(),
        st.sampled_from((*ACTIONS, "START", "Stop")),
        st.sampled_from(["", " ", "\n", "\t "]),
    ),
    json_commands(),
    json_commands(),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.text(max_size=80).map(str.encode),
    st.binary(max_size=80),
    st.sampled_from(
        [
            b"",
            b"{",
            b"[" * 5000,
            b"{" * 40000,
            "\ud800".encode("utf-8", "surrogatepass"),
            b"\xff\xfestart",
            b'{"action": "start"}' + b" " * 70000,
        ]
    ),
)
rooms = st.sampled_from(["room1"] * 12 + ["attic", "Bad-Room", "a" * 40])


# --- the model ----------------------------------------------------------------------------------


def trigger_fires(payload: bytes) -> bool:
    """The Rig's button trigger, {action: single}, written independently of relaxd.core.triggers."""
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and isinstance(data.get("action"), str) and data["action"] == "single"


def text_fires(payload: bytes) -> bool:
    try:
        return payload.decode("utf-8").strip() == "ON"
    except UnicodeDecodeError:
        return False


def events_of(msgs: list[Received], room: str) -> list[dict[str, Any]]:
    return [json.loads(m.payload) for m in msgs if m.topic == f"relaxd/{room}/event"]


def daemon_events(msgs: list[Received]) -> list[dict[str, Any]]:
    """Rejections of commands for rooms relaxd does not have: on relaxd/event, never on a room's own topic."""
    return [json.loads(m.payload) for m in msgs if m.topic == "relaxd/event"]


class LiveRoom:
    """The daemon seen over MQTT, one batch at a time, checked against the model."""

    def __init__(self, rig: Rig, mqtt: Collector) -> None:
        self.rig = rig
        self.mqtt = mqtt
        counts = {n: len(r.phases) for n, r in all_routines(load_settings(rig.config)).items()}
        self.model = RoomModel(counts)
        self.state = "idle"
        self.batches = 0

    def check(self, orphans: int, timeout_s: float = 30) -> list[dict[str, Any]]:
        """Wait for the batch to be answered; the events of room1 must be exactly what the model explains."""
        self.batches += 1
        if orphans:
            self.mqtt.wait_for(lambda m: len(daemon_events(m)) >= orphans, timeout_s=timeout_s)
        self.state, got = settle_and_check(self.mqtt, self.model, "room1", str(self.batches), timeout_s)
        msgs = self.mqtt.snapshot()
        rejected = daemon_events(msgs)
        assert all(e["event"] == "command_rejected" and e["reason"].startswith("unknown room") for e in rejected)
        assert len(rejected) == orphans
        assert [
            m for m in msgs if m.topic.endswith("/event") and not m.topic.startswith(("relaxd/room1/", "relaxd/event"))
        ] == []
        assert [e["seq"] for e in got] == sorted({e["seq"] for e in got})
        assert self.rig.proc is not None and self.rig.proc.poll() is None, "the daemon died"
        return got

    def reset(self) -> None:
        """Back to idle before the next batch, so every batch starts from the same room."""
        self.mqtt.clear()
        self.model.restart_from(self.state)
        if self.state != "idle":
            self.model.do("stop")
            self.mqtt.publish("relaxd/room1/set", "stop")
            self.check(0)
            assert self.state == "idle"
            self.mqtt.clear()
            self.model.restart_from("idle")


@pytest.mark.e2e
def test_fuzzed_commands_are_rejected_or_carried_out_and_the_room_stays_consistent(rig: Rig) -> None:
    before = rig.before()
    total = 0
    with Collector(rig.broker, ["relaxd/+/event", "relaxd/event"]) as mqtt:
        rig.start_daemon()
        wait_online_events(rig, mqtt)
        live = LiveRoom(rig, mqtt)

        @settings(SETTINGS, max_examples=COMMAND_FUZZ_BATCHES)
        @given(
            st.lists(st.tuples(rooms, command_payloads), min_size=COMMAND_FUZZ_BATCH // 3, max_size=COMMAND_FUZZ_BATCH)
        )
        def batch(commands: list[tuple[str, bytes]]) -> None:
            nonlocal total
            live.reset()
            orphans = 0
            for room, payload in commands:
                note(f"{room}: {payload[:200]!r}")
                mqtt.publish(f"relaxd/{room}/set", payload)
                if room == "room1":
                    live.model.command(payload)
                elif payload:  # an empty payload clears a retained command: no reply
                    orphans += 1
            total += len(commands)
            live.check(orphans)

        batch()
        live.reset()
    assert total >= COMMAND_FUZZ_BATCHES * COMMAND_FUZZ_BATCH // 3
    finish(rig, before)


@pytest.mark.e2e
def test_fuzzed_trigger_payloads_fire_exactly_when_they_match(rig: Rig) -> None:
    before = rig.before()
    button = st.one_of(
        st.fixed_dictionaries(
            {"action": st.sampled_from(["single", "single", "double", "SINGLE", "single "])},
            optional={"linkquality": st.integers(0, 255), "battery": json_values},
        ),
        st.fixed_dictionaries({"action": json_values}).map(dict),
        json_values,
    ).map(lambda v: json.dumps(v, allow_nan=True).encode())
    payloads = st.one_of(
        st.tuples(st.just(BUTTON), st.one_of(button, button, st.binary(max_size=40), st.just(b"single"))),
        st.tuples(
            st.just(TEXT_BUTTON),
            st.one_of(
                st.sampled_from([b"ON", b" ON\n", b"on", b"ON!", b"\xffON"]), st.text(max_size=10).map(str.encode)
            ),
        ),
    )
    total = 0
    with Collector(rig.broker, ["relaxd/+/event", "relaxd/event"]) as mqtt:
        rig.start_daemon()
        wait_online_events(rig, mqtt)
        live = LiveRoom(rig, mqtt)

        @settings(SETTINGS, max_examples=TRIGGER_FUZZ_BATCHES)
        @given(st.lists(payloads, min_size=10, max_size=40))
        def batch(presses: list[tuple[str, bytes]]) -> None:
            nonlocal total
            live.reset()
            for topic, payload in presses:
                note(f"{topic}: {payload!r}")
                mqtt.publish(topic, payload)
                if topic == BUTTON and trigger_fires(payload):
                    live.model.do("toggle")
                elif topic == TEXT_BUTTON and text_fires(payload):
                    live.model.do("start")
            total += len(presses)
            live.check(0)

        batch()
        live.reset()
    assert total >= TRIGGER_FUZZ_BATCHES * 10
    finish(rig, before)


def wait_online_events(rig: Rig, mqtt: Collector) -> None:
    with Collector(rig.broker, ["relaxd/#"]) as states:
        wait_online(states)
        assert (last_state(states.snapshot()) or {}).get("state") == "idle"
    mqtt.clear()


def finish(rig: Rig, before: dict[str, Any]) -> None:
    """After the fuzzing: alive, answering, the room given back exactly."""
    with Collector(rig.broker, ["relaxd/response/status"]) as mqtt:
        mqtt.publish("relaxd/request/status", json.dumps({"room": "room1", "transaction": "after"}))
        answer = json.loads(mqtt.wait_for_message("relaxd/response/status", timeout_s=5).payload)
    assert answer["transaction"] == "after" and answer["data"]["state"] == "idle"
    same_room(before, rig.before())
    assert rig.stop_daemon() == 0
    assert "Traceback" not in rig.daemon_log()


async def test_a_skip_echoes_its_transaction_in_the_event_it_causes(rig_engine: EngineRig) -> None:
    engine = rig_engine
    await engine.send("start")
    await engine.send("skip", transaction="t-skip")
    assert engine.bus.of("phase_started")[-1]["phase"] == "two"
    assert engine.bus.of("phase_started")[-1].get("transaction") == "t-skip"
    await engine.send("skip")
    await engine.send("skip", transaction="t-last")
    assert engine.bus.of("session_finished")[-1].get("transaction") == "t-last"


@pytest.fixture
async def rig_engine(make_rig: MakeRig) -> EngineRig:
    return make_rig()
