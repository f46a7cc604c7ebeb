"""The README's Home Assistant section names exactly the entities discovery creates."""

from __future__ import annotations

import json
import re
from pathlib import Path

from relaxd.core.config import Settings
from relaxd.core.configfile import all_routines
from relaxd.core.discovery import discovery_messages
from relaxd.core.topics import Topics

README = Path(__file__).resolve().parent.parent / "README.md"
ENTITY = re.compile(r"\b(switch|select|sensor|binary_sensor|button|number|event)\.([a-z0-9_]+)\b")


def section() -> str:
    text = README.read_text()
    start = text.index("### Home Assistant\n")
    return text[start : text.index("\n### ", start + 1)]


def entity_ids(base: str = "relaxd") -> set[str]:
    """What Home Assistant names the entities: `<component>.<object_id>` of each discovery config."""
    settings = Settings.model_validate(
        {
            "hue": {"host": "127.0.0.1:9", "username": "u"},
            "rooms": {"bedroom": {"lights": {"group": "Bedroom"}, "speaker": {"host": "127.0.0.1:9"}}},
        }
    )
    return {
        f"{topic.split('/')[1]}.{json.loads(body)['object_id']}"
        for topic, body in discovery_messages(settings, Topics(base), all_routines(settings))
    }


def test_the_entity_table_lists_every_entity_and_no_other() -> None:
    table = "\n".join(line for line in section().splitlines() if line.startswith("| `"))
    assert {f"{c}.{o}" for c, o in ENTITY.findall(table)} == entity_ids()


def test_the_card_and_automations_use_only_real_entities() -> None:
    used = {f"{c}.{o}" for c, o in ENTITY.findall(section())} - {"switch.heated_table", "switch.turn_on"}
    used -= {"switch.turn_off", "persistent_notification.create"}
    known = entity_ids() | {"switch.site2_bedroom_massage_mode"}
    assert used <= known, used - known
    assert "switch.site2_bedroom_massage_mode" in entity_ids("site2")
    site2_topic = "homeassistant/switch/site2-bedroom/massage_mode/config"
    assert site2_topic in section()
    settings = Settings.model_validate({"rooms": {"bedroom": {"speaker": {"host": "127.0.0.1:9"}}}})
    assert site2_topic in dict(discovery_messages(settings, Topics("site2"), {}))
