"""What the Sonos tests share: music to play, the adapter on a simulated speaker, what reached it."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import soco

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.sonos import SonosSpeaker, SpeakerRef
from relaxd.core.ports import MusicSource, SnapshotData
from relaxd.sim.sonos_speaker import SonosSpeakerSim

SPA_RADIO = "x-sonosapi-stream:s24146?sid=254&flags=8224&sn=0"
OCEAN = "x-file-cifs://nas/Music/Nature/Ocean%20Waves.flac"
CALM_FIRST = "x-file-cifs://nas/Music/Calm/Morning%20Mist.flac"


class FakeClock:
    """A clock for SonosSpeakerSim(clock=...): time moves only when a test sets now_s."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def device(sim: SonosSpeakerSim) -> Any:
    """soco's view of the simulated speaker."""
    return soco.SoCo(sim.host, sim.port)


def adapter_for(sim: SonosSpeakerSim, calls: BlockingCalls) -> SonosSpeaker:
    """relaxd's adapter for the simulated speaker, as the tests configure it."""
    return SonosSpeaker(host=sim.address, max_volume=30, timeout_s=2.0, calls=calls)


def volumes_set(sim: SonosSpeakerSim, since: float = 0.0) -> list[int]:
    return [int(c.args["DesiredVolume"]) for c in sim.requests("SetVolume") if c.at >= since]


async def session(speaker: SonosSpeaker, source: MusicSource, volume: int = 20) -> SnapshotData:
    """Snapshot, then start relaxd's music; start_music returns once its ramp is done."""
    data: SnapshotData = json.loads(json.dumps(await speaker.snapshot()))  # as the store keeps it
    await speaker.start_music(source, volume, 0.1)
    return data


def snapshot_of(sim: SonosSpeakerSim) -> dict[str, Any]:
    """Everything a person would notice of one speaker, position aside (it moves while playing)."""
    state = dataclasses.asdict(sim.state())
    del state["position_s"]
    return state


def home(*sims: SonosSpeakerSim) -> dict[str, Any]:
    """Every speaker's state and the household's group layout, by room name."""
    names = {s.uid: s.room_name for s in sims}
    layout = {names[c]: tuple(names.get(u, u) for u in members) for c, members in sims[0].layout().items()}
    return {"layout": layout, **{s.room_name: snapshot_of(s) for s in sims}}


def room_adapter(calls: BlockingCalls, *sims: SonosSpeakerSim, music: MusicSource | None = None) -> SonosSpeaker:
    """relaxd's adapter for a room of these speakers (the first leads), as build.py configures it."""
    first, *more = sims
    return SonosSpeaker(
        host=first.address,
        max_volume=30,
        timeout_s=2.0,
        calls=calls,
        also=[SpeakerRef(host=s.address) for s in more],
        music=music,
        snapshot_queue=None if music is not None else True,
    )
