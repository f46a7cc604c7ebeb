"""What a session start costs the speaker: no request that the snapshot already answered."""

from __future__ import annotations

from relaxd.adapters.sonos import SonosSpeaker
from relaxd.core.ports import MusicSource
from relaxd.sim.sonos_speaker import SonosSpeakerSim


def favorites_browses(sim: SonosSpeakerSim) -> int:
    return len([c for c in sim.requests("Browse") if c.args.get("ObjectID") == "FV:2"])


def test_the_favorites_are_browsed_once_for_sessions_close_together() -> None:
    with SonosSpeakerSim.demo() as sim:
        speaker = SonosSpeaker(host=sim.address, timeout_s=2.0)
        for _ in range(2):
            data = speaker.snapshot()
            speaker.start_music(MusicSource(favorite="Spa Radio"), 12, 0)
            speaker.restore(data, 0)
        assert favorites_browses(sim) == 1
        try:
            speaker.start_music(MusicSource(favorite="Not There"), 12, 0)
        except Exception as exc:
            assert "no Sonos favorite called 'Not There'" in str(exc)
        else:
            raise AssertionError("an unknown favorite must be refused")
        speaker.start_music(MusicSource(favorite="Spa Radio"), 12, 0)
        assert favorites_browses(sim) == 2  # the failed lookup used the cached list, then forgot it
        speaker.close()


def test_unmute_is_sent_only_when_the_speaker_was_muted() -> None:
    with SonosSpeakerSim.demo() as sim:
        speaker = SonosSpeaker(host=sim.address, timeout_s=2.0)
        data = speaker.snapshot()
        sim.clear_requests()
        speaker.start_music(MusicSource(favorite="Spa Radio"), 12, 0)
        assert sim.requests("SetMute") == [] and sim.state().volume == 12 and not sim.state().mute
        speaker.restore(data, 0)
        sim.hand_set_mute(True)
        data = speaker.snapshot()
        sim.clear_requests()
        speaker.start_music(MusicSource(favorite="Spa Radio"), 12, 0)
        assert [c.args.get("DesiredMute") for c in sim.requests("SetMute")] == ["0"]
        assert not sim.state().mute
        speaker.restore(data, 0)
        assert sim.state().mute  # and the restore gives the mute back
        speaker.close()
