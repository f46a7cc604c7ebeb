"""Simulators answering garbage, truncated or twisted JSON/XML, odd codes: the adapters raise DeviceError only."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import soco
import soco.core
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from relaxd.adapters.hue import HueBridge, HueLights
from relaxd.adapters.sonos import SonosSpeaker
from relaxd.core.ports import DeviceError, LightScene, MusicSource
from relaxd.sim.hue_bridge import HueBridgeSim
from relaxd.sim.hue_model import COLOR_TEMPERATURE, DIMMABLE, EXTENDED_COLOR
from relaxd.sim.sonos_soap import UPnPError, fault_xml
from relaxd.sim.sonos_speaker import ANY_ACTION, SonosSpeakerSim
from tests.reliability import DEVICE_FUZZ_EXAMPLES, TEST_TIMEOUT_S

pytestmark = pytest.mark.timeout(TEST_TIMEOUT_S)

SETTINGS = settings(
    max_examples=DEVICE_FUZZ_EXAMPLES // 2, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
SCENE = LightScene(bri_254=80, ct_mired=455, transition_s=0)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False), st.text(max_size=12)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6,
)
odd_statuses = st.sampled_from([200, 201, 204, 301, 400, 401, 403, 404, 429, 500, 502, 503, 599])
Mangle = Callable[[int, Any], tuple[int, Any]]


@pytest.fixture(autouse=True)
def fresh_soco() -> Iterator[None]:
    """soco keeps one SoCo per ip:port and caches groups; each example gets a new speaker."""
    yield
    forget_soco()


def forget_soco() -> None:
    soco.core._ArgsSingleton._instances.pop("SoCo", None)
    soco.core.SoCo.zone_group_states.clear()


def nth(skip: int, mangle: Mangle) -> tuple[Mangle, list[int]]:
    """A mangle that lets skip answers through untouched and twists the next one."""
    seen = [0]

    def twist(status: int, payload: Any) -> tuple[int, Any]:
        seen[0] += 1
        return (status, payload) if seen[0] <= skip else mangle(status, payload)

    return twist, seen


def twist_inside(value: Any, choices: list[int], new: Any) -> Any:
    """value with one node somewhere inside (found by following choices) replaced by new."""
    if choices and isinstance(value, dict) and value:
        key = sorted(value, key=str)[choices[0] % len(value)]
        return {**value, key: twist_inside(value[key], choices[1:], new)}
    if choices and isinstance(value, list) and value:
        i = choices[0] % len(value)
        return [*value[:i], twist_inside(value[i], choices[1:], new), *value[i + 1 :]]
    return new


@st.composite
def hue_mangles(draw: st.DrawFn) -> Mangle:
    kind = draw(st.sampled_from(["garbage", "truncated", "status", "value", "inside", "inside", "error", "empty"]))
    if kind == "garbage":
        body = draw(st.binary(max_size=60))
        return lambda status, payload: (200, body)
    if kind == "truncated":
        cut = draw(st.floats(0, 0.99))
        return lambda status, payload: (200, json.dumps(payload).encode()[: int(len(json.dumps(payload)) * cut)])
    if kind == "status":
        code = draw(odd_statuses)
        return lambda status, payload: (code, payload)
    if kind == "value":
        value = draw(json_values)
        return lambda status, payload: (200, value)
    if kind == "error":
        error = draw(
            st.fixed_dictionaries(
                {}, optional={"type": json_values, "address": json_values, "description": json_values}
            )
        )
        return lambda status, payload: (200, [{"error": error}])
    if kind == "empty":
        return lambda status, payload: (200, b"")
    # The sneaky kind: a well-formed answer with one value somewhere inside of the wrong shape.
    # (Everything is drawn here: the mangle runs in the simulator's thread.)
    choices, new = draw(st.lists(st.integers(0, 50), max_size=6)), draw(json_values)
    return lambda status, payload: (status, twist_inside(payload, choices, new))


def hue_room() -> HueBridgeSim:
    sim = HueBridgeSim(lights=0)
    a = sim.add_light(EXTENDED_COLOR, "Ceiling", on=True, bri=254, ct=181, colormode="ct")
    b = sim.add_light(EXTENDED_COLOR, "Lamp", on=True, bri=140, xy=[0.2182, 0.1352], colormode="xy")
    c = sim.add_light(DIMMABLE, "Bedside", on=False, bri=200)
    sim.add_light(COLOR_TEMPERATURE, "Hall", on=True, bri=100, ct=300)
    sim.add_group("Massage Room", [a, b, c])
    return sim


def run_guarded(steps: list[tuple[str, Callable[[], Any]]]) -> dict[str, Any]:
    """Run each step; DeviceError is an answer, anything else escapes and fails the test."""
    results: dict[str, Any] = {}
    for name, step in steps:
        try:
            results[name] = step()
        except DeviceError as exc:
            assert exc.message and isinstance(exc.message, str)
            results[name] = exc
    return results


@settings(SETTINGS)
@given(skip=st.integers(0, 14), mangle=hue_mangles(), by_group=st.booleans())
def test_the_hue_adapter_turns_any_bridge_answer_into_device_error(skip: int, mangle: Mangle, by_group: bool) -> None:
    sim = hue_room()
    sim.start()
    try:
        twist, seen = nth(skip, mangle)
        sim.mangle_next(twist, count=skip + 1)
        bridge = HueBridge(sim.address, sim.username, https=False, timeout_s=2)

        def room() -> HueLights:
            return HueLights(bridge, group="Massage Room") if by_group else HueLights(bridge, names=["Ceiling", "Lamp"])

        lights = room()
        results = run_guarded(
            [("check", lights.check), ("snapshot", lights.snapshot), ("apply", lambda: lights.apply(SCENE))]
        )
        snap = results["snapshot"]
        if not isinstance(snap, DeviceError):
            json.dumps(snap)  # what the store writes
            results.update(run_guarded([("restore", lambda: lights.restore(snap))]))
        note(f"answers seen {seen[0]}, results {results}")
        # Once the bridge answers properly again, a new adapter works: nothing was left broken.
        sim.clear_faults()
        fresh = room()
        fresh.check()
        fresh.restore(fresh.snapshot())
    finally:
        sim.stop()


# Simplest first: hypothesis tries the first entries most, and a missing res or title hurts most.
DIDL_TAGS = [
    "res",
    "dc:title",
    "upnp:class",
    "r:resMD",
    "desc",
    "item",
    "container",
    "r:type",
    "upnp:album",
    "dc:creator",
    "r:description",
    "r:ordinal",
]
# Every action the adapter sends in check, snapshot, start_music, set_volume and restore.
SONOS_ACTIONS = [
    "Browse",
    "GetMediaInfo",
    "GetPositionInfo",
    "GetVolume",
    "AddURIToQueue",
    "SetVolume",
    "GetTransportInfo",
    "SetMute",
    "SetAVTransportURI",
    "Play",
    "Seek",
    "GetHouseholdID",
    "GetZoneGroupState",
    "GetMute",
    "GetBass",
    "GetTreble",
    "GetLoudness",
    "GetTransportSettings",
    "GetCrossfadeMode",
    "Pause",
    "RemoveAllTracksFromQueue",
    "SetPlayMode",
    "SetCrossfadeMode",
    "SetBass",
    "SetTreble",
    "SetLoudness",
    ANY_ACTION,
]


def didl_element(tag: str) -> re.Pattern[str]:
    """One escaped DIDL element <tag ...>...</tag> (or <tag .../>) inside a SOAP envelope."""
    name = re.escape(tag)
    return re.compile(rf"&lt;{name}(?:\s(?:(?!&gt;).)*?)?(?:/&gt;|&gt;.*?&lt;/{name}&gt;)", re.S)


def xml_texts(envelope: str) -> list[tuple[int, int]]:
    """Spans of the text between tags in a SOAP envelope (the values soco reads)."""
    return [(m.start(1), m.end(1)) for m in re.finditer(r">([^<]+)<", envelope)]


@st.composite
def sonos_mangles(draw: st.DrawFn) -> Mangle:
    kind = draw(st.sampled_from(["didl", "value", "garbage", "truncated", "status", "upnp", "value", "html", "didl"]))
    if kind == "garbage":
        body = draw(st.binary(max_size=80))
        return lambda status, text: (status, body)
    if kind == "truncated":
        cut = draw(st.floats(0, 0.99))
        return lambda status, text: (status, text[: int(len(text) * cut)])
    if kind == "status":
        code = draw(odd_statuses)
        return lambda status, text: (code, text)
    if kind == "upnp":
        code = draw(st.one_of(st.sampled_from([401, 402, 501, 701, 711, 714, 800, 804]), st.integers(0, 99999)))
        return lambda status, text: (500, fault_xml(UPnPError(code, "fuzzed")))
    if kind == "html":
        return lambda status, text: (500, "<html><body>Internal Server Error</body></html>")
    if kind == "didl":
        # DIDL-Lite (escaped inside the envelope) with one element gone: a title, a res, a class...
        tag, pick = draw(st.sampled_from(DIDL_TAGS)), draw(st.integers(0, 20))

        def drop(status: int, text: str) -> tuple[int, Any]:
            spans = [m.span() for m in didl_element(tag).finditer(text)]
            if not spans:
                return status, text
            start, end = spans[pick % len(spans)]
            return status, text[:start] + text[end:]

        return drop
    # The sneaky kind: the envelope is fine, one value in it is not.
    choice = draw(st.integers(0, 1000))
    new = draw(
        st.one_of(
            st.text(max_size=20),
            st.sampled_from(["-1", "101", "abc", "NOT_IMPLEMENTED", "99:99:99", "&lt;DIDL-Lite&gt;", "1e9", ""]),
        )
    )

    def value(status: int, text: str) -> tuple[int, Any]:
        spans = xml_texts(text)
        if not spans:
            return status, text
        start, end = spans[choice % len(spans)]
        escaped = new.replace("&", "&amp;").replace("<", "&lt;") if "&" not in new else new
        return status, text[:start] + escaped + text[end:]

    return value


@settings(SETTINGS)
@given(action=st.sampled_from(SONOS_ACTIONS), skip=st.integers(0, 3), mangle=sonos_mangles())
def test_the_sonos_adapter_turns_any_speaker_answer_into_device_error(action: str, skip: int, mangle: Mangle) -> None:
    sim = SonosSpeakerSim.demo()
    sim.start()
    speaker = SonosSpeaker(host=sim.address, max_volume=30, timeout_s=2.0)
    try:
        # The skip+1-th answer to action (any action: "*") is twisted.
        twist, seen = nth(skip if action != ANY_ACTION else skip * 12, mangle)
        sim.mangle_next(action, twist, times=(skip if action != ANY_ACTION else skip * 12) + 1)
        results = run_guarded(
            [
                ("check", speaker.check),
                ("snapshot", speaker.snapshot),
                ("music", lambda: speaker.start_music(MusicSource(favorite="Spa Radio"), 20, 0)),
                ("volume", lambda: speaker.set_volume(12, 0)),
            ]
        )
        snap = results["snapshot"]
        if not isinstance(snap, DeviceError):
            json.dumps(snap)
            results.update(run_guarded([("restore", lambda: speaker.restore(snap, 0))]))
        note(f"answers seen {seen[0]}, results {results}")
        speaker.close()
        # Once the speaker answers properly again, a new adapter works.
        sim.clear_faults()
        forget_soco()
        fresh = SonosSpeaker(host=sim.address, max_volume=30, timeout_s=2.0)
        fresh.check()
        fresh.restore(fresh.snapshot(), 0)
        fresh.close()
    finally:
        speaker.close()
        sim.stop()
        forget_soco()


def test_the_fault_knobs_do_what_they_say() -> None:
    with HueBridgeSim(lights=1) as hue:
        bridge = HueBridge(hue.address, hue.username, https=False, timeout_s=2)
        hue.fail_next(body=b"{not json")
        with pytest.raises(DeviceError, match="invalid JSON"):
            bridge.get_lights()
        hue.mangle_next(lambda status, payload: (status, {**payload, "1": "broken"}), path_contains="/lights")
        with pytest.raises(DeviceError, match="unexpected shape: light 1 is not an object"):
            bridge.get_lights()
        assert hue.pending_faults() == 0 and bridge.get_lights()["1"]["name"] == "Light 1"
    with SonosSpeakerSim.demo() as sonos:
        speaker = SonosSpeaker(host=sonos.address, timeout_s=2.0)
        sonos.garble_next("GetVolume", "<s:Envelope><unclosed>", status=200)
        with pytest.raises(DeviceError, match="check"):
            speaker.check()
        sonos.fail_next(ANY_ACTION, 804)
        with pytest.raises(DeviceError, match="UPnP error 804") as info:
            speaker.check()
        assert info.value.code == 804 and sonos.pending_faults() == 0
        speaker.check()


def test_a_sonos_favorite_without_a_resource_is_a_device_error() -> None:
    # Found by the DIDL fuzzing: an IndexError escaped start_music.
    with SonosSpeakerSim.demo() as sim:
        speaker = SonosSpeaker(host=sim.address, timeout_s=2.0)
        sim.mangle_next("Browse", lambda status, text: (status, re.sub(r"&lt;res.*?&lt;/res&gt;", "", text)))
        with pytest.raises(DeviceError, match="no playable resource"):
            speaker.start_music(MusicSource(favorite="Spa Radio"), 20, 0)
        speaker.start_music(MusicSource(favorite="Spa Radio"), 20, 0)
        assert sim.state().volume == 20
        speaker.close()


@pytest.mark.parametrize(
    ("path", "twist", "problem"),
    [
        ("/lights", lambda p: {**p, "1": None}, "light 1 is not an object"),
        ("/lights", lambda p: {**p, "1": {k: v for k, v in p["1"].items() if k != "state"}}, "light 1 has no state"),
        (
            "/lights",
            lambda p: {**p, "1": {**p["1"], "state": {**p["1"]["state"], "bri": "254"}}},
            "light 1: state bri is '254', not a whole number",
        ),
        (
            "/lights",
            lambda p: {**p, "1": {**p["1"], "state": {**p["1"]["state"], "xy": [0.3]}}},
            "light 1: state xy is [0.3], not two numbers",
        ),
        ("/lights", lambda p: {"one": p["1"]}, "light id 'one' is not a number"),
        ("/groups", lambda p: {**p, "1": {**p["1"], "lights": "1,2"}}, "group 1: lights is not a list of light ids"),
    ],
)
def test_what_the_fuzzing_found_in_bridge_answers_is_a_device_error(
    path: str, twist: Callable[[Any], Any], problem: str
) -> None:
    # Shapes the fuzzing produced; several escaped as AttributeError, KeyError or ValueError before.
    with hue_room() as sim:
        lights = HueLights(HueBridge(sim.address, sim.username, https=False, timeout_s=2), group="Massage Room")
        sim.mangle_next(lambda status, payload: (status, twist(payload)), path_contains=path)
        with pytest.raises(DeviceError, match=re.escape(problem)):
            lights.snapshot()
        assert lights.snapshot()["lights"]["1"]["name"] == "Ceiling"
