"""The Hue simulator answering garbage, truncated or twisted JSON, odd codes: the adapter raises DeviceError only."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from relaxd.adapters.blocking import BlockingCalls
from relaxd.adapters.hue import HueBridge, HueLights
from relaxd.core.ports import DeviceError, LightScene
from relaxd.sim.hue_bridge import HueBridgeSim
from relaxd.sim.hue_model import COLOR_TEMPERATURE, DIMMABLE, EXTENDED_COLOR
from tests.reliability import DEVICE_FUZZ_EXAMPLES, TEST_TIMEOUT_S

pytestmark = pytest.mark.timeout(TEST_TIMEOUT_S)

SETTINGS = settings(
    max_examples=DEVICE_FUZZ_EXAMPLES // 2, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
SCENE = LightScene(bri_254=80, ct_mired=455, transition_s=0)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False), st.text(max_size=12)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6,
)
odd_statuses = st.sampled_from([200, 201, 204, 301, 400, 401, 403, 404, 429, 500, 502, 503, 599])
Mangle = Callable[[int, Any], tuple[int, Any]]


@pytest.fixture
def calls() -> Iterator[BlockingCalls]:
    pool = BlockingCalls(workers=4)
    yield pool
    pool.close()


def nth(skip: int, mangle: Mangle) -> tuple[Mangle, list[int]]:
    """A mangle that lets skip answers through untouched and twists the next one."""
    seen = [0]

    def twist(status: int, payload: Any) -> tuple[int, Any]:
        seen[0] += 1
        return (status, payload) if seen[0] <= skip else mangle(status, payload)

    return twist, seen


def twist_inside(value: Any, choices: list[int], new: Any) -> Any:
    """value with one node somewhere inside (found by following choices) replaced by new."""
    if choices and isinstance(value, dict) and value:
        key = sorted(value, key=str)[choices[0] % len(value)]
        return {**value, key: twist_inside(value[key], choices[1:], new)}
    if choices and isinstance(value, list) and value:
        i = choices[0] % len(value)
        return [*value[:i], twist_inside(value[i], choices[1:], new), *value[i + 1 :]]
    return new


@st.composite
def hue_mangles(draw: st.DrawFn) -> Mangle:
    kind = draw(st.sampled_from(["garbage", "truncated", "status", "value", "inside", "inside", "error", "empty"]))
    if kind == "garbage":
        body = draw(st.binary(max_size=60))
        return lambda status, payload: (200, body)
    if kind == "truncated":
        cut = draw(st.floats(0, 0.99))
        return lambda status, payload: (200, json.dumps(payload).encode()[: int(len(json.dumps(payload)) * cut)])
    if kind == "status":
        code = draw(odd_statuses)
        return lambda status, payload: (code, payload)
    if kind == "value":
        value = draw(json_values)
        return lambda status, payload: (200, value)
    if kind == "error":
        error = draw(
            st.fixed_dictionaries(
                {}, optional={"type": json_values, "address": json_values, "description": json_values}
            )
        )
        return lambda status, payload: (200, [{"error": error}])
    if kind == "empty":
        return lambda status, payload: (200, b"")
    # The sneaky kind: a well-formed answer with one value somewhere inside of the wrong shape.
    # (Everything is drawn here: the mangle runs in the simulator's thread.)
    choices, new = draw(st.lists(st.integers(0, 50), max_size=6)), draw(json_values)
    return lambda status, payload: (status, twist_inside(payload, choices, new))


def hue_room() -> HueBridgeSim:
    sim = HueBridgeSim(lights=0)
    a = sim.add_light(EXTENDED_COLOR, "Ceiling", on=True, bri=254, ct=181, colormode="ct")
    b = sim.add_light(EXTENDED_COLOR, "Lamp", on=True, bri=140, xy=[0.2182, 0.1352], colormode="xy")
    c = sim.add_light(DIMMABLE, "Bedside", on=False, bri=200)
    sim.add_light(COLOR_TEMPERATURE, "Hall", on=True, bri=100, ct=300)
    sim.add_group("Massage Room", [a, b, c])
    return sim


async def run_guarded(steps: list[tuple[str, Callable[[], Awaitable[Any]]]]) -> dict[str, Any]:
    """Run each step; DeviceError is an answer, anything else escapes and fails the test."""
    results: dict[str, Any] = {}
    for name, step in steps:
        try:
            results[name] = await step()
        except DeviceError as exc:
            assert exc.message and isinstance(exc.message, str)
            results[name] = exc
    return results


@settings(SETTINGS)
@given(skip=st.integers(0, 14), mangle=hue_mangles(), by_group=st.booleans())
def test_the_hue_adapter_turns_any_bridge_answer_into_device_error(
    calls: BlockingCalls, skip: int, mangle: Mangle, by_group: bool
) -> None:
    sim = hue_room()
    sim.start()
    try:
        twist, seen = nth(skip, mangle)
        sim.mangle_next(twist, count=skip + 1)
        # One event loop per example; the pool outlives them all.
        asyncio.run(
            fuzz_one(sim, HueBridge(sim.address, sim.username, calls=calls, https=False, timeout_s=2), by_group, seen)
        )
    finally:
        sim.stop()


async def fuzz_one(sim: HueBridgeSim, bridge: HueBridge, by_group: bool, seen: list[int]) -> None:
    def room() -> HueLights:
        return HueLights(bridge, group="Massage Room") if by_group else HueLights(bridge, names=["Ceiling", "Lamp"])

    lights = room()
    results = await run_guarded(
        [("check", lights.check), ("snapshot", lights.snapshot), ("apply", lambda: lights.apply(SCENE))]
    )
    snap = results["snapshot"]
    if not isinstance(snap, DeviceError):
        json.dumps(snap)  # what the store writes
        results.update(await run_guarded([("restore", lambda: lights.restore(snap))]))
    note(f"answers seen {seen[0]}, results {results}")
    # Once the bridge answers properly again, a new adapter works: nothing was left broken.
    sim.clear_faults()
    fresh = room()
    await fresh.check()
    await fresh.restore(await fresh.snapshot())


async def test_the_fault_knobs_do_what_they_say(calls: BlockingCalls) -> None:
    with HueBridgeSim(lights=1) as hue:
        bridge = HueBridge(hue.address, hue.username, calls=calls, https=False, timeout_s=2)
        hue.fail_next(body=b"{not json")
        with pytest.raises(DeviceError, match="invalid JSON"):
            await bridge.lights()
        hue.mangle_next(lambda status, payload: (status, {**payload, "1": "broken"}), path_contains="/lights")
        with pytest.raises(DeviceError, match="unexpected shape: light 1 is not an object"):
            await bridge.lights()
        assert hue.pending_faults() == 0 and (await bridge.lights())["1"]["name"] == "Light 1"


@pytest.mark.parametrize(
    ("path", "twist", "problem"),
    [
        ("/lights", lambda p: {**p, "1": None}, "light 1 is not an object"),
        ("/lights", lambda p: {**p, "1": {k: v for k, v in p["1"].items() if k != "state"}}, "light 1 has no state"),
        (
            "/lights",
            lambda p: {**p, "1": {**p["1"], "state": {**p["1"]["state"], "bri": "254"}}},
            "light 1: state bri is '254', not a whole number",
        ),
        (
            "/lights",
            lambda p: {**p, "1": {**p["1"], "state": {**p["1"]["state"], "xy": [0.3]}}},
            "light 1: state xy is [0.3], not two numbers",
        ),
        ("/lights", lambda p: {"one": p["1"]}, "light id 'one' is not a number"),
        ("/groups", lambda p: {**p, "1": {**p["1"], "lights": "1,2"}}, "group 1: lights is not a list of light ids"),
    ],
)
async def test_what_the_fuzzing_found_in_bridge_answers_is_a_device_error(
    calls: BlockingCalls, path: str, twist: Callable[[Any], Any], problem: str
) -> None:
    # Shapes the fuzzing produced; several escaped as AttributeError, KeyError or ValueError before.
    with hue_room() as sim:
        bridge = HueBridge(sim.address, sim.username, calls=calls, https=False, timeout_s=2)
        lights = HueLights(bridge, group="Massage Room")
        sim.mangle_next(lambda status, payload: (status, twist(payload)), path_contains=path)
        with pytest.raises(DeviceError, match=re.escape(problem)):
            await lights.snapshot()
        assert (await lights.snapshot())["lights"]["1"]["name"] == "Ceiling"
