"""`check-config` accepts exactly what `relaxd run` can start: the configs seen to crash run, and a property test."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from relaxd.adapters.fire_times import check_cron
from relaxd.app.daemon import Daemon
from relaxd.core.configfile import ConfigError, load_settings
from tests.mosquitto import Mosquitto
from tests.reliability import CONFIG_RUN_EXAMPLES, TEST_TIMEOUT_S

pytestmark = pytest.mark.timeout(TEST_TIMEOUT_S)


def base(broker_port: int, state_dir: Path) -> dict[str, Any]:
    return {
        "state_dir": str(state_dir),
        "retry_every": "1s",
        "mqtt": {"host": "127.0.0.1", "port": broker_port},
        "hue": {"host": "127.0.0.1:9", "username": "u", "https": False, "timeout": "0.5s"},
        "rooms": {"room1": {"lights": {"group": "Room"}, "speaker": {"host": "127.0.0.1:9"}}},
    }


# Each of these made `relaxd run` crash with a traceback and exit 1 while check-config said OK.
SEEN_TO_CRASH_RUN = [
    ({"triggers": [{"topic": "zigbee2mqtt/#/button", "match": "x", "room": "room1"}]}, "triggers.0.topic"),
    ({"schedules": [{"room": "room1", "every": "999999 weeks", "at": "10:00"}]}, "schedules.0.every"),
    ({"schedules": [{"room": "room1", "every": "3000000 days", "at": "10:00"}]}, "schedules.0.every"),
    (
        {"schedules": [{"room": "room1", "every": "1 week", "on": "sun", "at": "10:00", "starting": "9999-12-31"}]},
        "schedules.0.starting",
    ),
    (
        {"timezone": "America/New_York", "schedules": [{"room": "room1", "once": "9999-12-31T23:30"}]},
        "schedules.0.once",
    ),
    ({"mqtt": {"tls": {"ca_certs": "/nonexistent/ca.pem"}}}, "mqtt.tls.ca_certs"),
    ({"mqtt": {"keepalive": "100000s"}}, "mqtt.keepalive"),
    ({"retry_every": "0s"}, "retry_every"),
    # Mosquitto drops the connection over control characters in a topic or client id: never online.
    ({"mqtt": {"base_topic": "P\x0f(\x9c"}}, "mqtt.base_topic"),
    ({"mqtt": {"client_id": "relaxd\x7f"}}, "mqtt.client_id"),
    ({"triggers": [{"topic": "zigbee2mqtt/\ufffe", "match": "x", "room": "room1"}]}, "triggers.0.topic"),
    # Lights on a bridge the hue section does not have: run could not build the room's lights.
    ({"rooms": {"room1": {"lights": {"group": "Room", "bridge": "annex"}}}}, "rooms.room1.lights.bridge"),
]


def merged(config: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(config)
    for key, value in extra.items():
        out[key] = {**out[key], **value} if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@pytest.mark.parametrize(("extra", "key"), SEEN_TO_CRASH_RUN, ids=[k for _, k in SEEN_TO_CRASH_RUN])
@pytest.mark.parametrize("command", ["check-config", "run"])
def test_a_config_run_cannot_start_is_a_config_error_for_both(
    tmp_path: Path, extra: dict[str, Any], key: str, command: str
) -> None:
    path = tmp_path / "relaxd.yaml"
    path.write_text(yaml.safe_dump(merged(base(1, tmp_path / "state"), extra)))
    result = subprocess.run(
        [sys.executable, "-m", "relaxd", command, "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 78, result.stderr
    assert f"{path}: {key}: " in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "state").exists()  # run touched nothing


# --- the property: whenever check-config says OK, run reaches online ------------------------------

durations = st.one_of(
    st.sampled_from(["0s", "0.05s", "1s", "90s", "8m", "1h", "24h", "25h", "7d", "100000s"]),
    st.floats(min_value=0, max_value=1e7, allow_nan=False).map(lambda v: f"{v:g}s"),
)
days = st.sampled_from(["mon", "sun", "mon,thu", "funday", ["sat", "sun"]])
big = st.one_of(st.integers(0, 30), st.sampled_from([52, 520, 521, 3660, 3661, 99999, 999999, 10**9]))
dates = st.one_of(st.dates().map(str), st.sampled_from(["2026-12-06", "2099-12-31", "2100-01-01", "9999-12-31"]))
schedules = st.one_of(
    st.builds(lambda c: {"room": "room1", "cron": c}, st.sampled_from(["0 20 * * fri", "*/5 * * * *", "0 0 31 2 *"])),
    st.builds(
        lambda n, unit, on, start: {
            "room": "room1",
            "every": f"{n} {unit}",
            "at": "10:00",
            **({"on": on} if unit == "weeks" else {}),
            **({"starting": start} if start else {}),
        },
        big,
        st.sampled_from(["weeks", "days"]),
        days,
        st.one_of(st.none(), dates),
    ),
    st.builds(
        lambda d, t: {"room": "room1", "once": f"{d}T{t}"},
        dates,
        st.sampled_from(["00:00", "02:30", "23:30"]),
    ),
)
topics = st.one_of(
    st.sampled_from(["zigbee2mqtt/Massage Button", "a/+/c", "x/#", "#", "+", "a/#/b", "a/b+", "", "a\x00b"]),
    st.text(max_size=20),
)
changes = st.fixed_dictionaries(
    {},
    optional={
        "timezone": st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Pacific/Kiritimati", "Mars/Base"]),
        "retry_every": durations,
        "misfire_grace": durations,
        "health_check_every": durations,
        "shutdown_timeout": durations,
        "schedules": st.lists(schedules, max_size=3),
        "triggers": st.lists(st.builds(lambda t: {"topic": t, "match": "ON", "room": "room1"}, topics), max_size=2),
        "mqtt": st.fixed_dictionaries({}, optional={"keepalive": durations, "base_topic": topics}),
        "hue": st.fixed_dictionaries({}, optional={"timeout": durations}),
        "routines": st.fixed_dictionaries(
            {},
            optional={
                "room1_routine": st.builds(
                    lambda d, c: {"check_in_every": c, "phases": [{"name": "p", "duration": d}]}, durations, durations
                )
            },
        ),
    },
)


def reaches_online(config: dict[str, Any], broker: Mosquitto) -> None:
    async def scenario() -> None:
        daemon = Daemon(load_settings_from(config))
        try:
            await daemon.start()
            assert daemon.bus is not None
            connected = await asyncio.to_thread(daemon.bus.wait_connected, 10)  # type: ignore[attr-defined]
            assert connected, "never online"
        finally:
            await daemon.shutdown()

    asyncio.run(scenario())


def load_settings_from(config: dict[str, Any]) -> Any:
    path = Path(config["state_dir"]).parent / "relaxd.yaml"
    path.write_text(yaml.safe_dump(config))
    return load_settings(path, check_cron=check_cron)


def test_whatever_check_config_accepts_run_starts(tmp_path: Path, mosquitto: Mosquitto) -> None:
    outcomes = {"accepted": 0, "refused": 0}

    @settings(
        max_examples=CONFIG_RUN_EXAMPLES,
        deadline=None,
        database=None,
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=list(HealthCheck),
    )
    @given(changes)
    @example({})  # the base config: accepted
    @example({"schedules": [{"room": "room1", "every": "999999 weeks", "at": "10:00"}]})  # refused
    def one(change: dict[str, Any]) -> None:
        state_dir = tmp_path / f"state{sum(outcomes.values())}"
        config = merged(base(mosquitto.port, state_dir), change)
        try:
            load_settings_from(config)
        except ConfigError as exc:
            assert all(": " in line for line in exc.lines)  # refused with a key path each: exit 78
            outcomes["refused"] += 1
            return
        reaches_online(config, mosquitto)
        outcomes["accepted"] += 1

    one()
    assert outcomes["accepted"] >= 1 and outcomes["refused"] >= 1, outcomes
