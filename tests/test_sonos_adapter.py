"""The Sonos adapter with the real soco against the simulated speaker on 127.0.0.1: the port's
shape, ramps, what cannot be restored, failures."""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.sonos import SonosSpeaker, ramp_steps
from relaxd.core.ports import DeviceError, MusicSource, Speaker
from relaxd.sim.sonos_speaker import SonosSpeakerSim
from tests.sonos_rig import OCEAN, adapter_for, session


@pytest.fixture
def sim() -> Iterator[SonosSpeakerSim]:
    with SonosSpeakerSim.demo() as speaker:  # playing its queue, track 2 at 0:41, volume 25
        yield speaker


@pytest.fixture
def speaker(sim: SonosSpeakerSim, calls: BlockingCalls) -> SonosSpeaker:
    return adapter_for(sim, calls)


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
