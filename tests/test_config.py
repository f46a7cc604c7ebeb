"""Config loading: the example loads, env overrides win, every bad config gives a key path and 78."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from relaxd.core.configfile import ConfigError, load_settings, parse_yaml, resolved_yaml
from relaxd.core.units import format_duration, kelvin_to_mired, parse_duration, percent_to_bri_254

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config" / "relaxd.example.yaml"
MINIMAL = """
hue: {host: 127.0.0.1:8080, username: "hue-secret-user"}
mqtt: {password: "mqtt-secret-pw"}
rooms:
  bedroom: {lights: {group: Bedroom}}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "relaxd.yaml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text))
    return info.value.lines


def test_the_example_config_loads_with_every_section() -> None:
    settings = load_settings(EXAMPLE)
    assert settings.hue is not None and settings.hue.username.get_secret_value().startswith("paste")
    assert set(settings.rooms) == {"bedroom", "studio"}
    assert settings.rooms["bedroom"].music is not None
    assert settings.routines["evening"].phases[0].lights is not None
    assert settings.routines["evening"].phases[0].duration == 480
    assert settings.triggers[0].match == {"action": "single"} and settings.triggers[2].match == "ON"
    assert settings.schedules[1].weekdays() == ["sun"] and settings.schedules[1].every == "2 weeks"
    assert settings.misfire_grace == 900


def test_units_are_converted() -> None:
    assert parse_duration("1h30m") == 5400 and parse_duration("90s") == 90 and parse_duration(8) == 8
    assert format_duration(5400) == "1h30m" and format_duration(480) == "8m"
    assert percent_to_bri_254(35) == 89 and percent_to_bri_254(0) == 1 and percent_to_bri_254(100) == 254
    assert kelvin_to_mired(2200) == 455 and kelvin_to_mired(6500) == 154


def test_environment_overrides_beat_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAXD_MQTT__PORT", "1884")
    monkeypatch.setenv("RELAXD_MQTT__PASSWORD", "from-env")
    monkeypatch.setenv("RELAXD_ROOMS__BEDROOM__MAX_VOLUME", "12")
    settings = load_settings(write(tmp_path, MINIMAL))
    assert settings.mqtt.port == 1884
    assert settings.mqtt.password is not None and settings.mqtt.password.get_secret_value() == "from-env"
    assert settings.rooms["bedroom"].max_volume == 12
    assert settings.rooms["bedroom"].lights is not None  # the rest of the room still comes from the file


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (MINIMAL + "colour: red\n", "colour: unknown key"),
        (
            MINIMAL.replace("{group: Bedroom}", "{group: Bedroom, brightnes: 3}"),
            "rooms.bedroom.lights.brightnes: unknown key",
        ),
        (
            MINIMAL + "routines:\n  r: {phases: [{name: a, duration: soon}]}\n",
            "routines.r.phases.0.duration: 'soon' is not a duration",
        ),
        (
            MINIMAL + "routines:\n  r: {phases: [{name: a, duration: 1m, lights: {brightness: 130%}}]}\n",
            "routines.r.phases.0.lights.brightness: a percentage must be between 0% and 100%",
        ),
        (
            MINIMAL
            + "routines:\n  r: {phases: [{name: a, duration: 1m, lights: {brightness: 3%, color_temp: 900K}}]}\n",
            "routines.r.phases.0.lights.color_temp: a colour temperature must be between 2000K and 6500K",
        ),
        (MINIMAL.replace("bedroom:", "Bed-Room:"), "rooms.Bed-Room: room ids are"),
        (
            MINIMAL + "triggers: [{topic: a/b, match: {action: single}, room: kitchen}]\n",
            "triggers.0.room: unknown room 'kitchen'",
        ),
        (
            MINIMAL + "schedules: [{room: bedroom, routine: nope, cron: '0 20 * * fri'}]\n",
            "schedules.0.routine: unknown routine 'nope'",
        ),
        (MINIMAL + "schedules: [{room: bedroom, every: 0 weeks, at: '10:00'}]\n", "schedules.0.every: must look like"),
        (
            MINIMAL + "schedules: [{room: bedroom, every: 2 weeks, on: funday, at: '10:00'}]\n",
            "schedules.0: unknown weekday 'funday'",
        ),
        (MINIMAL + "timezone: Mars/Olympus\n", "timezone: unknown time zone 'Mars/Olympus'"),
        (
            MINIMAL.replace("rooms:\n  bedroom: {lights: {group: Bedroom}}", "rooms:\n  bedroom: {}"),
            "rooms.bedroom: a room needs lights, a speaker, or both",
        ),
        (MINIMAL + "mqtt: {port: 99999}\n", "mqtt.port: Input should be less than or equal to 65535"),
        ("rooms: [1, 2\n", "YAML syntax error"),
        ("- just\n- a list\n", "the top level must be a mapping"),
    ],
)
def test_each_bad_config_names_the_file_and_the_key_path(tmp_path: Path, text: str, expected: str) -> None:
    lines = problems(tmp_path, text)
    path = str(tmp_path / "relaxd.yaml")
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert any(expected in line for line in lines), lines


