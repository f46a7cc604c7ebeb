"""docs/lifecycle.md says what core/lifecycle.py does: the command table and the steps, cell by cell."""

from __future__ import annotations

from pathlib import Path

import pytest

from relaxd.core.events import ACTIONS
from relaxd.core.lifecycle import LIFE_STATES, PUBLIC, STEP_MEANING, TABLE

DOC = Path(__file__).resolve().parent.parent / "docs" / "lifecycle.md"
MQTT_DOC = DOC.parent / "mqtt.md"  # the contract for followers carries the same table


def table_after(heading: str, doc: Path = DOC) -> list[list[str]]:
    text = doc.read_text()
    section = text[text.index(heading) :]
    first = section.index("|")
    block = section[first:].split("\n\n", 1)[0]
    rows = [line for line in block.splitlines() if line.startswith("|") and not line.startswith("| ---")]
    return [[cell.strip().strip("`") for cell in row.strip("|").split("|")] for row in rows]


@pytest.mark.parametrize("doc", [DOC, MQTT_DOC], ids=["lifecycle.md", "mqtt.md"])
def test_the_command_table_is_the_code_table(doc: Path) -> None:
    header, *rows = table_after("What every command does in every state", doc)
    assert header == ["command", *LIFE_STATES]
    assert [row[0] for row in rows] == list(ACTIONS)
    for row in rows:
        action = row[0]
        for state, cell in zip(LIFE_STATES, row[1:], strict=True):
            step = TABLE[state][action]  # type: ignore[index]
            assert cell == (step or "rejected"), (action, state)


def test_every_step_is_explained_as_the_code_says() -> None:
    _, *rows = table_after("The steps:")
    assert {row[0]: row[1] for row in rows} == STEP_MEANING


def test_the_published_states_are_the_code_ones() -> None:
    _, *rows = table_after("## States")
    assert {row[0]: row[2].split(" ")[0].strip("`") for row in rows} == PUBLIC
