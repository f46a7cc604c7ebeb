"""Loading the config file: YAML, env overrides, cross-references, one readable line per problem."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsError

from relaxd.core.config import ROOM_ID_RE, Settings, TriggerConfig
from relaxd.core.hue_config import lights_problems
from relaxd.core.routines import Routine, builtin_routines
from relaxd.core.schedule_config import ScheduleConfig


class _Yaml12Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false, so `on: sun` in a schedule stays the key "on"."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def parse_yaml(text: str) -> Any:
    """Parse YAML with 1.2 booleans (used for the config file and the README's examples)."""
    return yaml.load(text, Loader=_Yaml12Loader)


class ConfigError(Exception):
    """A config that cannot be used; `problems` holds one human line each (never a secret).

    A problem is blamed on the file, or on the environment variable it came from when given as
    (variable, problem)."""

    def __init__(self, path: Path | None, problems: Sequence[str | tuple[str, str]]) -> None:
        self.path = path
        where = str(path) if path is not None else "config"
        located = [(where, p) if isinstance(p, str) else p for p in problems]
        self.problems = [_printable(p) for _, p in located]
        self.lines = [f"{_printable(w)}: {p}" for (w, _), p in zip(located, self.problems, strict=True)]
        super().__init__("\n".join(self.lines))


def _printable(text: str) -> str:
    """One line per problem, even for a key like "\\r", and no terminal control codes from the file."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, ["file not found (give -c FILE or set RELAXD_CONFIG)"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [f"cannot read: {exc.__class__.__name__}: {exc}"]) from None
    try:
        data = parse_yaml(text)
    except yaml.YAMLError as exc:
        # Only the position and the problem: the offending line might hold a password.
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "invalid YAML"
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise ConfigError(path, [f"{where}YAML syntax error: {problem}"]) from None
    except RecursionError:
        raise ConfigError(path, [f"YAML nested more than {MAX_DEPTH} levels deep"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(path, ["the top level must be a mapping of keys (timezone, mqtt, rooms, ...)"])
    shape = _shape_problem(data)
    if shape is not None:
        raise ConfigError(path, [shape])
    odd = [k for k in data if not isinstance(k, str)]
    if odd:
        # Settings(**data) would fail with a TypeError; say which keys instead.
        raise ConfigError(path, [f"{k!r}: keys must be names, not {type(k).__name__}s" for k in odd[:10]])
    return data


# Far beyond any real config, far below what Python's recursion (pydantic, the YAML dumper) copes with.
MAX_DEPTH = 32
# Values counted with YAML aliases expanded: `*alias` chains can otherwise make a small file
# stand for billions of values, and validating or printing it would never end.
MAX_VALUES = 100_000


def _shape_problem(data: Any) -> str | None:
    """Why the parsed YAML is too deep or too large to validate, or None (an iterative walk)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    seen = 0
    while stack:
        node, depth = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            return f"the config holds more than {MAX_VALUES} values (with YAML aliases expanded)"
        if depth > MAX_DEPTH:
            return f"YAML nested more than {MAX_DEPTH} levels deep"
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return None


def _dotted(loc: tuple[str | int, ...]) -> str:
    # pydantic adds the tag of a union member (e.g. "str", "dict[str,any]") to the location.
    return ".".join(_key_path(loc)) or "(top level)"


# "dict[str,any]", "literal['auto']", "function-after[...]": pydantic's tags, not the user's keys.
_UNION_TAG = re.compile(r"^[a-z][a-z_-]*\[.*\]$")


def validation_lines(exc: ValidationError) -> list[str]:
    """One `dotted.key: problem` line per pydantic error (config files and schedule requests)."""
    return [line for _, line in _located_lines(exc, {})]


def _located_lines(exc: ValidationError, environ: Mapping[str, str]) -> list[tuple[str | None, str]]:
    """validation_lines, each with the RELAXD_ variable its value came from (None: not the environment)."""
    # Variables are read case-insensitively; a problem names the variable as it was written.
    env_names = {name.upper(): name for name in environ if name.upper().startswith(ENV_PREFIX)}
    lines: list[tuple[str | None, str]] = []
    for err in exc.errors(include_input=False, include_url=False):
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif msg.startswith("Value error, "):
            msg = msg.removeprefix("Value error, ")
        line = (_env_variable(_key_path(err["loc"]), env_names), f"{_dotted(err['loc'])}: {msg}")
        if line not in lines:
            lines.append(line)
    return lines


ENV_PREFIX = "RELAXD_"


def _key_path(loc: tuple[str | int, ...]) -> list[str]:
    return [str(p) for p in loc if not (isinstance(p, str) and (_UNION_TAG.match(p) or p in {"str", "bool"}))]


def _env_variable(path: list[str], env_names: dict[str, str]) -> str | None:
    """The variable that set the key at path or a section above it (the environment beats the file)."""
    for depth in range(len(path), 0, -1):
        name = ENV_PREFIX + "__".join(path[:depth]).upper()
        if name in env_names:
            return env_names[name]
    return None


def _reference_problems(settings: Settings) -> list[str]:
    problems: list[str] = []
    routines = all_routines(settings)
    for room_id, room in settings.rooms.items():
        if not ROOM_ID_RE.match(room_id):
            problems.append(f"rooms.{room_id}: room ids are 1-32 lowercase letters, digits or _")
        if room.routine not in routines:
            problems.append(f"rooms.{room_id}.routine: unknown routine {room.routine!r}")
        if room.lights is not None and settings.hue is None:
            problems.append(f"rooms.{room_id}.lights: the room has lights but there is no hue section")
    problems += lights_problems(settings.hue, settings.rooms)
    refs: list[tuple[str, int, TriggerConfig | ScheduleConfig]] = [
        *(("triggers", i, t) for i, t in enumerate(settings.triggers)),
        *(("schedules", i, sc) for i, sc in enumerate(settings.schedules)),
    ]
    for kind, i, item in refs:
        if item.room not in settings.rooms:
            problems.append(f"{kind}.{i}.room: unknown room {item.room!r}")
        if item.routine is not None and item.routine not in routines:
            problems.append(f"{kind}.{i}.routine: unknown routine {item.routine!r}")
    return problems


def all_routines(settings: Settings) -> dict[str, Routine]:
    """Built-in routines overlaid with the config's own (a config routine may replace a built-in)."""
    return {**builtin_routines(), **settings.routines}


CronCheck = Callable[[str], None]


def load_settings(path: Path, *, check_cron: CronCheck | None = None) -> Settings:
    """Read, override from RELAXD_ environment, validate; raises ConfigError listing every problem.

    check_cron raises ValueError for a cron line it cannot use; the CLI passes the APScheduler-backed
    check in (the core does not import APScheduler), so a bad cron line is a config error (78).
    """
    data = _read_yaml(path)
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        # A bad value from RELAXD_MQTT__PORT is the variable's fault, not the file's.
        lines = _located_lines(exc, os.environ)
        raise ConfigError(path, [line if var is None else (var, line) for var, line in lines]) from None
    except SettingsError as exc:
        # A RELAXD_ variable for a whole section that is not JSON; the message names the field,
        # never the value (it may be a secret).
        field = re.search(r'field "(\w+)"', str(exc))
        name = ENV_PREFIX + field.group(1).upper() if field else ""
        where = next((var for var in os.environ if var.upper() == name), name or "environment")
        raise ConfigError(
            path,
            [
                (
                    where,
                    f"{exc}; a RELAXD_ variable for a section (e.g. RELAXD_ROOMS) must be JSON, "
                    "or set single keys with __",
                )
            ],
        ) from None
    problems = _reference_problems(settings)
    if check_cron is not None:
        for i, schedule in enumerate(settings.schedules):
            if schedule.cron is not None:
                try:
                    check_cron(schedule.cron)
                except ValueError as exc:
                    problems.append(f"schedules.{i}.cron: {exc}")
    if problems:
        raise ConfigError(path, problems)
    return settings


def _masked(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return "**********"
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def resolved_yaml(settings: Settings) -> str:
    """The resolved config as YAML with every secret masked (`relaxd check-config`)."""
    data = settings.model_dump(mode="python", exclude_none=True)
    data = _masked(data)
    text: str = yaml.safe_dump(_jsonable(data), sort_keys=False, allow_unicode=True)
    return text


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
