"""The simulated Sonos speaker plays as a real one: position and queue over time, volume ramps,
favorites, playlists and soco's snapshot."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
from soco.snapshot import Snapshot

from relaxd.sim.sonos_speaker import SonosSpeakerSim
from tests.sonos_rig import SPA_RADIO, FakeClock, device

T = TypeVar("T")


@pytest.fixture
def sim() -> Iterator[SonosSpeakerSim]:
    with SonosSpeakerSim.demo() as speaker:
        yield speaker


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def timed(clock: FakeClock) -> Iterator[SonosSpeakerSim]:
    with SonosSpeakerSim(clock=clock) as speaker:
        yield speaker


def wait_for(probe: Callable[[], T], timeout_s: float = 3.0) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {timeout_s} s")
        time.sleep(0.005)


# --- time: position and ramps -----------------------------------------------------------------


def test_position_advances_while_playing_and_holds_while_paused(timed: SonosSpeakerSim, clock: FakeClock) -> None:
    timed.load_queue(track=1, position_s=10)
    player = device(timed)
    clock.now_s += 65
    info = player.get_current_track_info()
    assert (info["playlist_position"], info["position"]) == ("1", "0:01:15")
    player.pause()
    clock.now_s += 30
    assert player.get_current_track_info()["position"] == "0:01:15"
    player.play()
    clock.now_s += 5
    assert player.get_current_track_info()["position"] == "0:01:20"


def test_the_queue_moves_on_and_stops_at_its_end(timed: SonosSpeakerSim, clock: FakeClock) -> None:
    timed.load_queue(track=3, position_s=220)  # Rainy Bus, 224 s long
    player = device(timed)
    clock.now_s += 10
    info = player.get_current_track_info()
    assert (info["playlist_position"], info["position"], info["title"]) == ("4", "0:00:06", "Late Train")
    clock.now_s += 300
    assert player.get_current_transport_info()["current_transport_state"] == "STOPPED"
    assert timed.state().track == 1 and timed.state().position_s == 0


def test_position_advances_on_the_real_clock(sim: SonosSpeakerSim) -> None:
    start_s = sim.state().position_s
    wait_for(lambda: device(sim).get_current_track_info()["position"] != "0:00:41", 3.0)
    assert sim.state().position_s > start_s + 0.9


def test_ramp_types_follow_soco_s_documented_rates(timed: SonosSpeakerSim, clock: FakeClock) -> None:
    player = device(timed)
    player.volume = 20
    assert player.ramp_to_volume(30) == 8  # SLEEP_TIMER: 1.25 steps/s from the current volume
    clock.now_s += 4
    assert player.volume == 25
    clock.now_s += 4
    assert player.volume == 30
    assert player.ramp_to_volume(30, "ALARM_RAMP_TYPE") == 12  # from 0, 2.5 steps/s
    assert player.volume == 0
    clock.now_s += 6
    assert player.volume == 15
    player.volume = 7  # a SetVolume ends a ramp
    clock.now_s += 60
    assert player.volume == 7


def test_autoplay_ramp_really_ramps(sim: SonosSpeakerSim) -> None:
    player = device(sim)
    assert player.ramp_to_volume(30, "AUTOPLAY_RAMP_TYPE") == 0  # 0.6 s, rounded down
    seen = set()

    def reached() -> bool:
        seen.add(player.volume)
        return 30 in seen

    wait_for(reached)
    assert any(0 < v < 30 for v in seen), seen
    assert not sim.state().ramping


# --- content: favorites, playlists, queue -----------------------------------------------------


def test_favorites_browse_is_parsed_by_soco_and_plays(sim: SonosSpeakerSim) -> None:
    player = device(sim)
    favorites = {f.title: f for f in player.music_library.get_sonos_favorites()}
    assert list(favorites) == ["Spa Radio", "Ocean Waves", "Calm"]
    radio = favorites["Spa Radio"]
    assert radio.reference.item_class == "object.item.audioItem.audioBroadcast"
    assert radio.reference.resources[0].uri == SPA_RADIO
    assert favorites["Calm"].reference.item_class == "object.container.playlistContainer"
    player.play_uri(radio.reference.resources[0].uri, radio.resource_meta_data)
    assert sim.state().uri == SPA_RADIO and sim.state().transport_state == "PLAYING"
    assert player.get_current_media_info()["channel"] == "Spa Radio"


def test_a_sonos_playlist_goes_into_the_queue(sim: SonosSpeakerSim) -> None:
    player = device(sim)
    playlists = {p.title: p for p in player.get_sonos_playlists()}
    assert set(playlists) == {"Calm", "Deep Relaxation"}
    player.clear_queue()
    assert player.add_to_queue(playlists["Calm"]) == 1
    assert [t.title for t in player.get_queue()] == ["Morning Mist", "Slow Tide", "Warm Stones", "Cedar Breath"]
    assert player.queue_size == 4
    player.play_from_queue(2)
    info = player.get_current_track_info()
    assert (info["playlist_position"], info["title"]) == ("3", "Warm Stones")


def test_soco_snapshot_sends_what_the_reference_lists(sim: SonosSpeakerSim) -> None:
    player = device(sim)
    assert player.is_coordinator  # group state first, as snapshot() reads it
    sim.clear_requests()
    Snapshot(player, snapshot_queue=True).snapshot()
    assert [c.action for c in sim.requests()] == [
        "GetMediaInfo",
        "GetVolume",
        "GetMute",
        "GetBass",
        "GetTreble",
        "GetLoudness",
        "GetTransportSettings",
        "GetCrossfadeMode",
        "GetPositionInfo",
        "GetTransportInfo",
        "Browse",
    ]
    browse = sim.requests("Browse")[0]
    assert (browse.service, browse.args["ObjectID"], browse.args["RequestedCount"]) == (
        "ContentDirectory",
        "Q:0",
        "400",
    )
