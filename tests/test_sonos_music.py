"""The Sonos adapter playing relaxd's music: favorites, playlists, volume ramps, speakers found by
name or grouped; and never fighting a hand in the Sonos app."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
import soco
import soco.core

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.sonos import SonosSpeaker
from relaxd.core.ports import DeviceError, MusicSource
from relaxd.sim.sonos_speaker import SonosSpeakerSim
from tests.sonos_rig import CALM_FIRST, OCEAN, SPA_RADIO, adapter_for, session, volumes_set

T = TypeVar("T")


@pytest.fixture
def sim() -> Iterator[SonosSpeakerSim]:
    with SonosSpeakerSim.demo() as speaker:  # playing its queue, track 2 at 0:41, volume 25
        yield speaker


@pytest.fixture
def speaker(sim: SonosSpeakerSim, calls: BlockingCalls) -> SonosSpeaker:
    return adapter_for(sim, calls)


async def wait_for(probe: Callable[[], T], timeout_s: float = 3.0) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {timeout_s} s")
        await asyncio.sleep(0.005)


# --- music and volume -------------------------------------------------------------------------


async def test_a_favorite_is_found_and_played_on_a_ramp_capped_at_max_volume(
    sim: SonosSpeakerSim, speaker: SonosSpeaker
) -> None:
    await speaker.snapshot()
    began = time.monotonic()
    seen: set[int] = set()

    async def watch() -> None:
        while True:
            seen.add(sim.state().volume)
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    await speaker.start_music(MusicSource(favorite="Spa Radio"), 40, 0.6)
    watcher.cancel()
    took_s = time.monotonic() - began
    state = sim.state()
    assert (state.uri, state.transport_state, state.mute, state.volume) == (SPA_RADIO, "PLAYING", False, 30)
    assert "Spa Radio" in state.uri_metadata
    assert 0.55 < took_s < 1.5  # it returned when the ramp was done
    assert any(0 < v < 30 for v in seen), seen
    ramp = volumes_set(sim, began)
    assert ramp[0] == 0 and ramp == sorted(ramp) and max(ramp) == 30  # never above max_volume


async def test_a_playlist_favorite_plays_from_the_queue(sim: SonosSpeakerSim, speaker: SonosSpeaker) -> None:
    await speaker.start_music(MusicSource(favorite="calm"), 10, 0)  # titles match ignoring case
    state = sim.state()
    assert (state.uri, state.track_uri, len(state.queue)) == (sim.queue_uri(), CALM_FIRST, 4)
    assert state.volume == 10


async def test_an_unknown_favorite_names_what_exists_and_changes_nothing(
    sim: SonosSpeakerSim, speaker: SonosSpeaker
) -> None:
    with pytest.raises(DeviceError) as error:
        await speaker.start_music(MusicSource(favorite="Whale Song"), 10, 0)
    assert "Whale Song" in error.value.message and "'Spa Radio'" in error.value.message
    with pytest.raises(DeviceError) as error:
        await speaker.start_music(MusicSource(playlist="Jazz"), 10, 0)
    assert "'Calm'" in error.value.message and "'Deep Relaxation'" in error.value.message
    with pytest.raises(DeviceError, match="exactly one of"):
        await speaker.start_music(MusicSource(favorite="Calm", uri=OCEAN), 10, 0)
    assert (sim.state().volume, sim.state().uri) == (25, sim.queue_uri())


async def test_set_volume_ramps_down_and_caps_a_jump_up(sim: SonosSpeakerSim, speaker: SonosSpeaker) -> None:
    await session(speaker, MusicSource(uri=OCEAN), volume=20)
    began = time.monotonic()
    await speaker.set_volume(10, 0.3)
    assert sim.state().volume == 10  # returned with the ramp done
    down = volumes_set(sim, began)
    assert down == sorted(down, reverse=True) and len(down) >= 3 and down[-1] == 10
    await speaker.set_volume(80, 0)
    assert sim.state().volume == 30


async def test_a_speaker_configured_by_room_name_is_found_by_name_on_first_use(
    sim: SonosSpeakerSim, calls: BlockingCalls
) -> None:
    asked: list[str] = []

    def by_name(name: str) -> soco.SoCo | None:  # stands in for the multicast search (never in tests)
        asked.append(name)
        return soco.SoCo(sim.host, sim.port) if name == "Massage Room" else None

    adapter = SonosSpeaker(name="Massage Room", timeout_s=2.0, calls=calls, find_by_name=by_name)
    assert asked == []
    await adapter.set_volume(14, 0)
    assert sim.state().volume == 14 and asked == ["Massage Room"]
    await adapter.check()
    assert asked == ["Massage Room"]  # found once, then kept
    with pytest.raises(DeviceError) as error:
        await SonosSpeaker(name="Attic", calls=calls, find_by_name=by_name).check()
    assert "no Sonos speaker named 'Attic'" in error.value.message


# --- not fighting the user --------------------------------------------------------------------


async def test_a_volume_changed_by_hand_is_kept_by_set_volume_and_restore(
    sim: SonosSpeakerSim, speaker: SonosSpeaker
) -> None:
    before = sim.state()
    data = await session(speaker, MusicSource(favorite="Spa Radio"))
    sim.hand_set_volume(27)
    await speaker.set_volume(5, 0)
    await speaker.set_volume(12, 0.2)
    assert sim.state().volume == 27
    report = await speaker.restore(data, fade_s=0.2)
    after = sim.state()
    assert after.volume == 27 and "volume" in report.left_alone
    assert (after.uri, after.track) == (before.uri, 2)  # the music itself did come back
    assert "source" in report.restored


async def test_a_hand_on_the_volume_stops_a_running_ramp(sim: SonosSpeakerSim, speaker: SonosSpeaker) -> None:
    began = time.monotonic()
    music = asyncio.create_task(speaker.start_music(MusicSource(uri=OCEAN), 30, 1.5))
    # just after a step, so that no step of the ramp is under way when the hand comes
    await wait_for(lambda: len(volumes_set(sim, began)) >= 3, timeout_s=0.5)
    sim.hand_set_volume(3)
    touched = time.monotonic()
    # the ramp's next step reads the volume, sees the hand and stops without writing
    await asyncio.wait_for(music, 1.0)  # start_music returns: the ramp is over
    assert any(c.at > touched for c in sim.requests("GetVolume"))
    assert time.monotonic() - touched < 0.5
    assert volumes_set(sim, touched) == [] and sim.state().volume == 3


async def test_the_next_operation_ends_a_running_ramp_at_its_next_step(
    sim: SonosSpeakerSim, speaker: SonosSpeaker
) -> None:
    await session(speaker, MusicSource(uri=OCEAN), volume=20)
    ramp = asyncio.create_task(speaker.set_volume(5, 10.0))  # a long ramp nobody cancels
    await wait_for(lambda: sim.state().volume < 20)
    began = time.monotonic()
    await speaker.set_volume(24, 0)  # the next phase does not wait ten seconds
    assert time.monotonic() - began < 0.5 and ramp.done() and ramp.exception() is None
    await asyncio.sleep(0.3)
    assert sim.state().volume == 24


async def test_music_changed_by_hand_is_left_playing(sim: SonosSpeakerSim, speaker: SonosSpeaker) -> None:
    data = await session(speaker, MusicSource(favorite="Spa Radio"))
    sim.hand_play_uri(OCEAN)
    await speaker.set_volume(5, 0)
    report = await speaker.restore(data, fade_s=0.1)
    after = sim.state()
    assert (after.uri, after.transport_state, after.volume) == (OCEAN, "PLAYING", 20)
    assert "source" in report.left_alone and not report.restored
