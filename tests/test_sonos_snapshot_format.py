"""relaxd's own Sonos snapshot format (versioned, typed), and files of the previous version still restore."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import pytest

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.sonos import SonosSpeaker
from relaxd.core.ports import MusicSource, SnapshotUnusable
from relaxd.sim.sonos_speaker import SonosSpeakerSim

# What the previous version wrote for SonosSpeakerSim.demo() (playing its queue, track 2 at 0:41,
# volume 25), with the speaker's uid as {uid}.
PREVIOUS_STATE: dict[str, Any] = {
    "media_uri": "x-rincon-queue:{uid}#0",
    "is_coordinator": True,
    "is_playing_queue": True,
    "is_playing_cloud_queue": False,
    "volume": 25,
    "mute": False,
    "bass": 0,
    "treble": 0,
    "loudness": True,
    "play_mode": "NORMAL",
    "cross_fade": False,
    "playlist_position": 2,
    "track_position": "0:00:41",
    "media_metadata": None,
    "transport_state": "PLAYING",
}
PREVIOUS_QUEUE = [
    ("Kitchen Disco", "Pop/Kitchen%20Disco.flac", "0:03:21", "The Saucepans", "Sunday Lunch"),
    ("Bike to Work", "Pop/Bike%20to%20Work.flac", "0:03:07", "The Saucepans", "Sunday Lunch"),
    ("Rainy Bus", "Pop/Rainy%20Bus.flac", "0:03:44", "Lena Park", "Commute"),
    ("Late Train", "Pop/Late%20Train.flac", "0:04:03", "Lena Park", "Commute"),
]


def previous_file(uid: str) -> dict[str, Any]:
    queue = [
        '<DIDL-Lite xmlns="urn:schemas-upnp-org:metadata-1-0/DIDL-Lite/" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:upnp="urn:schemas-upnp-org:metadata-1-0/upnp/" xmlns:r="urn:schemas-rinconnetworks-com:metadata-1-0/">'
        f'<item parentID="Q:0" restricted="true" id="Q:0/{n}"><dc:title>{title}</dc:title>'
        f'<res protocolInfo="x-file-cifs:*:audio/flac:*" duration="{duration}">x-file-cifs://nas/Music/{path}</res>'
        f"<dc:creator>{creator}</dc:creator><upnp:album>{album}</upnp:album>"
        "<upnp:class>object.item.audioItem.musicTrack</upnp:class>"
        '<desc id="cdudn" nameSpace="urn:schemas-rinconnetworks-com:metadata-1-0/" /></item></DIDL-Lite>'
        for n, (title, path, duration, creator, album) in enumerate(PREVIOUS_QUEUE, start=1)
    ]
    state = {k: v.format(uid=uid) if isinstance(v, str) else v for k, v in PREVIOUS_STATE.items()}
    return {"format": "soco-snapshot/1", "coordinator_uid": uid, "state": state, "queue": queue}


@pytest.fixture
def calls() -> Iterator[BlockingCalls]:
    pool = BlockingCalls(workers=4)
    yield pool
    pool.close()


def current_file(uid: str) -> dict[str, Any]:
    """What this version writes for SonosSpeakerSim.demo(): relaxd's names, not soco's attributes."""
    queue = previous_file(uid)["queue"]
    playback = {
        "uri": f"x-rincon-queue:{uid}#0",
        "metadata": None,
        "plays_queue": True,
        "plays_cloud_queue": False,
        "track": 2,
        "position": "0:00:41",
        "play_mode": "NORMAL",
        "crossfade": False,
        "transport_state": "PLAYING",
        "queue": queue,
        "queue_start": 0,
        "queue_total": 4,
    }
    speaker = {"uid": uid, "name": "Massage Room", "volume": 25, "mute": False, "bass": 0, "treble": 0}
    return {
        "format": "relaxd-sonos/2",
        "speakers": [{**speaker, "loudness": True, "playback": playback}],
        "groups": [{"coordinator": uid, "members": [uid], "names": {uid: "Massage Room"}}],
    }


async def test_the_snapshot_is_written_in_relaxd_s_own_versioned_format(calls: BlockingCalls) -> None:
    with SonosSpeakerSim.demo() as sim:
        speaker = SonosSpeaker(host=sim.address, timeout_s=2.0, calls=calls)
        assert json.loads(json.dumps(await speaker.snapshot())) == current_file(sim.uid)


async def test_a_stream_session_leaves_the_queue_out_of_the_snapshot_and_alone(calls: BlockingCalls) -> None:
    with SonosSpeakerSim.demo() as sim:
        queue = sim.state().queue
        speaker = SonosSpeaker(
            host=sim.address, timeout_s=2.0, calls=calls, music=MusicSource(favorite="Spa Radio"), snapshot_queue=None
        )
        data = await speaker.snapshot()
        assert data["speakers"][0]["playback"]["queue"] is None and not sim.requests("Browse")[1:]
        await speaker.start_music(MusicSource(favorite="Spa Radio"), 12, 0)
        report = await speaker.restore(data, fade_s=0)
        assert sim.state().queue == queue and sim.state().track == 2
        assert "queue" not in report.restored
        assert not sim.requests("RemoveAllTracksFromQueue") and not sim.requests("AddMultipleURIsToQueue")


async def test_a_favorite_that_is_a_playlist_saves_the_queue(calls: BlockingCalls) -> None:
    with SonosSpeakerSim.demo() as sim:
        titles = [f.title for f in sim.library.favorites if "playlist" in f.ref_class.lower()]
        speaker = SonosSpeaker(
            host=sim.address, timeout_s=2.0, calls=calls, music=MusicSource(favorite=titles[0]), snapshot_queue=None
        )
        data = await speaker.snapshot()
        assert len(data["speakers"][0]["playback"]["queue"]) == 4


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"volume": 150}, "volume"),
        ({"mute": "yes"}, "mute"),
        ({"uid": ""}, "uid"),
    ],
)
async def test_a_damaged_file_is_unusable_and_nothing_is_sent(
    calls: BlockingCalls, change: dict[str, Any], why: str
) -> None:
    with SonosSpeakerSim.demo() as sim:
        data = current_file(sim.uid)
        data["speakers"][0].update(change)
        speaker = SonosSpeaker(host=sim.address, timeout_s=2.0, calls=calls)
        with pytest.raises(SnapshotUnusable) as error:
            await speaker.restore(data, fade_s=0)
        assert why in error.value.message
        assert [c.action for c in sim.requests() if not c.action.startswith("Get")] == []
        assert sim.state().volume == 25


async def test_a_file_of_the_previous_version_restores(calls: BlockingCalls) -> None:
    with SonosSpeakerSim.demo() as sim:
        before = sim.state()
        speaker = SonosSpeaker(host=sim.address, max_volume=30, timeout_s=2.0, calls=calls)
        await speaker.start_music(MusicSource(playlist="Deep Relaxation"), 12, 0)
        sim.hand_set_mute(True)
        assert sim.state().queue != before.queue
        # A new process: the adapter knows nothing of the session the file belongs to.
        fresh = SonosSpeaker(host=sim.address, max_volume=30, timeout_s=2.0, calls=calls)
        report = await fresh.restore(previous_file(sim.uid), fade_s=0.2)
        after = sim.state()
        assert {"source", "queue", "play_state", "volume", "mute"} <= set(report.restored)
        assert not report.left_alone and not report.unrestorable
        steady = {k: v for k, v in dataclasses.asdict(after).items() if k != "position_s"}
        assert steady == {k: v for k, v in dataclasses.asdict(before).items() if k != "position_s"}
        assert 41 <= after.position_s < 43
