"""The Sonos adapter with the real soco against the simulated speaker on 127.0.0.1."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import soco
import soco.core
from hypothesis import given
from hypothesis import strategies as st

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.sonos import SonosSpeaker, ramp_steps
from relaxd.core.ports import DeviceError, MusicSource, SnapshotData, Speaker
from relaxd.sim.sonos_speaker import SonosSpeakerSim

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[1]
SPA_RADIO = "x-sonosapi-stream:s24146?sid=254&flags=8224&sn=0"
OCEAN = "x-file-cifs://nas/Music/Nature/Ocean%20Waves.flac"
CALM_FIRST = "x-file-cifs://nas/Music/Calm/Morning%20Mist.flac"


@pytest.fixture
def calls() -> Iterator[BlockingCalls]:
    pool = BlockingCalls(workers=4)
    yield pool
    pool.close()


@pytest.fixture
def sim() -> Iterator[SonosSpeakerSim]:
    with SonosSpeakerSim.demo() as speaker:  # playing its queue, track 2 at 0:41, volume 25
        yield speaker


@pytest.fixture
def speaker(sim: SonosSpeakerSim, calls: BlockingCalls) -> SonosSpeaker:
    return SonosSpeaker(host=sim.address, max_volume=30, timeout_s=2.0, calls=calls)


async def wait_for(probe: Callable[[], T], timeout_s: float = 3.0) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {timeout_s} s")
        await asyncio.sleep(0.005)


def volumes_set(sim: SonosSpeakerSim, since: float = 0.0) -> list[int]:
    return [int(c.args["DesiredVolume"]) for c in sim.requests("SetVolume") if c.at >= since]


async def session(speaker: SonosSpeaker, source: MusicSource, volume: int = 20) -> SnapshotData:
    """Snapshot, then start relaxd's music; start_music returns once its ramp is done."""
    data: SnapshotData = json.loads(json.dumps(await speaker.snapshot()))  # as the store keeps it
    await speaker.start_music(source, volume, 0.1)
    return data


async def test_the_adapter_has_the_speaker_port_s_methods_and_construction_does_no_io(
    calls: BlockingCalls,
) -> None:
    adapter: Speaker = SonosSpeaker(host="127.0.0.1:9", calls=calls)  # nothing listens there: no I/O yet
    for name in ("snapshot", "start_music", "set_volume", "restore", "check"):
        port_method = inspect.signature(getattr(Speaker, name))
        assert inspect.signature(getattr(SonosSpeaker, name)).parameters.keys() == (port_method.parameters.keys()), name
        assert inspect.iscoroutinefunction(getattr(SonosSpeaker, name)), name
    with pytest.raises(DeviceError):
        await adapter.check()


def test_ramp_steps_are_linear_and_at_most_ten_a_second() -> None:
    assert ramp_steps(0, 20, 0.5) == [(0.1, 4), (0.2, 8), (0.3, 12), (0.4, 16), (0.5, 20)]
    assert ramp_steps(10, 7, 30.0) == [(10.0, 9), (20.0, 8), (30.0, 7)]
    assert ramp_steps(5, 5, 1.0) == []


@given(st.integers(0, 100), st.integers(0, 100), st.floats(0, 120))
def test_a_ramp_never_overshoots_and_ends_on_time_at_its_target(start: int, target: int, ramp_s: float) -> None:
    steps = ramp_steps(start, target, ramp_s)
    if start == target:
        assert steps == []
        return
    times, values = [t for t, _ in steps], [v for _, v in steps]
    assert values[-1] == target and times[-1] == pytest.approx(ramp_s)
    assert values == (sorted(values) if target > start else sorted(values, reverse=True))
    assert all(min(start, target) <= v <= max(start, target) for v in values)
    assert len(steps) <= max(1, ramp_s * 10 + 1e-6)


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
    state = data["state"]
    assert (state["media_uri"], state["playlist_position"], state["track_position"]) == (sim.queue_uri(), 2, "0:00:41")
    assert (state["volume"], state["transport_state"], state["play_mode"]) == (25, "PLAYING", "NORMAL")
    assert len(data["queue"]) == 4 and "Kitchen Disco" in data["queue"][0]
    assert data["coordinator_uid"] == sim.uid
    with pytest.raises(DeviceError) as error:
        await speaker.restore({"format": "something else"}, fade_s=0)
    assert "unusable snapshot" in error.value.message
    with pytest.raises(DeviceError) as error:
        await speaker.restore({**data, "queue": ["<DIDL-Lite><item"]}, fade_s=0)
    assert "unusable snapshot" in error.value.message
    assert sim.state().volume == 25


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


