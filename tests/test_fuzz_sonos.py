"""The simulated speaker answering garbage, truncated or twisted XML, odd codes: the adapter raises DeviceError only."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import soco
import soco.core
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.sonos import SonosSpeaker
from relaxd.core.ports import DeviceError, MusicSource
from relaxd.sim.sonos_soap import UPnPError, fault_xml
from relaxd.sim.sonos_speaker import ANY_ACTION, SonosSpeakerSim
from tests.reliability import DEVICE_FUZZ_EXAMPLES, TEST_TIMEOUT_S

pytestmark = pytest.mark.timeout(TEST_TIMEOUT_S)

SETTINGS = settings(
    max_examples=DEVICE_FUZZ_EXAMPLES // 2, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
odd_statuses = st.sampled_from([200, 201, 204, 301, 400, 401, 403, 404, 429, 500, 502, 503, 599])
Mangle = Callable[[int, Any], tuple[int, Any]]


@pytest.fixture
def calls() -> Iterator[BlockingCalls]:
    pool = BlockingCalls(workers=4)
    yield pool
    pool.close()


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


async def run_guarded(steps: list[tuple[str, Callable[[], Awaitable[Any]]]]) -> dict[str, Any]:
    """Run each step; DeviceError is an answer, anything else escapes and fails the test."""
    results: dict[str, Any] = {}
    for name, step in steps:
        try:
            results[name] = await step()
        except DeviceError as exc:
            assert exc.message and isinstance(exc.message, str)
            results[name] = exc
    return results


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
async def test_the_sonos_adapter_turns_any_speaker_answer_into_device_error(
    calls: BlockingCalls, action: str, skip: int, mangle: Mangle
) -> None:
    sim = SonosSpeakerSim.demo()
    sim.start()
    speaker = SonosSpeaker(host=sim.address, max_volume=30, timeout_s=2.0, calls=calls)
    try:
        # The skip+1-th answer to action (any action: "*") is twisted.
        twist, seen = nth(skip if action != ANY_ACTION else skip * 12, mangle)
        sim.mangle_next(action, twist, times=(skip if action != ANY_ACTION else skip * 12) + 1)
        results = await run_guarded(
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
            results.update(await run_guarded([("restore", lambda: speaker.restore(snap, 0))]))
        note(f"answers seen {seen[0]}, results {results}")
        # Once the speaker answers properly again, a new adapter works.
        sim.clear_faults()
        forget_soco()
        fresh = SonosSpeaker(host=sim.address, max_volume=30, timeout_s=2.0, calls=calls)
        await fresh.check()
        await fresh.restore(await fresh.snapshot(), 0)
    finally:
        sim.stop()
        forget_soco()


async def test_the_sonos_fault_knobs_do_what_they_say(calls: BlockingCalls) -> None:
    with SonosSpeakerSim.demo() as sonos:
        speaker = SonosSpeaker(host=sonos.address, timeout_s=2.0, calls=calls)
        sonos.garble_next("GetVolume", "<s:Envelope><unclosed>", status=200)
        with pytest.raises(DeviceError, match="check"):
            await speaker.check()
        sonos.fail_next(ANY_ACTION, 804)
        with pytest.raises(DeviceError, match="UPnP error 804") as info:
            await speaker.check()
        assert info.value.code == 804 and sonos.pending_faults() == 0
        await speaker.check()


async def test_a_sonos_favorite_without_a_resource_is_a_device_error(calls: BlockingCalls) -> None:
    # Found by the DIDL fuzzing: an IndexError escaped start_music.
    with SonosSpeakerSim.demo() as sim:
        speaker = SonosSpeaker(host=sim.address, timeout_s=2.0, calls=calls)
        sim.mangle_next("Browse", lambda status, text: (status, re.sub(r"&lt;res.*?&lt;/res&gt;", "", text)))
        with pytest.raises(DeviceError, match="no playable resource"):
            await speaker.start_music(MusicSource(favorite="Spa Radio"), 20, 0)
        await speaker.start_music(MusicSource(favorite="Spa Radio"), 20, 0)
        assert sim.state().volume == 20
