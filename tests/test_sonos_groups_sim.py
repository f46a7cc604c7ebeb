"""The simulated household's zone groups as soco drives them: join, leave, delegation, a speaker unplugged,
AddMultipleURIsToQueue; and the queue of a long session restored within its stated bound."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import soco.core
from soco.exceptions import SoCoUPnPException

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.sonos import SonosSpeaker
from relaxd.adapters.sonos.snapshot import ADD_BATCH, MAX_QUEUE_TRACKS
from relaxd.core.ports import MusicSource
from relaxd.sim.sonos_speaker import SonosSpeakerSim
from tests.sonos_rig import device, session


@pytest.fixture
def trio() -> Iterator[tuple[SonosSpeakerSim, SonosSpeakerSim, SonosSpeakerSim]]:
    a, b, c = (SonosSpeakerSim.demo(room_name=n) for n in ("A", "B", "C"))
    SonosSpeakerSim.household_of(a, b, c)
    with a, b, c:
        yield a, b, c


def test_join_and_unjoin_through_soco_change_the_zone_group_state(
    trio: tuple[SonosSpeakerSim, SonosSpeakerSim, SonosSpeakerSim],
) -> None:
    a, b, c = trio
    device(b).join(device(a))
    device(c).join(device(b))  # naming a member joins its group
    assert a.layout() == {a.uid: (a.uid, b.uid, c.uid)}
    assert {m.uid for m in device(a).group.members} == {a.uid, b.uid, c.uid}
    assert b.state().uri == f"x-rincon:{a.uid}" and b.state().queue == a.state().queue
    assert (b.state().volume, c.state().volume) == (25, 25)  # volume is each member's own
    device(b).volume = 7
    assert (a.state().volume, b.state().volume) == (25, 7)
    device(b).unjoin()
    assert b.layout()[b.uid] == (b.uid,) and b.state().transport_state == "STOPPED"
    assert a.state().transport_state == "PLAYING"  # the group plays on without it


def test_delegation_moves_the_playback_without_a_gap(
    trio: tuple[SonosSpeakerSim, SonosSpeakerSim, SonosSpeakerSim],
) -> None:
    a, b, c = trio
    SonosSpeakerSim.group(a, b, c)
    before = a.state()
    device(a).avTransport.DelegateGroupCoordinationTo(
        [("InstanceID", 0), ("NewCoordinator", b.uid), ("RejoinGroup", "1")]
    )
    assert a.layout() == {b.uid: (b.uid, a.uid, c.uid)}
    after = b.state()
    assert (after.queue, after.track, after.transport_state) == (before.queue, 2, "PLAYING")
    assert after.uri == b.queue_uri() and after.position_s >= before.position_s
    with pytest.raises(SoCoUPnPException) as error:  # a member cannot hand over what it does not hold
        device(c).avTransport.DelegateGroupCoordinationTo(
            [("InstanceID", 0), ("NewCoordinator", a.uid), ("RejoinGroup", "0")]
        )
    assert str(error.value.error_code) == "701"
    out = device(b).avTransport.BecomeCoordinatorOfStandaloneGroup([("InstanceID", 0)])
    assert out["DelegatedGroupCoordinatorID"] in (a.uid, c.uid)  # a coordinator leaving hands over
    soco.core.SoCo.zone_group_states.clear()
    assert b.layout()[b.uid] == (b.uid,) and not device(b).group.members - {device(b)}


def test_an_unplugged_coordinator_leaves_its_group_playing_under_a_member(
    trio: tuple[SonosSpeakerSim, SonosSpeakerSim, SonosSpeakerSim],
) -> None:
    a, b, c = trio
    SonosSpeakerSim.group(a, b)
    queue = a.state().queue
    a.power_off()
    assert b.layout() == {b.uid: (b.uid,), c.uid: (c.uid,)}  # a is gone from the zone group state
    assert b.state().queue == queue and b.state().transport_state == "PLAYING"
    with pytest.raises(SoCoUPnPException) as error:  # nobody can join a speaker that is not there
        device(c).avTransport.SetAVTransportURI(
            [("InstanceID", 0), ("CurrentURI", f"x-rincon:{a.uid}"), ("CurrentURIMetaData", "")]
        )
    assert str(error.value.error_code) == "402" and c.layout()[c.uid] == (c.uid,)
    a.power_on()
    assert a.uid in b.layout() and a.state().transport_state == "STOPPED"


def test_add_multiple_uris_takes_sixteen_tracks_a_request(
    trio: tuple[SonosSpeakerSim, SonosSpeakerSim, SonosSpeakerSim],
) -> None:
    a, _, _ = trio
    player = device(a)
    items = list(player.get_queue())
    player.clear_queue()
    player.add_multiple_to_queue(items * 5)
    assert len(a.state().queue) == 20 and len(a.requests("AddMultipleURIsToQueue")) == 2
    assert a.state().queue[:4] == tuple(i.resources[0].uri for i in items)


async def test_a_long_queue_is_saved_as_a_window_and_restored_in_batches(calls: BlockingCalls) -> None:
    with SonosSpeakerSim.demo() as sim:
        pop = [t.uri for t in sim.library.tracks if "/Music/Pop/" in t.uri]
        uris = [f"{pop[i % len(pop)]}?n={i}" for i in range(1500)]
        sim.load_queue(uris, track=1200, position_s=30)
        speaker = SonosSpeaker(host=sim.address, timeout_s=2.0, calls=calls, music=MusicSource(playlist="Calm"))
        data = await session(speaker, MusicSource(playlist="Calm"))
        playback = data["speakers"][0]["playback"]
        assert (playback["queue_start"], playback["queue_total"]) == (500, 1500)
        assert len(playback["queue"]) == MAX_QUEUE_TRACKS
        sim.clear_requests()
        report = await speaker.restore(data, fade_s=0)
        after = sim.state()
        assert after.queue == tuple(uris[500:1500]) and after.track == 700 and after.track_uri == uris[1199]
        assert 30 <= after.position_s < 32 and after.transport_state == "PLAYING"
        adds = len(sim.requests("AddMultipleURIsToQueue"))
        assert adds == -(-MAX_QUEUE_TRACKS // ADD_BATCH) == 63 and not sim.requests("AddURIToQueue")
        assert len(sim.requests()) <= 63 + 30  # the stated bound: 63 adds and a few dozen others
        assert "1000 of its 1500 tracks, from track 501" in report.unrestorable["queue"]