async def test_a_grouped_speaker_is_driven_through_its_coordinator(calls: BlockingCalls) -> None:
    with SonosSpeakerSim(room_name="Lounge") as lead, SonosSpeakerSim() as room:
        SonosSpeakerSim.group(lead, room)
        adapter = SonosSpeaker(host=room.address, timeout_s=2.0, calls=calls)
        data = await adapter.snapshot()
        await adapter.start_music(MusicSource(uri=OCEAN), 15, 0)
        assert (lead.state().uri, lead.state().transport_state) == (OCEAN, "PLAYING")
        assert room.state().uri == f"x-rincon:{lead.uid}"
        assert lead.state().volume == 15
        assert not room.requests("SetAVTransportURI") and not room.requests("SetVolume")
        assert data["coordinator_uid"] == lead.uid
        await adapter.restore(data, fade_s=0)
        assert (lead.state().transport_state, lead.state().volume) == ("STOPPED", 20)


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


# --- what cannot be restored, and failures ----------------------------------------------------


async def test_a_spotify_connect_source_is_reported_while_the_rest_is_restored(
    sim: SonosSpeakerSim, speaker: SonosSpeaker
) -> None:
    sim.start_cloud_queue("spotify")
    sim.hand_set_mute(True)
    sim.hand_set_volume(33)
    data = await session(speaker, MusicSource(favorite="Spa Radio"))
    assert not sim.state().mute
    report = await speaker.restore(data, fade_s=0.2)
    after = sim.state()
    assert "cloud queue" in report.unrestorable["source"]
    assert "402" in report.unrestorable["source"]
    assert (after.volume, after.mute) == (33, True)  # restore is not capped: it was 33
    assert after.transport_state != "PLAYING"  # relaxd's music does not go on instead
    assert {"volume", "mute"} <= set(report.restored) and "source" not in report.restored


async def test_an_alexa_cloud_queue_is_reported_and_nothing_plays_instead(
    sim: SonosSpeakerSim, speaker: SonosSpeaker
) -> None:
    sim.start_cloud_queue("alexa")
    data = await session(speaker, MusicSource(uri=OCEAN))
    report = await speaker.restore(data, fade_s=0.2)
    assert "source" in report.unrestorable
    assert sim.state().transport_state != "PLAYING" and sim.state().volume == 25


async def test_an_unreachable_speaker_gives_device_error(sim: SonosSpeakerSim, calls: BlockingCalls) -> None:
    sim.stop()  # the port is closed now
    adapter = SonosSpeaker(host=sim.address, timeout_s=2.0, calls=calls)
    began = time.monotonic()
    with pytest.raises(DeviceError) as error:
        await adapter.check()
    assert error.value.device == "speaker" and "cannot reach" in error.value.message
    with pytest.raises(DeviceError):
        await adapter.snapshot()
    assert time.monotonic() - began < 2.0
    sim.start()
    await adapter.check()  # and it is found again once it is back


async def test_a_speaker_that_does_not_answer_in_time_gives_device_error(
    sim: SonosSpeakerSim, calls: BlockingCalls
) -> None:
    adapter = SonosSpeaker(host=sim.address, timeout_s=0.2, calls=calls)
    await adapter.check()
    sim.latency_ms = 1500
    began = time.monotonic()
    with pytest.raises(DeviceError) as error:
        await adapter.check()
    assert f"no answer from {sim.address} within 0.2 s" in error.value.message
    assert time.monotonic() - began < 0.5
    sim.latency_ms = 0


async def test_a_upnp_error_carries_its_code(sim: SonosSpeakerSim, speaker: SonosSpeaker) -> None:
    sim.fail_next("GetMediaInfo", 701)
    with pytest.raises(DeviceError) as error:
        await speaker.snapshot()
    assert error.value.code == 701 and "UPnP error 701" in error.value.message
