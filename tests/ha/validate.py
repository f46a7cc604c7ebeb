"""Checks discovery payloads with Home Assistant's own code; runs in the HA venv (tests/ha/setup.sh), not .venv."""

# stdin: {"messages": [[topic, config JSON], ...], "states": [state payload, ...], "events": [event, ...]}.
# stdout: {"checked": N, "rendered": N, "errors": ["topic: what is wrong", ...], "none_after_value": N}.
# Nothing of Home Assistant runs: each payload goes through the discovery topic pattern, the origin schema
# and its platform's DISCOVERY_SCHEMA, and every template is rendered by HA's template engine against the
# sample payloads (in order, `this` holding what the entity shows), HA's template warnings caught as
# errors. none_after_value counts timestamps cleared with `None`: unknown on HA >= 2024.10, and one
# warning each on HA 2024.3.

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import sys
import tempfile
from typing import Any

PREFIX = "homeassistant/"
NONE = "None"  # PAYLOAD_NONE: what an MQTT entity takes as "no value"
# Keys newer Home Assistant reads that 2024.3 drops silently: `options` of enum sensors came in 2024.9.
LATER_KEYS = {"sensor": {"options"}}


class Problems(logging.Handler):
    """Every warning Home Assistant logs while a template renders is a problem of relaxd's."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def kept(given: Any, validated: Any, path: str, errors: list[str], later: set[str] | None = None) -> None:
    """DISCOVERY_SCHEMA drops unknown keys silently (REMOVE_EXTRA): a dropped key is a typo of ours."""
    if isinstance(given, dict) and isinstance(validated, dict):
        for key, value in given.items():
            if key in (later or set()):
                continue
            if key not in validated:
                errors.append(f"{path}: key {key!r} unknown to Home Assistant (dropped)")
            else:
                kept(value, validated[key], f"{path}.{key}", errors)


def validate(topic: str, config: dict[str, Any], errors: list[str]) -> dict[str, Any] | None:
    discovery = importlib.import_module("homeassistant.components.mqtt.discovery")
    if not topic.startswith(PREFIX):
        errors.append(f"{topic}: not under {PREFIX}")
        return None
    match = discovery.TOPIC_MATCHER.fullmatch(topic[len(PREFIX) :])
    if match is None:
        errors.append(f"{topic}: Home Assistant ignores this discovery topic")
        return None
    component = match.group("component")
    if component not in discovery.SUPPORTED_COMPONENTS:
        errors.append(f"{topic}: component {component} not supported")
        return None
    try:
        discovery.MQTT_ORIGIN_INFO_SCHEMA(config["origin"])
        platform = importlib.import_module(f"homeassistant.components.mqtt.{component}")
        validated: dict[str, Any] = platform.DISCOVERY_SCHEMA(dict(config))
    except Exception as exc:  # voluptuous' Invalid and KeyError alike: what HA would refuse
        errors.append(f"{topic}: {type(exc).__name__}: {exc}")
        return None
    kept(config, validated, topic, errors, LATER_KEYS.get(component))
    return {**validated, **{k: config[k] for k in LATER_KEYS.get(component, set()) if k in config}}


def source(template: Any) -> str:
    """The text of a template: validated configs hold Template objects."""
    return str(getattr(template, "template", template))


UNCHANGED = object()  # what MQTT passes as the default: a failing template leaves the state as it is


def render(hass: Any, template: Any, payload: str, this: dict[str, Any], default: Any = None) -> Any:
    template_mod = importlib.import_module("homeassistant.helpers.template")
    tpl = template_mod.Template(source(template), hass)
    if default is None:
        return str(tpl.async_render_with_possible_json_value(payload, variables={"this": this}))
    return tpl.async_render_with_possible_json_value(payload, default, variables={"this": this})


def follow(hass: Any, topic: str, component: str, cfg: dict[str, Any], data: dict[str, Any]) -> int:
    """Feeds the sample states in order, `this` holding what the entity would show, as HA does."""
    errors: list[str] = data["errors"]
    dt = importlib.import_module("homeassistant.util.dt")
    shown = "unknown"
    for state in data["states"]:
        out = render(hass, cfg["value_template"], json.dumps(state), {"state": shown}, UNCHANGED)
        if out is UNCHANGED:
            if cfg.get("device_class") != "timestamp" or shown != "unknown":
                errors.append(f"{topic}: template failed while showing {shown!r}")
            continue
        out = str(out)
        expect_value(topic, component, cfg, out, dt, errors)
        if out == NONE:
            if shown == "unknown":  # HA before 2024.10 warns for each `None` on a timestamp: never twice
                errors.append(f"{topic}: `None` again while already unknown")
            data["none_after_value"] += cfg.get("device_class") == "timestamp"
            shown = "unknown"
        else:
            shown = out
    return len(data["states"])


def check_templates(hass: Any, topic: str, component: str, cfg: dict[str, Any], data: dict[str, Any]) -> int:
    """Renders every template of cfg against the sample payloads; returns how many renders were checked."""
    errors: list[str] = data["errors"]
    rendered = 0
    states = [json.dumps(s) for s in data["states"]]
    if cfg.get("state_topic", "").endswith("/state") and "value_template" in cfg:
        rendered += follow(hass, topic, component, cfg, data)
    for state in states:
        for this in ({"state": "unknown", "attributes": {}}, {"state": cfg.get("options", [NONE])[0]}):
            for avail in cfg.get("availability", []):
                if "value_template" in avail:
                    out = render(hass, avail["value_template"], state, this)
                    rendered += 1
                    if out not in ("online", "offline"):
                        errors.append(f"{topic}: availability renders {out!r}")
            if cfg.get("json_attributes_topic", "").endswith("/state"):
                out = render(hass, cfg["json_attributes_template"], state, this)
                rendered += 1
                if not isinstance(json.loads(out), dict):
                    errors.append(f"{topic}: attributes render {out!r}, not a JSON object")
    if component == "event":
        for event in data["events"]:
            out = json.loads(render(hass, cfg["value_template"], json.dumps(event), {}))
            rendered += 1
            if out.get("event_type") not in cfg["event_types"]:
                errors.append(f"{topic}: event {event['event']} renders event_type {out.get('event_type')!r}")
    if "command_template" in cfg:
        template_mod = importlib.import_module("homeassistant.helpers.template")
        command = template_mod.Template(source(cfg["command_template"]), hass)
        out = command.async_render({"value": 7}, parse_result=False)
        rendered += 1
        if json.loads(out) != {"action": "extend", "minutes": 7}:
            errors.append(f"{topic}: command_template renders {out!r}")
    return rendered


def expect_value(topic: str, component: str, cfg: dict[str, Any], out: str, dt: Any, errors: list[str]) -> None:
    """What each platform does with the rendered value in HA 2024.3, reduced to accept or complain."""
    if component == "switch" and out not in (cfg.get("state_on", "ON"), cfg.get("state_off", "OFF")):
        errors.append(f"{topic}: switch state renders {out!r}")
    elif component == "binary_sensor" and out not in (cfg["payload_on"], cfg["payload_off"]):
        errors.append(f"{topic}: binary_sensor renders {out!r}")
    elif component == "select" and out != NONE and out not in cfg["options"]:
        errors.append(f"{topic}: select renders {out!r}, no option")
    elif component == "sensor" and cfg.get("device_class") == "enum" and out not in cfg["options"]:
        errors.append(f"{topic}: enum sensor renders {out!r}, no option")
    elif cfg.get("device_class") == "timestamp" and out != NONE and dt.parse_datetime(out) is None:
        errors.append(f"{topic}: timestamp renders {out!r}")


async def main() -> dict[str, Any]:
    data = json.load(sys.stdin)
    data["errors"] = errors = []
    data["none_after_value"] = 0
    problems = Problems()
    logging.getLogger("homeassistant").addHandler(problems)
    core = importlib.import_module("homeassistant.core")
    checked = rendered = 0
    with tempfile.TemporaryDirectory() as config_dir:
        hass = core.HomeAssistant(config_dir)
        for topic, body in data["messages"]:
            checked += 1
            try:
                config = json.loads(body)
            except ValueError as exc:
                errors.append(f"{topic}: not JSON: {exc}")
                continue
            validated = validate(topic, config, errors)
            if validated is None:
                continue
            component = topic[len(PREFIX) :].split("/")[0]
            before = len(problems.lines)
            try:
                rendered += check_templates(hass, topic, component, validated, data)
            except Exception as exc:
                errors.append(f"{topic}: rendering failed: {type(exc).__name__}: {exc}")
            errors.extend(f"{topic}: Home Assistant logged: {line}" for line in problems.lines[before:])
    return {"checked": checked, "rendered": rendered, "errors": errors, "none_after_value": data["none_after_value"]}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
