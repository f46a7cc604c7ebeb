"""What a session start costs the speaker: no request that the snapshot already answered."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.sonos import SonosSpeaker
from relaxd.core.ports import DeviceError, MusicSource
from relaxd.sim.sonos_speaker import SonosSpeakerSim


@pytest.fixture
def calls() -> Iterator[BlockingCalls]:
    pool = BlockingCalls(workers=4)
    yield pool
    pool.close()


def favorites_browses(sim: SonosSpeakerSim) -> int:
    return len([c for c in sim.requests("Browse") if c.args.get("ObjectID") == "FV:2"])


async def test_the_favorites_are_browsed_once_for_sessions_close_together(calls: BlockingCalls) -> None:
    with SonosSpeakerSim.demo() as sim:
        speaker = SonosSpeaker(host=sim.address, timeout_s=2.0, calls=calls)
        for _ in range(2):
            data = await speaker.snapshot()
            await speaker.start_music(MusicSource(favorite="Spa Radio"), 12, 0)
            await speaker.restore(data, 0)
        assert favorites_browses(sim) == 1
        with pytest.raises(DeviceError, match="no Sonos favorite called 'Not There'"):
            await speaker.start_music(MusicSource(favorite="Not There"), 12, 0)
        await speaker.start_music(MusicSource(favorite="Spa Radio"), 12, 0)
        assert favorites_browses(sim) == 2  # the failed lookup used the cached list, then forgot it


async def test_unmute_is_sent_only_when_the_speaker_was_muted(calls: BlockingCalls) -> None:
    with SonosSpeakerSim.demo() as sim:
        speaker = SonosSpeaker(host=sim.address, timeout_s=2.0, calls=calls)
        data = await speaker.snapshot()
        sim.clear_requests()
        await speaker.start_music(MusicSource(favorite="Spa Radio"), 12, 0)
        assert sim.requests("SetMute") == [] and sim.state().volume == 12 and not sim.state().mute
        await speaker.restore(data, 0)
        sim.hand_set_mute(True)
        data = await speaker.snapshot()
        sim.clear_requests()
        await speaker.start_music(MusicSource(favorite="Spa Radio"), 12, 0)
        assert [c.args.get("DesiredMute") for c in sim.requests("SetMute")] == ["0"]
        assert not sim.state().mute
        await speaker.restore(data, 0)
        assert sim.state().mute  # and the restore gives the mute back


async def test_the_snapshot_reads_in_parallel_in_the_shared_pool(calls: BlockingCalls) -> None:
    # With every answer 50 ms late, soco's dozen reads one after the other take 0.6 s or more.
    with SonosSpeakerSim.demo() as sim:
        speaker = SonosSpeaker(host=sim.address, timeout_s=2.0, calls=calls)
        await speaker.check()  # the speaker is resolved and the group state read
        threads_before = calls.pool.started_threads
        sim.latency_ms = 50
        loop = asyncio.get_running_loop()
        began = loop.time()
        data = await speaker.snapshot()
        took_s = loop.time() - began
        (state,) = data["speakers"]
        assert state["volume"] == 25 and len(state["playback"]["queue"]) == 4
        assert took_s < 0.45, took_s
        assert calls.pool.started_threads <= 4 and threads_before <= calls.pool.started_threads