def test_several_problems_are_reported_one_line_each(tmp_path: Path) -> None:
    lines = problems(tmp_path, MINIMAL + "colour: red\nretry_every: never\n")
    assert len(lines) == 2


def test_schedule_on_key_is_not_a_yaml_boolean() -> None:
    assert parse_yaml("on: sun\nyes: no\nx: true") == {"on": "sun", "yes": "no", "x": True}


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relaxd", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
        check=False,
    )


def test_check_config_masks_secrets(tmp_path: Path) -> None:
    result = run_cli(
        "check-config", "-c", str(write(tmp_path, MINIMAL)), env={"RELAXD_HUE__USERNAME": "env-secret-user"}
    )
    assert result.returncode == 0, result.stderr
    assert "**********" in result.stdout and "host: 127.0.0.1:8080" in result.stdout
    for secret in ("hue-secret-user", "mqtt-secret-pw", "env-secret-user"):
        assert secret not in result.stdout + result.stderr


def test_bad_config_exits_78_with_no_traceback_and_no_secret(tmp_path: Path) -> None:
    text = MINIMAL + "mqtt: {password: 'mqtt-secret-pw', port: nope}\n"
    result = run_cli("check-config", "-c", str(write(tmp_path, text)))
    assert result.returncode == 78
    assert "mqtt.port" in result.stderr and "Traceback" not in result.stderr
    assert "mqtt-secret-pw" not in result.stderr + result.stdout


def test_a_bad_environment_variable_is_blamed_on_the_variable_not_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "colour: red\n")  # the file has a problem of its own too
    result = run_cli(
        "check-config",
        "-c",
        str(path),
        env={"RELAXD_MQTT__PORT": "abc", "relaxd_rooms__bedroom__max_volume": "500", "RELAXD_MQTT__PASSWORD": "s3cr3t"},
    )
    assert result.returncode == 78, result.stderr
    lines = result.stderr.splitlines()
    assert (
        "RELAXD_MQTT__PORT: mqtt.port: Input should be a valid integer, unable to parse string as an integer" in lines
    )
    # As the user spelt it (variables are read case-insensitively).
    assert "relaxd_rooms__bedroom__max_volume: rooms.bedroom.max_volume: Input should be less than or equal to 100" in (
        lines
    )
    assert [line for line in lines if line.startswith(f"{path}: ")] == [f"{path}: colour: unknown key"]
    assert "s3cr3t" not in result.stderr and "abc" not in result.stderr


def test_a_section_variable_that_is_not_json_is_named(tmp_path: Path) -> None:
    result = run_cli("check-config", "-c", str(write(tmp_path, MINIMAL)), env={"RELAXD_MQTT": "{port: 1"})
    assert result.returncode == 78, result.stderr
    assert result.stderr.startswith("RELAXD_MQTT: ") and "must be JSON" in result.stderr, result.stderr
    json_section = run_cli("check-config", "-c", str(write(tmp_path, MINIMAL)), env={"RELAXD_MQTT": '{"port": "x"}'})
    assert json_section.returncode == 78
    assert json_section.stderr.startswith("RELAXD_MQTT: mqtt.port: "), json_section.stderr


def test_yaml_error_does_not_echo_the_line_with_the_secret(tmp_path: Path) -> None:
    result = run_cli("check-config", "-c", str(write(tmp_path, "mqtt: {password: 'p4ss\n")))
    assert result.returncode == 78 and "p4ss" not in result.stderr and "line" in result.stderr


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    result = run_cli("check-config", "-c", str(tmp_path / "absent.yaml"))
    assert result.returncode == 78 and "file not found" in result.stderr


def test_usage_error_exits_2() -> None:
    assert run_cli("no-such-command").returncode == 2


def test_routines_lists_builtins_with_totals(tmp_path: Path) -> None:
    result = run_cli("routines", env={"RELAXD_CONFIG": str(tmp_path / "none.yaml")})
    assert result.returncode == 0
    assert "classic  (1h, 6 phases)" in result.stdout and "quick  (20m, 6 phases)" in result.stdout
    for phase in ("effleurage", "petrissage", "friction", "tapotement", "calming_effleurage"):
        assert phase in result.stdout


def test_resolved_yaml_round_trips(tmp_path: Path) -> None:
    settings = load_settings(EXAMPLE)
    text = resolved_yaml(settings).replace("'**********'", "secret")
    again = load_settings(write(tmp_path, text))
    assert again.routines == settings.routines and again.rooms == settings.rooms
