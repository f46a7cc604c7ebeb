"""Given-up and cancelled speaker calls, against the simulator: nothing lands after the restore, threads do not grow."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.sonos import SonosSpeaker
from relaxd.core.ports import DeviceError, MusicSource
from relaxd.sim.sonos_speaker import SimState, SonosSpeakerSim

T = TypeVar("T")
OCEAN = "x-file-cifs://nas/Music/Nature/Ocean%20Waves.flac"
TIMEOUT_S = 0.5  # per request: a step of a ramp (read and set) has 1 s, a favorites browse too
# What relaxd sends that changes what plays or how loud: none of it may land after a restore.
CHANGES = ("SetAVTransportURI", "Play", "SetVolume", "Seek", "AddURIToQueue", "RemoveAllTracksFromQueue")


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
    return SonosSpeaker(host=sim.address, max_volume=30, timeout_s=TIMEOUT_S, calls=calls)


async def wait_for(probe: Callable[[], T], timeout_s: float = 3.0) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value!r} after {timeout_s} s")
        await asyncio.sleep(0.002)


def steady(state: SimState) -> dict[str, Any]:
    """The state without the play position, which moves on while playing."""
    return {k: v for k, v in dataclasses.asdict(state).items() if k != "position_s"}


def changes_since(sim: SonosSpeakerSim, since: float) -> list[str]:
    return [f"{c.action} {dict(c.args)}" for c in sim.requests() if c.action in CHANGES and c.at > since]


def volumes_set(sim: SonosSpeakerSim, since: float = 0.0) -> list[int]:
    return [int(c.args["DesiredVolume"]) for c in sim.requests("SetVolume") if c.at >= since]


def last_request_at(sim: SonosSpeakerSim) -> float:
    return max(c.at for c in sim.requests())


# --- the issue: a call given up at its deadline reached the speaker after the restore ---------


@pytest.mark.parametrize(
    ("slow", "source", "timeout_s", "slow_s", "budget_s"),
    [
        # The favorites browse (2 requests' budget); the play after it is never sent.
        ("Browse", MusicSource(favorite="Spa Radio"), TIMEOUT_S, 3.0, 1.0),
        # soco's play_uri is SetAVTransportURI then Play: the worker given up on must not press Play.
        ("SetAVTransportURI", MusicSource(uri=OCEAN), TIMEOUT_S, 2.0, 1.5),
        # Clear, add, then SetAVTransportURI, Seek and Play, in one job (7 requests' budget).
        ("AddURIToQueue", MusicSource(playlist="Calm"), 0.25, 2.5, 1.75),
    ],
)
async def test_a_play_given_up_at_its_deadline_never_lands_after_the_restore(
    sim: SonosSpeakerSim,
    calls: BlockingCalls,
    slow: str,
    source: MusicSource,
    timeout_s: float,
    slow_s: float,
    budget_s: float,
) -> None:
    speaker = SonosSpeaker(host=sim.address, max_volume=30, timeout_s=timeout_s, calls=calls)
    data = await speaker.snapshot()
    before = sim.state()
    sim.slow_next(slow, slow_s)  # carried out when it arrives, answered slow_s late
    began = time.monotonic()
    with pytest.raises(DeviceError) as error:
        await speaker.start_music(source, 20, 0.3)
    failed_s = time.monotonic() - began
    assert f"within {budget_s:g} s" in error.value.message, error.value.message
    assert budget_s <= failed_s < budget_s + 0.3, failed_s
    report = await speaker.restore(data, fade_s=0)
    restored_at = last_request_at(sim)
    assert {"source", "queue", "volume"} <= set(report.restored) and not report.left_alone
    await asyncio.sleep(max(0.0, began + slow_s + 0.5 - time.monotonic()))  # past the slow answer
    assert changes_since(sim, restored_at) == []
    assert [c.action for c in sim.requests() if c.at > restored_at] == []  # nothing at all, in fact
    assert steady(sim.state()) == steady(before)


@pytest.mark.parametrize("ends_by", ["cancel", "deadline"])
async def test_a_ramp_step_answered_late_never_lands_after_the_restore(
    sim: SonosSpeakerSim, speaker: SonosSpeaker, ends_by: str
) -> None:
    data = await speaker.snapshot()
    before = sim.state()
    began = time.monotonic()
    music = asyncio.create_task(speaker.start_music(MusicSource(uri=OCEAN), 20, 3.0))
    await wait_for(lambda: len(volumes_set(sim, began)) >= 3)  # silence, then two steps
    sim.slow_next("SetVolume", 2.0)
    armed = time.monotonic()
    slow_at = (await wait_for(lambda: [c for c in sim.requests("SetVolume") if c.at > armed]))[0].at
    if ends_by == "cancel":  # as a stop does
        await asyncio.sleep(0.1)
        cancelled = time.monotonic()
        music.cancel()
        with pytest.raises(asyncio.CancelledError):
            await music
        assert time.monotonic() - cancelled < 0.1
    else:
        with pytest.raises(DeviceError, match="within 1 s"):
            await music
        assert time.monotonic() - slow_at < 1.3
    report = await speaker.restore(data, fade_s=0.3)
    restored_at = last_request_at(sim)
    # The step that landed unanswered is relaxd's own: no hand on the volume.
    assert not report.left_alone and {"source", "volume"} <= set(report.restored)
    assert sim.state().volume == 25
    await asyncio.sleep(max(0.0, slow_at + 2.5 - time.monotonic()))
    assert changes_since(sim, restored_at) == []
    assert steady(sim.state()) == steady(before)


async def test_a_trickling_speaker_fails_each_call_within_its_budget_without_more_threads(
    sim: SonosSpeakerSim, calls: BlockingCalls
) -> None:
    timeout_s = 0.25
    speaker = SonosSpeaker(host=sim.address, timeout_s=timeout_s, calls=calls)
    await speaker.check()
    sim.trickle_next("GetVolume", 0.2, times=100)  # a byte every 0.2 s: soco's read timeout never trips
    calls_made: list[tuple[str, float, float]] = []

    async def one(i: int) -> None:
        # set_volume first reads volume and source at once: two requests' budget
        name, budget_s = ("check", timeout_s) if i % 4 else ("set_volume", 2 * timeout_s)
        began = time.monotonic()
        with pytest.raises(DeviceError, match=f"within {budget_s:g} s"):
            await (speaker.check() if i % 4 else speaker.set_volume(10, 0))
        calls_made.append((name, budget_s, time.monotonic() - began))

    for i in range(2):
        await one(i)
    await asyncio.sleep(0.3)  # the simulator's handlers of given-up answers end
    threads_before = threading.active_count()
    for i in range(2, 22):
        await one(i)
    await asyncio.sleep(0.3)
    assert threading.active_count() <= threads_before
    assert calls.pool.started_threads <= calls.workers
    late = [(name, budget_s, round(took_s, 3)) for name, budget_s, took_s in calls_made if took_s > budget_s + 0.3]
    assert late == []
    sim.clear_faults()
    began = time.monotonic()
    await speaker.check()  # the fence is free at once: every given-up worker has returned
    assert time.monotonic() - began < 0.2
    assert sim.state().volume == 25


# --- cancelling a ramp ------------------------------------------------------------------------


@pytest.mark.parametrize("operation", ["set_volume", "start_music"])
async def test_cancelling_a_ramp_returns_at_once_and_sends_no_more_steps(
    sim: SonosSpeakerSim, speaker: SonosSpeaker, operation: str
) -> None:
    await speaker.snapshot()
    if operation == "set_volume":
        await speaker.start_music(MusicSource(uri=OCEAN), 20, 0)
    began = time.monotonic()
    if operation == "set_volume":
        ramp = asyncio.create_task(speaker.set_volume(2, 3.0))
    else:
        ramp = asyncio.create_task(speaker.start_music(MusicSource(uri=OCEAN), 30, 3.0))
    # Just after a step: the ramp is waiting for its next one.
    await wait_for(lambda: len(volumes_set(sim, began)) >= 3)
    cancelled = time.monotonic()
    ramp.cancel()
    with pytest.raises(asyncio.CancelledError):
        await ramp
    assert time.monotonic() - cancelled < 0.1
    volume = sim.state().volume
    await asyncio.sleep(0.5)  # five steps' time
    assert volumes_set(sim, cancelled) == [] and sim.state().volume == volume
    await speaker.set_volume(15, 0)  # the adapter goes on as usual
    assert sim.state().volume == 15


# --- volume: the fades and ramps are steps, never above max_volume, never a jump up ----------


async def test_the_restore_fades_in_and_no_volume_ever_jumps_up_or_exceeds_max_volume(
    sim: SonosSpeakerSim, speaker: SonosSpeaker
) -> None:
    data = await speaker.snapshot()
    start = time.monotonic()
    await speaker.start_music(MusicSource(favorite="Spa Radio"), 80, 0.4)  # capped at 30
    await speaker.set_volume(12, 0.2)
    await speaker.set_volume(90, 0.3)  # capped at 30 again
    assert sim.state().volume == 30
    restore_began = time.monotonic()
    report = await speaker.restore(data, fade_s=0.5)
    assert sim.state().volume == 25 and {"volume", "source"} <= set(report.restored)
    session_volumes = volumes_set(sim, start)
    assert max(session_volumes) == 30  # max_volume, and the restore's own 25
    fade_calls = [c for c in sim.requests() if c.at >= restore_began and c.action in ("SetVolume", "Play")]
    actions = [c.action for c in fade_calls]
    # soco's restore sets 0 before Play; relaxd's fade then steps up to the saved volume.
    assert actions.index("SetVolume") < actions.index("Play")
    assert int(fade_calls[0].args["DesiredVolume"]) == 0
    fade = [int(c.args["DesiredVolume"]) for c in fade_calls[actions.index("Play") :] if c.action == "SetVolume"]
    assert fade == sorted(fade) and fade[-1] == 25 and len(fade) >= 4
    assert all(b - a <= 7 for a, b in itertools.pairwise([0, *fade])), fade
    # Every rise during the session too is a step of a ramp, never a jump from low to high.
    rises = [b - a for a, b in itertools.pairwise(session_volumes) if b > a]
    assert max(rises) <= 10, session_volumes
