"""Bad input never takes relaxd down: every request gets one reply, echoes stay short, junk is ignored."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relaxd.app.daemon import Daemon, Devices
from relaxd.core.config import Settings
from relaxd.core.schedule_set import MAX_RUNTIME_SCHEDULES
from tests.daemon_rig import FakeBus, deliver, start_daemon
from tests.fakes import FakeClock, FakeLights, FakeSpeaker

VERBS = ["status", "schedule/add", "schedule/list", "schedule/remove", "schedule/pause", "nope"]


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[tuple[Daemon, FakeBus]]:
    settings = Settings.model_validate(
        {
            "state_dir": tmp_path,
            "timezone": "Europe/Berlin",
            "hue": {"host": "127.0.0.1:9", "username": "u"},
            "rooms": {"room1": {"lights": {"group": "G"}, "speaker": {"host": "127.0.0.1:9"}}},
        }
    )
    bus = FakeBus()
    devices: Devices = {"room1": (FakeLights(), FakeSpeaker())}
    d = await start_daemon(settings, devices, FakeClock(), bus)
    yield d, bus
    await d.shutdown()


def replies(bus: FakeBus, verb: str) -> list[dict[str, Any]]:
    return [json.loads(p) for t, p, _ in bus.raw if t == f"relaxd/response/{verb}"]


async def request(d: Daemon, bus: FakeBus, verb: str, payload: bytes) -> dict[str, Any]:
    bus.raw.clear()
    await deliver(d, f"relaxd/request/{verb}", payload)
    got = replies(bus, verb)
    assert len(got) == 1, got
    return got[0]


@pytest.mark.parametrize(
    ("verb", "body", "error"),
    [
        ("status", {"room": ["room1"]}, "room: unknown room ['room1']"),
        ("schedule/list", {"room": ["room1"]}, "room: unknown room ['room1']"),
        ("status", {"room": "room1", "colour": "red"}, "unknown field(s) 'colour'; status takes room"),
        ("schedule/add", {"room": "room1", "every": "999999 weeks", "at": "10:00"}, "every: at most 520 weeks"),
        ("schedule/add", {"room": "room1", "every": "3000000 days", "at": "10:00"}, "every: at most 3660 days"),
        ("schedule/add", {"room": "room1", "once": "9999-12-31T23:30"}, "once: must be between 2000-01-01"),
        ("schedule/remove", {"id": "x" * 5000}, "unknown schedule id"),
    ],
)
async def test_a_request_that_cannot_be_served_gets_one_readable_error(
    daemon: tuple[Daemon, FakeBus], verb: str, body: dict[str, Any], error: str
) -> None:
    # Seen: `{"room": ["room1"]}` and overflowing schedules were never answered (a traceback instead).
    d, bus = daemon
    reply = await request(d, bus, verb, json.dumps({**body, "transaction": 42}).encode())
    assert reply["status"] == "error" and error in reply["error"], reply
    assert reply["transaction"] == 42  # echoed with its JSON type
    assert len(reply["error"]) < 400


async def test_a_request_that_is_not_json_gets_a_readable_reason(daemon: tuple[Daemon, FakeBus]) -> None:
    d, bus = daemon
    reply = await request(d, bus, "status", b"not json at all")
    assert reply == {
        "status": "error",
        "error": 'request is not valid JSON; send an object such as {"transaction": "t1"}',
        "transaction": None,
    }
    reply = await request(d, bus, "status", b"x" * (64 * 1024 + 1))
    assert reply["status"] == "error" and "request too large" in reply["error"]


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    verb=st.sampled_from(VERBS),
    body=st.one_of(
        st.dictionaries(
            st.sampled_from(["room", "transaction", "id", "every", "at", "once", "cron", "on", "x"]),
            st.one_of(st.none(), st.integers(), st.floats(), st.text(max_size=30), st.lists(st.integers(), max_size=3)),
            max_size=5,
        ).map(lambda d: json.dumps(d).encode()),
        st.binary(max_size=40),
        st.text(max_size=40).map(str.encode),
    ),
)
def test_every_request_whatever_it_holds_gets_exactly_one_reply(verb: str, body: bytes) -> None:
    import asyncio
    import tempfile

    async def scenario() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            settings_ = Settings.model_validate(
                {
                    "state_dir": tmp,
                    "hue": {"host": "127.0.0.1:9", "username": "u"},
                    "rooms": {"room1": {"lights": {"group": "G"}}},
                }
            )
            bus = FakeBus()
            d = await start_daemon(settings_, {"room1": (FakeLights(), None)}, FakeClock(), bus)
            try:
                bus.raw.clear()
                await deliver(d, f"relaxd/request/{verb}", body)
                if not body:
                    assert replies(bus, verb) == []  # a retained request being cleared
                    return
                got = replies(bus, verb)
                assert len(got) == 1 and got[0]["status"] in ("ok", "error")
                sent = _transaction_of(body)
                if isinstance(sent, str) or (isinstance(sent, int | float) and not isinstance(sent, bool)):
                    assert got[0]["transaction"] == (sent[:256] if isinstance(sent, str) else sent)
                else:
                    assert got[0]["transaction"] is None
            finally:
                await d.shutdown()

    asyncio.run(scenario())


def _transaction_of(body: bytes) -> Any:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    value = data.get("transaction")
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    return value


async def test_a_huge_routine_name_is_refused_in_a_few_words(
    daemon: tuple[Daemon, FakeBus], caplog: pytest.LogCaptureFixture
) -> None:
    # Seen: 10 MB in on routine/set, a 10 MB command_rejected and a 10 MB log line out.
    d, bus = daemon
    caplog.set_level(logging.INFO)
    await deliver(d, "relaxd/room1/routine/set", b"r" * 10_000_000)
    await deliver(d, "relaxd/room1/routine/set", b"x" * 200)
    rejected = bus.of("command_rejected")
    assert len(rejected) == 2
    assert "routine name too long (10000000 bytes" in rejected[0]["reason"]
    assert "unknown routine 'xxxxxxxx" in rejected[1]["reason"] and len(rejected[1]["reason"]) < 200
    assert max(len(json.dumps(e)) for e in rejected) < 500
    assert max(len(r.getMessage()) for r in caplog.records) < 500


async def test_retained_junk_and_cleared_messages_are_ignored_without_a_word(daemon: tuple[Daemon, FakeBus]) -> None:
    # Seen: 2,000 retained commands for rooms that do not exist, 2,000 rejections at every reconnect.
    d, bus = daemon
    before_events, before_raw = len(bus.events), len(bus.raw)
    for i in range(2000):
        await deliver(d, f"relaxd/ghost{i}/set", b"start", retained=True)
    for topic in ("relaxd/room1/set", "relaxd/ghost/set", "relaxd/request/status", "relaxd/room1/routine/set"):
        await deliver(d, topic, b"", retained=True)
        await deliver(d, topic, b"", retained=False)  # what live subscribers get when it is cleared
    assert len(bus.events) == before_events and len(bus.raw) == before_raw
    await deliver(d, "relaxd/room1/set", b"start", retained=True)  # a known room still hears why
    assert "retained command ignored" in bus.of("command_rejected")[-1]["reason"]


async def test_run_time_schedules_are_bounded_with_a_clear_error(daemon: tuple[Daemon, FakeBus]) -> None:
    # Seen: 3,000 adds in a burst, 1,058 kept, a 241 KB schedule/list reply.
    d, bus = daemon
    assert d.router is not None
    for i in range(MAX_RUNTIME_SCHEDULES + 20):
        body = {"room": "room1", "cron": f"{i % 60} {i // 60} * * *", "transaction": i}
        d.router.receive("relaxd/request/schedule/add", json.dumps(body).encode(), False)
    for _ in range(400):
        if len(replies(bus, "schedule/add")) == MAX_RUNTIME_SCHEDULES + 20:
            break
        await __import__("asyncio").sleep(0.02)
    got = replies(bus, "schedule/add")
    assert [r["status"] for r in got].count("ok") == MAX_RUNTIME_SCHEDULES
    refused = [r for r in got if r["status"] == "error"]
    assert len(refused) == 20 and all("the most relaxd keeps" in r["error"] for r in refused)
    listing = await request(d, bus, "schedule/list", b"{}")
    assert len(listing["data"]["schedules"]) == MAX_RUNTIME_SCHEDULES
    assert len(json.dumps(listing)) < 64 * 1024
