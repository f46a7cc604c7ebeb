"""A room's speaker in a group of other rooms, and rooms of several speakers: the real soco against two
and three simulated speakers of one household; every speaker and the layout are checked at the simulators."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from relaxd.adapters.blocking import BlockingCalls
from relaxd.core.ports import DeviceError, MusicSource
from relaxd.sim.sonos_speaker import SonosSpeakerSim
from tests.sonos_rig import CALM_FIRST, OCEAN, SPA_RADIO, home, room_adapter, session, snapshot_of

CALM = MusicSource(playlist="Calm")


@pytest.fixture
def sims() -> Iterator[tuple[SonosSpeakerSim, SonosSpeakerSim, SonosSpeakerSim]]:
    """Kitchen (its queue, track 2 at 0:41, volume 25), Massage Room and Lounge, one household."""
    kitchen = SonosSpeakerSim.demo(room_name="Kitchen")
    massage = SonosSpeakerSim.demo(room_name="Massage Room")
    lounge = SonosSpeakerSim.demo(room_name="Lounge")
    massage.hand_play_uri(SPA_RADIO)
    massage.hand_set_volume(18)
    lounge.hand_set_mute(True)
    SonosSpeakerSim.household_of(kitchen, massage, lounge)
    with kitchen, massage, lounge:
        yield kitchen, massage, lounge


def non_reads(sim: SonosSpeakerSim, since: float = 0.0) -> list[str]:
    return [c.action for c in sim.requests() if not c.action.startswith("Get") and c.at >= since]


async def test_a_grouped_member_leaves_for_the_session_and_rejoins_with_its_own_volume(
    sims: tuple[SonosSpeakerSim, SonosSpeakerSim, SonosSpeakerSim], calls: BlockingCalls
) -> None:
    kitchen, massage, lounge = sims
    SonosSpeakerSim.group(kitchen, massage)  # the massage room listens to the kitchen's music
    massage.hand_set_volume(18)
    before = home(*sims)
    kitchen_before = kitchen.state()
    speaker = room_adapter(calls, massage, music=CALM)
    data = await session(speaker, CALM)
    during = home(*sims)
    # The kitchen plays on, untouched; only the massage room hears the calm playlist.
    assert during["layout"] == {"Kitchen": ("Kitchen",), "Massage Room": ("Massage Room",), "Lounge": ("Lounge",)}
    assert during["Kitchen"] == before["Kitchen"] and during["Lounge"] == before["Lounge"]
    assert kitchen.state().position_s >= kitchen_before.position_s
    assert during["Massage Room"]["queue"][0] == CALM_FIRST and during["Massage Room"]["volume"] == 20
    assert non_reads(kitchen) == [] and non_reads(lounge) == []
    report = await speaker.restore(data, fade_s=0.2)
    assert home(*sims) == before
    assert massage.state().coordinator_uid == kitchen.uid and massage.state().uri == f"x-rincon:{kitchen.uid}"
    assert kitchen.state().position_s >= kitchen_before.position_s  # no jump back, no gap
    assert non_reads(kitchen) == [] and non_reads(lounge) == []
    assert "group" in report.restored and {"volume", "mute"} <= set(report.restored)


async def test_a_grouped_coordinator_hands_its_group_over_first_and_takes_it_back(
    sims: tuple[SonosSpeakerSim, SonosSpeakerSim, SonosSpeakerSim], calls: BlockingCalls
) -> None:
    kitchen, massage, lounge = sims
    massage.load_queue(track=3, position_s=12.0)  # its everyday queue, for the whole house
    SonosSpeakerSim.group(massage, kitchen, lounge)
    before = home(*sims)
    group_before = lounge.state()
    speaker = room_adapter(calls, massage, music=CALM)
    data = await session(speaker, MusicSource(uri=OCEAN))
    during = home(*sims)
    # Kitchen and lounge play on: the same queue, track and position, under one of them, no gap.
    (new_coordinator,) = [c for c, m in during["layout"].items() if len(m) == 2]
    assert set(during["layout"][new_coordinator]) == {"Kitchen", "Lounge"}
    for name, sim in (("Kitchen", kitchen), ("Lounge", lounge)):
        state = sim.state()
        assert (state.queue, state.track, state.transport_state) == (group_before.queue, 3, "PLAYING")
        assert state.position_s >= group_before.position_s
        assert during[name]["volume"] == before[name]["volume"] and during[name]["mute"] == before[name]["mute"]
    assert massage.state().uri == OCEAN and massage.state().coordinator_uid == massage.uid
    assert "SetAVTransportURI" not in non_reads(kitchen) + non_reads(lounge)  # nobody else got our music
    restore_began = time.monotonic()
    await speaker.restore(data, fade_s=0)
    after = home(*sims)
    assert after == before  # the massage room coordinates its group again, with the group's music
    assert massage.state().position_s >= group_before.position_s
    assert lounge.state().transport_state == "PLAYING"
    # The only command the other rooms got: the one that took over gives the group back.
    assert sorted(non_reads(kitchen, restore_began) + non_reads(lounge, restore_began)) == [
        "DelegateGroupCoordinationTo"
    ]


async def test_several_speakers_of_a_room_are_grouped_ramped_capped_and_given_back(
    sims: tuple[SonosSpeakerSim, SonosSpeakerSim, SonosSpeakerSim], calls: BlockingCalls
) -> None:
    kitchen, massage, lounge = sims
    before = home(*sims)
    speaker = room_adapter(calls, massage, lounge, music=MusicSource(favorite="Spa Radio"))
    data = await speaker.snapshot()
    assert [s["playback"]["queue"] for s in data["speakers"]] == [None, None]  # a stream leaves the queues alone
    await speaker.start_music(MusicSource(favorite="Spa Radio"), 45, 0.3)  # capped at max_volume 30
    during = home(*sims)
    assert during["layout"]["Massage Room"] == ("Massage Room", "Lounge") or set(during["layout"]["Massage Room"]) == {
        "Massage Room",
        "Lounge",
    }
    assert during["Massage Room"]["volume"] == during["Lounge"]["volume"] == 30
    assert not lounge.state().mute and during["Lounge"]["uri"] == f"x-rincon:{massage.uid}"
    for sim in (massage, lounge):
        steps = [int(c.args["DesiredVolume"]) for c in sim.requests("SetVolume")]
        assert steps[0] == 0 and steps[-1] == 30 and steps == sorted(steps) and len(steps) >= 3
    assert during["Kitchen"] == before["Kitchen"] and non_reads(kitchen) == []
    await speaker.set_volume(10, 0)
    assert massage.state().volume == lounge.state().volume == 10
    report = await speaker.restore(data, fade_s=0.2)
    assert home(*sims) == before
    assert {"volume of Massage Room", "volume of Lounge", "source"} <= set(report.restored)
    assert non_reads(kitchen) == []


async def test_a_room_speaker_offline_at_restore_is_restored_when_it_is_back(
    sims: tuple[SonosSpeakerSim, SonosSpeakerSim, SonosSpeakerSim], calls: BlockingCalls
) -> None:
    kitchen, massage, lounge = sims
    SonosSpeakerSim.group(kitchen, lounge)  # the lounge listens to the kitchen
    before = home(*sims)
    speaker = room_adapter(calls, massage, lounge, music=CALM)
    data = await session(speaker, CALM)
    assert set(home(*sims)["layout"]["Massage Room"]) == {"Massage Room", "Lounge"}
    lounge.stop()  # unreachable: the network, or a power cut
    with pytest.raises(DeviceError) as error:
        await speaker.restore(data, fade_s=0)
    assert lounge.address in error.value.message
    assert massage.state().uri == SPA_RADIO and massage.state().volume == 18  # the rest is back already
    assert snapshot_of(kitchen) == before["Kitchen"]
    lounge.start()
    await speaker.restore(data, fade_s=0)
    assert home(*sims) == before


async def test_the_group_s_coordinator_gone_the_member_rejoins_whoever_plays_on(
    sims: tuple[SonosSpeakerSim, SonosSpeakerSim, SonosSpeakerSim], calls: BlockingCalls
) -> None:
    kitchen, massage, lounge = sims
    SonosSpeakerSim.group(kitchen, massage, lounge)
    speaker = room_adapter(calls, massage, music=CALM)
    data = await session(speaker, CALM)
    group_music = kitchen.state()
    kitchen.power_off()  # the kitchen speaker is unplugged: the lounge goes on with the music
    assert lounge.layout()[lounge.uid] == (lounge.uid,) and lounge.state().queue == group_music.queue
    await speaker.restore(data, fade_s=0)
    assert lounge.layout() == {lounge.uid: (lounge.uid, massage.uid)}
    assert massage.state().uri == f"x-rincon:{lounge.uid}" and massage.state().volume == 18
    assert lounge.state().transport_state == "PLAYING" and lounge.state().track == group_music.track


async def test_without_music_the_layout_is_left_alone_and_only_volumes_follow(
    sims: tuple[SonosSpeakerSim, SonosSpeakerSim, SonosSpeakerSim], calls: BlockingCalls
) -> None:
    kitchen, massage, lounge = sims
    massage.load_queue(track=3, position_s=12.0)
    SonosSpeakerSim.group(massage, kitchen)  # the room's speaker coordinates the kitchen
    before = home(*sims)
    speaker = room_adapter(calls, massage, lounge)
    data = await speaker.snapshot()
    await speaker.set_volume(10, 0)  # a phase of a room without music: volumes only
    assert (massage.state().volume, lounge.state().volume, kitchen.state().volume) == (10, 10, 25)
    assert home(*sims)["layout"] == before["layout"]
    await speaker.restore(data, fade_s=0.2)
    assert home(*sims) == before
    assert kitchen.state().position_s >= 12.0  # the group's music was not rewound
    assert non_reads(kitchen) == []
    changes = {c for sim in (massage, lounge) for c in non_reads(sim)}
    assert not changes & {"BecomeCoordinatorOfStandaloneGroup", "DelegateGroupCoordinationTo"}
    joins = [c for sim in sims for c in sim.requests("SetAVTransportURI") if "x-rincon:" in c.args["CurrentURI"]]
    assert joins == []
    # the coordinator of the kitchen's group: its volume for the phase, then its own sound back, no music
    assert [c for c in non_reads(massage) if c != "Browse"] == [
        "SetVolume",
        *("SetMute", "SetBass", "SetTreble", "SetLoudness", "SetVolume"),
    ]


async def test_a_second_speaker_unreachable_at_the_start_joins_the_session_when_it_is_back(
    sims: tuple[SonosSpeakerSim, SonosSpeakerSim, SonosSpeakerSim], calls: BlockingCalls
) -> None:
    kitchen, massage, lounge = sims
    SonosSpeakerSim.group(kitchen, lounge)
    before = home(*sims)
    speaker = room_adapter(calls, massage, lounge, music=CALM)
    data = await speaker.snapshot()
    lounge.stop()
    with pytest.raises(DeviceError) as error:
        await speaker.start_music(CALM, 20, 0)
    assert lounge.address in error.value.message
    assert massage.state().queue[0] == CALM_FIRST and massage.state().volume == 20  # the room has its music
    with pytest.raises(DeviceError):
        await speaker.check()  # the core retries the room's speaker until every one of them answers
    lounge.start()
    await speaker.check()
    await speaker.set_volume(14, 0)  # the retried phase: the lounge joins the room's group at its volume
    assert massage.layout()[massage.uid] == (massage.uid, lounge.uid)
    assert (massage.state().volume, lounge.state().volume) == (14, 14) and kitchen.state().volume == 25
    await speaker.restore(data, fade_s=0)
    assert home(*sims) == before
