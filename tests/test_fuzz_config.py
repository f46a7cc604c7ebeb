"""Fuzzed config files and environment overrides for `relaxd check-config`: exit 0 or 78, readable, never a secret."""

from __future__ import annotations

import contextlib
import copy
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import certifi
import pytest
import yaml
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from relaxd.app.cli import main
from tests.reliability import CONFIG_FUZZ_EXAMPLES, TEST_TIMEOUT_S

pytestmark = pytest.mark.timeout(TEST_TIMEOUT_S)

HUE_SECRET = "hue-SECRET-user-4242"
MQTT_SECRET = "mqtt-SECRET-pw-4242"
BASE: dict[str, Any] = {
    "timezone": "Europe/Berlin",
    "state_dir": "/tmp/relaxd-fuzz",
    "log_level": "INFO",
    "retry_every": "10s",
    "mqtt": {
        "host": "127.0.0.1",
        "port": 1883,
        "username": "relaxd",
        "password": MQTT_SECRET,
        "tls": {"ca_certs": certifi.where()},  # a real CA bundle: the config loads it
        "keepalive": "60s",
        "base_topic": "relaxd",
    },
    "hue": {"host": "127.0.0.1:8080", "username": HUE_SECRET, "https": "auto", "timeout": "5s"},
    "rooms": {
        "bedroom": {
            "lights": {"group": "Bedroom"},
            "speaker": {"name": "Bedroom"},
            "music": {"favorite": "Spa Radio"},
            "max_volume": 30,
            "routine": "evening",
            "restore_fade": "5s",
        },
        "studio": {"lights": {"names": ["Lamp", "Ceiling"]}},
    },
    "routines": {
        "evening": {
            "check_in_every": "10m",
            "phases": [
                {
                    "name": "effleurage",
                    "duration": "8m",
                    "intensity": 0.3,
                    "lights": {"brightness": "35%", "color_temp": "2200K", "transition": "20s"},
                    "music": {"volume": 14, "ramp": "30s"},
                    "cues": {"table_heat": "warm"},
                },
                {"name": "calm", "duration": "5m", "lights": {"brightness": "15%", "xy": [0.5, 0.4]}},
            ],
        }
    },
    "triggers": [
        {"topic": "zigbee2mqtt/Massage Button", "match": {"action": "single"}, "room": "bedroom", "do": "toggle"},
        {"topic": "home/studio", "match": "ON", "room": "studio", "do": "start"},
    ],
    "schedules": [
        {"room": "bedroom", "cron": "0 20 * * fri"},
        {"room": "bedroom", "routine": "quick", "every": "2 weeks", "on": "sun", "at": "10:00"},
        {"room": "studio", "once": "2026-12-24T18:30"},
    ],
}
ENV_NAMES = [
    "RELAXD_MQTT__PORT",
    "RELAXD_MQTT__PASSWORD",
    "RELAXD_HUE__USERNAME",
    "RELAXD_HUE__TIMEOUT",
    "RELAXD_ROOMS",
    "RELAXD_ROOMS__BEDROOM__MAX_VOLUME",
    "RELAXD_MQTT",
    "RELAXD_HUE",
    "RELAXD_TRIGGERS",
    "RELAXD_ROUTINES",
    "RELAXD_STATE_DIR",
    "RELAXD_LOG_LEVEL",
    "RELAXD_TIMEZONE",
    "RELAXD_SCHEDULES",
    "RELAXD_MQTT__TLS",
    "RELAXD_RETRY_EVERY",
    "RELAXD_ROOMS__BEDROOM",
]
NASTY = [
    "",
    "\n",
    "---\n...\n",
    "- a\n- b\n",
    "42",
    "1: 2\n",
    "? [a, b]\n: c\n",
    "rooms: {1: {speaker: {host: x}}}\n",
    "[" * 3000 + "]" * 3000,
    "a: " + "[" * 300 + "]" * 300 + "\n",
    "{a: " * 200 + "1" + "}" * 200,
    "!!python/object/apply:os.system ['echo pwned']\n",
    "rooms: !!binary aGVsbG8=\n",
    "rooms: !!set {a, b}\n",
    "timezone: .nan\nrooms: {a: {speaker: {host: x}}}\n",
    "rooms:\n  a:\n    speaker: &s {host: x}\n    lights: *s\n",
    # An alias bomb where anything goes (a phase's cues): 9^7 values from 400 bytes.
    "rooms: {a: {speaker: {host: x}}}\nroutines:\n  r:\n    phases:\n    - name: p\n      duration: 1m\n"
    "      cues:\n        z: &a [x, x, x, x, x, x, x, x, x]\n"
    + "".join(
        f"        {k}: &{k}{k} [{', '.join([f'*{j}'] * 9)}]\n"
        for j, k in zip(["a", "bb", "cc", "dd", "ee", "ff"], ["b", "c", "d", "e", "f", "g"], strict=True)
    ),
    "\ufeffrooms: {a: {speaker: {host: x}}}\n",
    "rooms: {a: {speaker: {host: x}}}\n\x00\n",
    "\t- :\n",
    "mqtt: {password: [" + MQTT_SECRET + "]}\nrooms: {a: {speaker: {host: x}}}\n",
    "hue: {username: {" + HUE_SECRET + ": 1}, host: h}\nrooms: {a: {lights: {group: g}}}\n",
]
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["5s", "1h30m", "130%", "900K", "0 20 * * fri", "2 weeks", "sun", "x" * 300]),
)
values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=3)
    ),
    max_leaves=8,
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from paths(value, (*prefix, i))


