"""Schedules in the daemon with fake devices and a fake clock: firing, busy rooms, misfires, restarts."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from relaxd.app.daemon import Daemon, Devices
from relaxd.core.config import Settings
from relaxd.core.schedule_runner import ScheduleRunner
from tests.daemon_rig import FakeBus, deliver, quiet, start_daemon
from tests.fakes import FakeClock, FakeLights, FakeSpeaker

BERLIN = ZoneInfo("Europe/Berlin")
SHORT = {
    "phases": [
        {"name": "one", "duration": "60s", "lights": {"brightness": "40%"}},
        {"name": "two", "duration": "60s", "lights": {"brightness": "20%"}},
    ]
}
# Monday 2026-11-23 12:00 in Berlin (11:00 UTC).
MONDAY_NOON = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)


class Site:
    """One daemon at a time on a shared state_dir and clock; start() again is a restart after a crash."""

    def __init__(self, tmp_path: Path, schedules: list[dict[str, Any]] | None = None, grace: str = "15m") -> None:
        self.clock = FakeClock()
        self.clock.wall0 = MONDAY_NOON
        self.settings = Settings.model_validate(
            {
                "timezone": "Europe/Berlin",
                "state_dir": tmp_path / "state",
                "misfire_grace": grace,
                "hue": {"host": "127.0.0.1:9", "username": "u"},
                "rooms": {
                    "bedroom": {"lights": {"group": "Bedroom"}, "speaker": {"host": "127.0.0.1:9"}},
                    "studio": {"lights": {"names": ["a"]}, "routine": "short"},
                },
                "routines": {"short": SHORT},
                "schedules": schedules or [],
            }
        )
        self.daemon: Daemon | None = None
        self.bus = FakeBus()

    async def start(self) -> Site:
        await self.crash()
        self.bus = FakeBus()
        devices: Devices = {"bedroom": (FakeLights(), FakeSpeaker()), "studio": (FakeLights(), None)}
        self.daemon = await start_daemon(self.settings, devices, self.clock, self.bus)
        return self

    async def crash(self) -> None:
        """The daemon dies where it stands: no stop, no restore (its snapshots stay on disk)."""
        if self.daemon is not None:
            await self.daemon.supervisor.stop()
            for engine in self.daemon.engines.values():
                await engine.close()
            self.daemon.calls.close()
            self.daemon = None

    async def down(self, seconds: float) -> None:
        """Crash, and let time pass while nothing runs."""
        await self.crash()
        self.clock.mono += seconds

    @property
    def runner(self) -> ScheduleRunner:
        assert self.daemon is not None and self.daemon.schedules is not None
        return self.daemon.schedules

    async def process(self) -> None:
        assert self.daemon is not None
        await quiet(self.daemon)

    async def at(self, moment: datetime) -> None:
        """Move the clock to moment and let the runner and the rooms do what is due on the way."""
        assert moment >= self.clock.now() and self.daemon is not None
        await self.clock.advance((moment - self.clock.now()).total_seconds())
        await self.runner.tick()
        await quiet(self.daemon)

    async def request(self, verb: str, body: dict[str, Any]) -> dict[str, Any]:
        assert self.daemon is not None
        self.bus.raw.clear()
        await deliver(self.daemon, f"relaxd/request/{verb}", json.dumps(body).encode())
        for _ in range(1000):  # the reply waits for the state file, written by a pool thread
            if self.bus.raw:
                break
            await asyncio.sleep(0.01)
        topic, payload, retain = self.bus.raw[-1]
        assert topic == f"relaxd/response/{verb}" and not retain
        reply: dict[str, Any] = json.loads(payload)
        return reply

    async def add(self, **fields: Any) -> dict[str, Any]:
        reply = await self.request("schedule/add", {**fields, "transaction": "add"})
        assert reply["status"] == "ok", reply
        data: dict[str, Any] = reply["data"]
        return data

    async def listed(self) -> list[dict[str, Any]]:
        reply = await self.request("schedule/list", {"transaction": "l"})
        assert reply["status"] == "ok"
        schedules: list[dict[str, Any]] = reply["data"]["schedules"]
        return schedules

    def state(self, room: str = "bedroom") -> dict[str, Any]:
        return self.bus.room_states[room]

    def names(self) -> list[str]:
        return self.bus.names()


@pytest.fixture
async def sites(tmp_path: Path) -> AsyncIterator[list[Site]]:
    made: list[Site] = []
    yield made
    for site in made:
        await site.crash()


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN)


async def test_a_run_time_schedule_starts_a_session_at_its_time(sites: list[Site], tmp_path: Path) -> None:
    site = await launch(sites, Site(tmp_path))
    added = await site.add(room="studio", once="2026-11-23T12:30")
    assert added["id"].startswith("rt-") and added["origin"] == "runtime"
    assert added["next_at"] == "2026-11-23T11:30:00.000Z" and added["next_local"] == "2026-11-23T12:30+01:00"
    await site.process()
    assert site.state("studio")["next_session_at"] == "2026-11-23T11:30:00.000Z"
    assert site.state("bedroom")["next_session_at"] is None

    await site.at(local("2026-11-23T12:29:59"))
    assert site.names() == []
    await site.at(local("2026-11-23T12:30"))
    assert site.names() == ["session_started", "schedule_fired", "phase_started"]
    started, fired = site.bus.events[0], site.bus.events[1]
    assert started["reason"] == "schedule" and started["routine"] == "short"
    assert started["schedule_id"] == fired["schedule_id"] == added["id"]
    assert fired["session_id"] == started["session_id"] and fired["room"] == "studio"
    assert fired["details"] == {"scheduled_for": "2026-11-23T11:30:00.000Z", "late_s": 0.0}
    assert [e["seq"] for e in site.bus.events] == [1, 2, 3]
    assert site.state("studio")["state"] == "running" and site.state("studio")["next_session_at"] is None
    await site.at(local("2026-11-23T12:33"))
    assert site.names()[-2:] == ["session_finished", "room_restored"]


async def test_a_busy_room_reports_the_run_and_the_session_goes_on(sites: list[Site], tmp_path: Path) -> None:
    site = await launch(
        sites, Site(tmp_path, schedules=[{"room": "bedroom", "routine": "short", "cron": "15 12 * * *"}])
    )
    assert site.daemon is not None
    await deliver(site.daemon, "relaxd/bedroom/set", b'{"action": "start", "routine": "classic"}')
    running = site.state()
    assert running["state"] == "running" and running["next_session_at"] == "2026-11-23T11:15:00.000Z"
    await site.at(local("2026-11-23T12:15"))
    missed = site.bus.of("schedule_missed")
    assert len(missed) == 1 and missed[0]["reason"] == "room_busy"
    assert missed[0]["schedule_id"].startswith("cfg-") and missed[0]["room"] == "bedroom"
    assert missed[0]["details"]["session_id"] == running["session_id"]
    assert "command_rejected" not in site.names() and site.names().count("session_started") == 1
    assert site.state()["state"] == "running" and site.state()["session_id"] == running["session_id"]
    assert site.state()["routine"] == "classic"
    assert site.state()["next_session_at"] == "2026-11-24T11:15:00.000Z"  # tomorrow's run
    seqs = [e["seq"] for e in site.bus.events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


async def test_a_run_missed_while_down_starts_late_within_the_grace_time(sites: list[Site], tmp_path: Path) -> None:
    site = await launch(sites, Site(tmp_path, schedules=[{"room": "studio", "cron": "0 13 * * *"}]))
    # The daemon stops at 12:50 and comes back at 13:10: 10 minutes late, inside 15 minutes of grace.
    await site.at(local("2026-11-23T12:50"))
    await site.down(20 * 60)
    await site.start()
    assert site.names() == ["session_started", "schedule_fired", "phase_started"]
    fired = site.bus.of("schedule_fired")[0]
    assert fired["details"] == {"scheduled_for": "2026-11-23T12:00:00.000Z", "late_s": 600.0}
    await site.start()  # a crash and restart right after: the room comes back, the run does not start again
    assert site.names() == ["session_stopped", "room_restored"]


async def test_a_run_missed_beyond_the_grace_time_is_reported_not_started(sites: list[Site], tmp_path: Path) -> None:
    site = await launch(sites, Site(tmp_path, schedules=[{"room": "studio", "cron": "0 13 * * *"}]))
    seen = max((e["seq"] for e in site.bus.events), default=0)
    await site.down(3600 + 20 * 60)  # down from 12:00 until 13:20
    await site.start()
    assert site.names() == ["schedule_missed"]
    missed = site.bus.events[0]
    # In the room's own seq, which goes on across the restart.
    assert missed["reason"] == "too_late" and missed["room"] == "studio" and missed["seq"] > seen
    assert missed["details"]["missed_count"] == 1 and missed["details"]["grace_s"] == 900.0
    assert missed["details"]["last_missed"] == "2026-11-23T12:00:00.000Z"
    assert site.state("studio")["state"] == "idle"
    assert site.state("studio")["next_session_at"] == "2026-11-24T12:00:00.000Z"


async def test_after_a_long_outage_only_the_latest_run_in_grace_starts(sites: list[Site], tmp_path: Path) -> None:
    site = await launch(sites, Site(tmp_path, schedules=[{"room": "studio", "cron": "*/5 * * * *"}]))
    await site.down(3 * 86400 + 12 * 60)  # three days down, back at 12:12
    await site.start()
    assert site.names() == ["schedule_missed", "session_started", "schedule_fired", "phase_started"]
    missed, fired = site.bus.of("schedule_missed")[0], site.bus.of("schedule_fired")[0]
    # 12:00 to 11:55 three days on is 3 * 288 runs; 11:57-12:12 is the grace window (12:00, 05, 10).
    assert missed["details"]["missed_count"] == 3 * 288 - 1
    assert missed["details"]["first_missed"] == "2026-11-23T11:05:00.000Z"
    assert fired["details"] == {"scheduled_for": "2026-11-26T11:10:00.000Z", "late_s": 120.0, "coalesced": 2}


async def test_a_config_schedule_seen_for_the_first_time_reports_nothing_from_before(
    sites: list[Site], tmp_path: Path
) -> None:
    site = await launch(sites, Site(tmp_path, schedules=[{"room": "studio", "cron": "0 9 * * *"}]))  # 09:00 was today
    assert site.names() == []
    assert site.state("studio")["next_session_at"] == "2026-11-24T08:00:00.000Z"


async def test_run_time_schedules_survive_restarts_without_duplicates(sites: list[Site], tmp_path: Path) -> None:
    config = [
        {"room": "bedroom", "routine": "classic", "cron": "0 20 * * fri"},
        {"room": "studio", "every": "2 weeks", "on": "sun", "at": "10:00"},
    ]
    site = await launch(sites, Site(tmp_path, schedules=config))
    first = await site.listed()
    config_ids = [s["id"] for s in first]
    assert len(set(config_ids)) == 2 and all(i.startswith("cfg-") for i in config_ids)
    a = await site.add(room="bedroom", routine="quick", every="1 week", on="wed", at="19:00")
    b = await site.add(room="studio", cron="30 7 * * mon-fri")
    c = await site.add(room="studio", once="2026-12-24T18:30")
    for _ in range(2):
        await site.down(8 * 86400)  # a restart more than a week later: the biweekly stays on its weeks
        await site.start()
        ids = [s["id"] for s in await site.listed()]
        assert ids == [*config_ids, a["id"], b["id"], c["id"]]
    studio = next(s for s in await site.listed() if s["id"] == config_ids[1])
    assert studio["starting"] == "2026-11-23" and studio["next_local"] == "2026-12-13T10:00+01:00"
    removed = await site.request("schedule/remove", {"id": b["id"], "transaction": "r1"})
    assert removed["status"] == "ok" and removed["data"]["id"] == b["id"] and removed["transaction"] == "r1"
    await site.start()
    assert [s["id"] for s in await site.listed()] == [*config_ids, a["id"], c["id"]]

    path = tmp_path / "state" / "schedules.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())  # plain data: specs and times
    assert [s["spec"] for s in doc["schedules"]] == [
        {
            "room": "bedroom",
            "routine": "quick",
            "every": "1 week",
            "on": "wed",
            "at": "19:00",
            "starting": "2026-11-23",
        },
        {"room": "studio", "once": "2026-12-24T18:30:00"},
    ]
    assert set(doc["checked"]) == {*config_ids, a["id"], c["id"]} and set(doc["anchors"]) == {config_ids[1]}


async def test_a_config_schedule_that_changes_gets_a_new_id_and_the_old_bookkeeping_goes(
    sites: list[Site], tmp_path: Path
) -> None:
    site = await launch(sites, Site(tmp_path, schedules=[{"room": "studio", "cron": "0 9 * * *"}]))
    old_id = (await site.listed())[0]["id"]
    site.settings.schedules[0].cron = "0 10 * * *"
    await site.start()
    new_id = (await site.listed())[0]["id"]
    assert new_id != old_id and len(await site.listed()) == 1
    doc = json.loads((tmp_path / "state" / "schedules.json").read_text())
    assert set(doc["checked"]) == {new_id}


async def test_next_session_at_is_the_soonest_schedule_of_each_room(sites: list[Site], tmp_path: Path) -> None:
    site = await launch(sites, Site(tmp_path, schedules=[{"room": "bedroom", "cron": "0 20 * * *"}]))
    assert site.state()["next_session_at"] == "2026-11-23T19:00:00.000Z"
    added = await site.add(room="bedroom", once="2026-11-23T18:00")
    await site.process()
    assert site.state()["next_session_at"] == "2026-11-23T17:00:00.000Z"
    await site.request("schedule/remove", {"id": added["id"]})
    await site.process()
    assert site.state()["next_session_at"] == "2026-11-23T19:00:00.000Z"
    assert site.state("studio")["next_session_at"] is None


async def test_a_past_run_time_once_is_dropped_a_day_later(sites: list[Site], tmp_path: Path) -> None:
    site = await launch(sites, Site(tmp_path))
    added = await site.add(room="studio", once="2026-11-23T12:05")
    await site.at(local("2026-11-23T12:05"))
    listed = await site.listed()
    assert [s["id"] for s in listed] == [added["id"]] and listed[0]["next_at"] is None
    await site.at(local("2026-11-24T12:06"))
    assert await site.listed() == []


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"room": "bedroom", "cron": "61 * * * *"}, "cron: bad field '61'"),
        ({"room": "bedroom", "cron": "0 20 * *"}, "cron needs five fields"),
        ({"room": "attic", "cron": "0 20 * * fri"}, "room: unknown room 'attic'"),
        ({"room": "bedroom", "routine": "marathon", "cron": "0 20 * * fri"}, "routine: unknown routine 'marathon'"),
        ({"room": "bedroom", "every": "2 weeks", "on": "funday", "at": "10:00"}, "unknown weekday 'funday'"),
        ({"room": "bedroom", "every": "0 weeks", "on": "sun", "at": "10:00"}, "every: must look like"),
        ({"room": "bedroom", "every": "2 weeks", "on": "sun"}, "every needs at"),
        ({"room": "bedroom", "once": "2026-11-22T10:00"}, "is not in the future"),
        ({"room": "bedroom", "once": "next tuesday"}, "once: Input should be a valid datetime"),
        ({"room": "bedroom", "cron": "0 20 * * fri", "once": "2026-12-24T18:30"}, "give exactly one of"),
        ({"room": "bedroom", "cron": "0 20 * * fri", "volume": 3}, "volume: unknown key"),
    ],
)
async def test_bad_add_requests_are_refused_with_a_reason(
    sites: list[Site], tmp_path: Path, body: dict[str, Any], error: str
) -> None:
    site = await launch(sites, Site(tmp_path))
    reply = await site.request("schedule/add", {**body, "transaction": "t-42"})
    assert reply["status"] == "error" and error in reply["error"], reply
    assert reply["transaction"] == "t-42"
    assert await site.listed() == [] and not (tmp_path / "state" / "schedules.json").read_text().count("rt-")


async def test_remove_and_list_refuse_what_they_cannot_do(sites: list[Site], tmp_path: Path) -> None:
    site = await launch(sites, Site(tmp_path, schedules=[{"room": "studio", "cron": "0 9 * * *"}]))
    config_id = (await site.listed())[0]["id"]
    reply = await site.request("schedule/remove", {"id": "rt-nope", "transaction": 7})
    assert reply == {"status": "error", "error": "unknown schedule id 'rt-nope'", "transaction": 7}
    reply = await site.request("schedule/remove", {"id": config_id, "transaction": "x"})
    assert reply["status"] == "error" and "config file" in reply["error"]
    assert (await site.request("schedule/remove", {}))["status"] == "error"
    reply = await site.request("schedule/list", {"room": "attic", "transaction": "y"})
    assert reply["status"] == "error" and "attic" in reply["error"] and reply["transaction"] == "y"
    duplicate = await site.request("schedule/add", {"room": "studio", "cron": "0 9 * * *"})
    assert duplicate["status"] == "error" and config_id in duplicate["error"]
    assert (await site.request("schedule/pause", {}))["status"] == "error"
    assert len(await site.listed()) == 1


async def test_a_schedule_that_cannot_be_saved_is_not_added(
    sites: list[Site], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = await launch(sites, Site(tmp_path))

    async def full_disk(book: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(site.runner.store, "save", full_disk)
    reply = await site.request("schedule/add", {"room": "studio", "cron": "0 9 * * *"})
    assert reply["status"] == "error" and "cannot save" in reply["error"] and "No space" in reply["error"]
    assert await site.listed() == []
    monkeypatch.undo()
    await site.start()
    assert await site.listed() == []


async def test_a_run_time_schedule_for_a_room_that_left_the_config_stays_listed_but_inactive(
    sites: list[Site], tmp_path: Path
) -> None:
    site = await launch(sites, Site(tmp_path))
    kept = await site.add(room="studio", cron="0 9 * * *")
    del site.settings.rooms["studio"]
    await site.start()
    listed = await site.listed()
    assert [s["id"] for s in listed] == [kept["id"]] and "unknown room 'studio'" in listed[0]["problem"]
    assert listed[0]["next_at"] is None
    await site.at(site.clock.now() + timedelta(days=2))  # nothing fires and nothing breaks
    assert site.names() == []


async def launch(sites: list[Site], site: Site) -> Site:
    sites.append(site)
    return await site.start()


async def test_a_schedule_whose_next_time_cannot_be_computed_is_disabled_and_the_others_fire(
    sites: list[Site], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Seen: one overflowing schedule made the runner fail every 60 s: no other schedule fired.
    site = await launch(sites, Site(tmp_path, schedules=[{"room": "studio", "cron": "* * * * *"}]))
    bad = await site.add(room="bedroom", cron="30 12 * * *")
    real = site.runner.fire_times.next_after

    def next_after(spec: Any, after: datetime) -> datetime | None:
        if spec.room == "bedroom":
            raise OverflowError("date value out of range")
        return real(spec, after)

    monkeypatch.setattr(site.runner.fire_times, "next_after", next_after)
    await site.at(local("2026-11-23T12:31"))
    missed = [e for e in site.bus.of("schedule_missed") if e["reason"] == "disabled"]
    assert len(missed) == 1 and missed[0]["schedule_id"] == bad["id"]
    assert "OverflowError" in missed[0]["details"]["error"] and missed[0]["room"] == "bedroom"
    assert site.bus.of("session_started") and site.bus.of("session_started")[0]["room"] == "studio"
    listed = {s["id"]: s for s in await site.listed()}
    assert "cannot be computed" in listed[bad["id"]]["problem"] and listed[bad["id"]]["next_at"] is None
    await site.at(local("2026-11-23T12:40"))
    assert [e["reason"] for e in site.bus.of("schedule_missed")].count("disabled") == 1  # said once


async def test_a_stored_schedule_out_of_range_never_stops_the_start(sites: list[Site], tmp_path: Path) -> None:
    # Seen: every later start died in schedules.load(), before leftover snapshots were restored.
    state = tmp_path / "state"
    state.mkdir(parents=True)
    (state / "schedules.json").write_text(
        json.dumps(
            {
                "format": 1,
                "schedules": [
                    {"id": "rt-huge", "spec": {"room": "studio", "every": "999999 weeks", "at": "12:01"}},
                    {"id": "rt-fine", "spec": {"room": "studio", "cron": "1 12 * * *"}},
                ],
                "checked": {},
                "anchors": {},
            }
        )
    )
    site = await launch(sites, Site(tmp_path))
    assert [s["id"] for s in await site.listed()] == ["rt-fine"]
    await site.at(local("2026-11-23T12:01"))
    assert site.names()[:2] == ["session_started", "schedule_fired"]
    kept = json.loads((state / "schedules.json").read_text())["schedules"]
    assert {s["id"] for s in kept} == {"rt-fine", "rt-huge"}  # kept for a person, never used
