"""`speakers: [...]` beside `speaker:` in a room's config: what check-config accepts, and the one Speaker it builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.sonos import SonosSpeaker
from relaxd.adapters.sonos.build import build_speakers
from relaxd.core.config import Settings
from relaxd.core.configfile import ConfigError, load_settings, parse_yaml, resolved_yaml
from relaxd.core.ports import MusicSource

BASE = """
rooms:
  spa:
    music: {playlist: Calm}
"""


def load(tmp_path: Path, room: str) -> Settings:
    path = tmp_path / "relaxd.yaml"
    path.write_text(BASE + room)
    return load_settings(path)


@pytest.mark.parametrize(
    ("room", "problem"),
    [
        ("    speaker: {host: a}\n    speakers: [{host: b}]\n", "rooms.spa: give speaker or speakers, not both"),
        ("    speakers: []\n", "rooms.spa.speakers: List should have at least 1 item"),
        ("    speakers: [{host: a}, {host: a}]\n", "rooms.spa: speakers: a speaker is named twice"),
        ("    speakers: [{host: a, name: Bath}]\n", "rooms.spa.speakers.0: give exactly one of name or host"),
        ("    lights: {group: Spa}\n", "rooms.spa: music needs a speaker"),
    ],
)
def test_a_wrong_speakers_list_is_refused_with_its_key_path(tmp_path: Path, room: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, room)
    assert any(problem in line for line in info.value.lines), info.value.lines


def test_several_speakers_make_one_speaker_port_grouped_under_the_first(tmp_path: Path) -> None:
    settings = load(tmp_path, "    speakers: [{host: '127.0.0.1:1401'}, {name: Bath}, {host: '127.0.0.1:1403'}]\n")
    calls = BlockingCalls(workers=2)
    try:
        built = build_speakers(settings, calls)
    finally:
        calls.close()
    speaker = built["spa"]
    assert isinstance(speaker, SonosSpeaker)
    assert [(d.host, d.name) for d in speaker.devices] == [
        ("127.0.0.1:1401", None),
        (None, "Bath"),
        ("127.0.0.1:1403", None),
    ]
    assert speaker.max_volume == 30 and speaker._music == MusicSource(playlist="Calm")
    assert speaker._snapshot_queue is None  # decided by the music: a playlist saves the queue
    # check-config prints what run uses, and it loads again as it is
    again = tmp_path / "again.yaml"
    again.write_text(resolved_yaml(settings))
    assert parse_yaml(again.read_text())["rooms"]["spa"]["speakers"][1] == {"name": "Bath"}
    assert load_settings(again).rooms["spa"].speaker_list()[1].name == "Bath"