ALL_PATHS = list(paths(BASE))[1:]


@st.composite
def mutated_configs(draw: st.DrawFn) -> str:
    """The full config with a few values replaced, keys removed or unknown keys added."""
    config = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(ALL_PATHS))
        parent: Any = config
        try:
            for key in path[:-1]:
                parent = parent[key]
            kind = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
            if kind == "replace":
                parent[path[-1]] = draw(values)
            elif kind == "delete" and isinstance(parent, dict):
                del parent[path[-1]]
            elif isinstance(parent, dict):
                parent[draw(st.text(min_size=1, max_size=10))] = draw(values)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation changed the shape here
    text = yaml.safe_dump(config, allow_unicode=True)
    if draw(st.integers(0, 4)) == 0:  # and a slip of the keyboard
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.text(max_size=3)) + text[at + draw(st.integers(0, 3)) :]
    return text


# Free-form places: any text (or any value for cues and match) keeps the config valid, so these
# reach the resolved-config printing with odd names, control characters and deep cues.
FREE_TEXT = [
    ("mqtt", "host"),
    ("mqtt", "client_id"),
    ("hue", "host"),
    ("rooms", "bedroom", "lights", "group"),
    ("rooms", "studio", "lights", "names", 0),
    ("rooms", "bedroom", "speaker", "name"),
    ("rooms", "bedroom", "music", "favorite"),
    ("routines", "evening", "description"),
    ("triggers", 0, "topic"),
    ("triggers", 1, "match"),
    ("mqtt", "username"),
]
FREE_ANY = [("routines", "evening", "phases", 0, "cues", "table_heat"), ("triggers", 0, "match", "action")]


@st.composite
def valid_variations(draw: st.DrawFn) -> str:
    config = copy.deepcopy(BASE)
    for path, new in (
        (draw(st.sampled_from(FREE_TEXT)), st.text(min_size=1, max_size=40)),
        (draw(st.sampled_from(FREE_ANY)), values),
    ):
        parent: Any = config
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = draw(new)
    return yaml.safe_dump(config, allow_unicode=draw(st.booleans()))


config_texts = st.one_of(
    mutated_configs(),
    mutated_configs(),
    mutated_configs(),
    valid_variations(),
    st.sampled_from(NASTY),
    st.text(max_size=200),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
)
environments = st.dictionaries(
    st.sampled_from(ENV_NAMES),
    st.one_of(
        st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30),
        st.sampled_from(["{", "[1", "{}", "[]", "null", '{"bedroom": 1}', "1e400", "70000", "-1", '"x"']),
    ),
    max_size=2,
)


def check_config(path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["check-config", "-c", str(path)])
    return code, out.getvalue(), err.getvalue()


def assert_readable(path: Path, code: int, out: str, err: str) -> None:
    assert code in (0, 78), (code, err)
    for text in (out, err):
        assert "Traceback" not in text
        assert HUE_SECRET not in text and MQTT_SECRET not in text
    if code == 78:
        lines = err.splitlines()
        assert lines and out == ""
        for line in lines:
            # A problem names the file, or the RELAXD_ variable its value came from.
            where = f"{path}: " if line.startswith(f"{path}: ") else line.partition(": ")[0] + ": "
            assert where == f"{path}: " or where.upper().startswith("RELAXD_"), line
            assert len(line) > len(where), line
    else:
        assert err.startswith(f"# {path}: OK")
        assert isinstance(yaml.safe_load(out), dict)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("RELAXD_"):
            monkeypatch.delenv(name)


@pytest.mark.usefixtures("clean_env")
def test_the_unmutated_fuzzing_base_is_a_good_config(tmp_path: Path) -> None:
    path = tmp_path / "relaxd.yaml"
    path.write_text(yaml.safe_dump(BASE))
    code, out, err = check_config(path)
    assert code == 0, err
    assert_readable(path, code, out, err)


@pytest.mark.usefixtures("clean_env")
def test_fuzzed_configs_exit_0_or_78_with_readable_lines_and_no_secret(tmp_path: Path) -> None:
    path = tmp_path / "relaxd.yaml"
    outcomes = {0: 0, 78: 0}

    @settings(max_examples=CONFIG_FUZZ_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(config_texts, environments)
    def check(text: str, env: dict[str, str]) -> None:
        note(f"config:\n{text}\nenvironment: {env}")
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        saved = {name: os.environ.get(name) for name in env}
        os.environ.update(env)
        try:
            code, out, err = check_config(path)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        assert_readable(path, code, out, err)
        outcomes[code] += 1

    check()
    # Both ways out were taken many times: the fuzzing reached deep into valid configs too.
    assert outcomes[0] >= CONFIG_FUZZ_EXAMPLES // 20 and outcomes[78] >= CONFIG_FUZZ_EXAMPLES // 4, outcomes


@pytest.mark.e2e
@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    "text",
    [
        NASTY[5],
        NASTY[8],
        NASTY[11],
        NASTY[16],
        NASTY[-1],
        yaml.safe_dump({**BASE, "mqtt": {**BASE["mqtt"], "port": "x"}}),
    ],
    ids=["int-key", "deep", "python-tag", "alias-bomb", "secret-as-key", "bad-port"],
)
def test_check_config_as_a_process_exits_0_or_78_without_a_traceback(tmp_path: Path, text: str) -> None:
    path = tmp_path / "relaxd.yaml"
    path.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "relaxd", "check-config", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "RELAXD_ROOMS__BEDROOM": "{not json"},
    )
    assert_readable(path, result.returncode, result.stdout, result.stderr)
