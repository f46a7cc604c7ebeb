"""The breathing config and the built-in breathing and focus routines; the breath topic in the docs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from relaxd.core.breath import BreathPlan, PhaseBreathing
from relaxd.core.routines import Phase, builtin_routines
from relaxd.core.topics import Topics
from tests.test_docs_mqtt import first_column, table_after

ROOT = Path(__file__).resolve().parent.parent
# What the pacer publishes for every edge (tests/test_breath.py reads them from a recording bus).
BREATH_FIELDS = ("breath", "duration_s", "cycle", "at", "lights")


def test_a_breath_is_inhale_hold_exhale_rest_between_two_brightnesses() -> None:
    breath = PhaseBreathing.model_validate({"inhale": "4s", "hold": "2s", "exhale": "6s", "brightness": ["20%", "35%"]})
    assert (breath.inhale, breath.hold, breath.exhale, breath.rest, breath.volume_swell) == (4, 2, 6, 0, 0)
    assert breath.cycle_s == 12 and breath.per_minute == 5
    plan = BreathPlan(breath, anchor_s=100.0)
    edges = [plan.edge(i) for i in range(5)]  # no rest step: a rest of 0 s is none
    assert [(e.step, e.at_s, e.duration_s, e.cycle) for e in edges] == [
        ("inhale", 100.0, 4.0, 0),
        ("hold", 104.0, 2.0, 0),
        ("exhale", 106.0, 6.0, 0),
        ("inhale", 112.0, 4.0, 1),
        ("hold", 116.0, 2.0, 1),
    ]
    assert [e.at_s for e in plan.light_edges(1)] == [112.0, 118.0]
    assert (breath.bri_254("inhale"), breath.bri_254("exhale")) == (89, 51)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"inhale": "4s", "exhale": "6s", "brightness": ["35%", "20%"]}, "brighter than its bottom"),
        ({"inhale": "0.5s", "exhale": "6s", "brightness": ["20%", "35%"]}, "greater than or equal to 1"),
        ({"inhale": "4s", "exhale": "2m", "brightness": ["20%", "35%"]}, "less than or equal to 60"),
        ({"inhale": "4s", "exhale": "6s", "brightness": ["20%", "35%"], "volume_swell": 9}, "less than or equal"),
        ({"inhale": "4s", "exhale": "6s", "brightness": ["20%"]}, "brightness"),
        ({"inhale": "4s", "exhale": "6s", "brightness": ["20%", "35%"], "depth": 3}, "Extra inputs"),
    ],
)
def test_a_breath_that_makes_no_sense_is_refused(data: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        PhaseBreathing.model_validate(data)


def test_a_volume_swell_needs_the_phase_music() -> None:
    breath = {"inhale": "4s", "exhale": "6s", "brightness": ["20%", "35%"], "volume_swell": 2}
    with pytest.raises(ValidationError, match="needs the phase's music"):
        Phase.model_validate({"name": "b", "duration": "5m", "breathing": breath})
    Phase.model_validate({"name": "b", "duration": "5m", "breathing": breath, "music": {"volume": 10}})


def test_breathe_is_a_quarter_hour_of_slow_breathing_between_a_settle_and_a_calm_finish() -> None:
    routine = builtin_routines()["breathe"]
    assert routine.duration_s == 15 * 60
    settle, guided, finish = routine.phases
    assert settle.breathing is None and finish.breathing is None
    assert guided.breathing is not None and 5.5 <= guided.breathing.per_minute <= 6.5
    assert guided.duration >= 8 * 60 and guided.music is not None and guided.breathing.volume_swell > 0


@pytest.mark.parametrize(("name", "focus"), [("shoulders", "upper_back"), ("lower_back", "lower_back")])
def test_the_focus_routines_cue_their_area_in_every_phase(name: str, focus: str) -> None:
    routine = builtin_routines()[name]
    assert all(phase.cues["focus"] == focus for phase in routine.phases)
    by_technique = {p.technique_name: p.duration for p in routine.phases}
    assert routine.phases[-1].breathing is not None  # breathing added to an ordinary phase
    if name == "shoulders":  # longer petrissage and friction than the classic's share of the hour
        classic = {p.technique_name: p.duration for p in builtin_routines()["classic"].phases}
        share = routine.duration_s / builtin_routines()["classic"].duration_s
        assert by_technique["petrissage"] > classic["petrissage"] * share
        assert by_technique["friction"] > classic["friction"] * share


def test_the_breath_topic_is_in_the_topic_table_as_qos_0_not_retained() -> None:
    topic = Topics("relaxd").breath("<room>")
    assert topic in first_column("## Topics")
    (row,) = [r for r in table_after("## Topics") if r[0] == topic]
    assert row[1:4] == ["relaxd →", "no", "0"]


def test_the_documented_breath_payload_is_the_one_published() -> None:
    text = (ROOT / "docs" / "mqtt.md").read_text()
    section = text[text.index("## Breath edges") :]
    example = json.loads(section[section.index("```text\n") + 8 : section.index("\n```", section.index("```text"))])
    fields = first_column_after(section, "| field | meaning |")
    assert set(example) == set(fields) == set(BREATH_FIELDS)


def first_column_after(text: str, header: str) -> list[str]:
    block = text[text.index(header) :].split("\n\n", 1)[0].splitlines()[2:]
    return [row.strip("|").split("|")[0].strip().strip("`") for row in block]
