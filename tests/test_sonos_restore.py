"""The Sonos adapter's snapshot and restore round trips: queues, radio, paused and stopped
speakers, a new process, a retried restore, the snapshot data."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.sonos import SonosSpeaker
from relaxd.core.ports import DeviceError, MusicSource
from relaxd.sim.sonos_speaker import SonosSpeakerSim
from tests.sonos_rig import CALM_FIRST, OCEAN, SPA_RADIO, adapter_for, session, volumes_set

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def sim() -> Iterator[SonosSpeakerSim]:
    with SonosSpeakerSim.demo() as speaker:  # playing its queue, track 2 at 0:41, volume 25
        yield speaker


@pytest.fixture
def speaker(sim: SonosSpeakerSim, calls: BlockingCalls) -> SonosSpeaker:
    return adapter_for(sim, calls)


# --- snapshot and restore round trips ---------------------------------------------------------


async def test_a_playing_queue_comes_back_with_track_position_and_volume_faded_in(
    sim: SonosSpeakerSim, speaker: SonosSpeaker
) -> None:
    before = sim.state()
    data = await session(speaker, MusicSource(playlist="Calm"))
    assert sim.state().queue[0] == CALM_FIRST  # the session really replaced the queue
    assert sim.state().volume == 20  # start_music returned with its ramp done
    began = time.monotonic()
    report = await speaker.restore(data, fade_s=0.3)
    after = sim.state()
    assert (after.uri, after.queue, after.track) == (before.uri, before.queue, 2)
    assert after.transport_state == "PLAYING"
    assert 41 <= after.position_s <= 41 + (time.monotonic() - began) + 1.5
    assert (after.volume, after.mute) == (25, False)
    fade = volumes_set(sim, began)
    assert fade[0] == 0 and fade[-1] == 25 and fade == sorted(fade) and len(fade) >= 3
    assert {"source", "queue", "play_state", "volume", "mute"} <= set(report.restored)
    assert not report.unrestorable and not report.left_alone


async def test_a_radio_station_comes_back_and_the_queue_too(sim: SonosSpeakerSim, speaker: SonosSpeaker) -> None:
    sim.hand_play_uri(SPA_RADIO)
    queue = sim.state().queue
    data = await session(speaker, MusicSource(playlist="Calm"))
    await speaker.restore(data, fade_s=0.1)
    after = sim.state()
    assert (after.uri, after.transport_state, after.queue) == (SPA_RADIO, "PLAYING", queue)


async def test_a_paused_speaker_comes_back_paused_at_its_position(sim: SonosSpeakerSim, speaker: SonosSpeaker) -> None:
    sim.load_queue(track=3, position_s=100, transport_state="PAUSED_PLAYBACK")
    sim.hand_set_mute(False)
    data = await session(speaker, MusicSource(favorite="Spa Radio"))
    report = await speaker.restore(data, fade_s=0.2)
    after = sim.state()
    assert (after.transport_state, after.track, after.uri) == ("PAUSED_PLAYBACK", 3, sim.queue_uri())
    assert 100 <= after.position_s < 101
    assert (after.mute, after.volume) == (False, 25)
    assert "play_state" in report.restored


async def test_a_stopped_speaker_stays_stopped(sim: SonosSpeakerSim, speaker: SonosSpeaker) -> None:
    sim.load_queue(track=1, transport_state="STOPPED")
    data = await session(speaker, MusicSource(uri=OCEAN))
    await speaker.restore(data, fade_s=0.2)
    after = sim.state()
    assert (after.transport_state, after.uri, after.volume) == ("STOPPED", sim.queue_uri(), 25)
    assert not any(c.action == "RampToVolume" for c in sim.requests())


async def test_a_snapshot_restores_from_a_new_process(
    sim: SonosSpeakerSim, speaker: SonosSpeaker, tmp_path: Path
) -> None:
    before = sim.state()
    path = tmp_path / "room.json"
    path.write_text(json.dumps(await speaker.snapshot()))
    await speaker.start_music(MusicSource(playlist="Deep Relaxation"), 12, 0)
    assert sim.state().queue != before.queue
    code = (
        "import asyncio, json, sys\n"
        "from relaxd.adapters.blocking import BlockingCalls\n"
        "from relaxd.adapters.sonos import SonosSpeaker\n"
        "async def main():\n"
        "    calls = BlockingCalls(workers=2)\n"
        "    speaker = SonosSpeaker(host=sys.argv[1], calls=calls)\n"
        "    report = await speaker.restore(json.loads(open(sys.argv[2]).read()), fade_s=0.1)\n"
        "    calls.close()\n"
        "    print(json.dumps(vars(report)))\n"
        "asyncio.run(main())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        sim.address,
        str(path),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    report = json.loads(out.decode().strip().splitlines()[-1])
    after = sim.state()
    assert (after.queue, after.track, after.uri, after.volume) == (before.queue, 2, before.uri, 25)
    assert after.transport_state == "PLAYING" and "queue" in report["restored"]


async def test_a_restore_that_failed_half_way_is_retried_to_the_same_end(
    sim: SonosSpeakerSim, speaker: SonosSpeaker
) -> None:
    before = sim.state()
    data = await session(speaker, MusicSource(favorite="Spa Radio"))
    sim.fail_next("Seek", 501)
    with pytest.raises(DeviceError) as error:
        await speaker.restore(data, fade_s=0.1)
    assert error.value.code == 501 and error.value.device == "speaker"
    report = await speaker.restore(data, fade_s=0.1)
    after = sim.state()
    assert (after.uri, after.queue, after.track, after.volume) == (before.uri, before.queue, 2, 25)
    assert not report.left_alone  # the first attempt's own changes are not a hand


async def test_snapshot_data_holds_every_captured_attribute_and_bad_data_is_a_device_error(
    sim: SonosSpeakerSim, speaker: SonosSpeaker
) -> None:
    data = await speaker.snapshot()
    assert data["format"] == "relaxd-sonos/2"
    (state,) = data["speakers"]
    playback = state["playback"]
    assert (playback["uri"], playback["track"], playback["position"]) == (sim.queue_uri(), 2, "0:00:41")
    assert (state["volume"], playback["transport_state"], playback["play_mode"]) == (25, "PLAYING", "NORMAL")
    assert len(playback["queue"]) == 4 and "Kitchen Disco" in playback["queue"][0]
    assert state["uid"] == sim.uid and state["name"] == "Massage Room"
    assert data["groups"] == [{"coordinator": sim.uid, "members": [sim.uid], "names": {sim.uid: "Massage Room"}}]
    with pytest.raises(DeviceError) as error:
        await speaker.restore({"format": "something else"}, fade_s=0)
    assert "unusable snapshot" in error.value.message
    with pytest.raises(DeviceError) as error:
        await speaker.restore(
            {**data, "speakers": [{**state, "playback": {**playback, "queue": ["<DIDL-Lite><item"]}}]}, 0
        )
    assert "unusable snapshot" in error.value.message
    assert sim.state().volume == 25
