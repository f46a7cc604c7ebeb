"""What the Hue tests share: the simulated bridges they run against and what they look at on them."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from relaxd.adapters.hue.transport import PhueBridge
from relaxd.core.ports import LightScene
from relaxd.sim.hue_bridge import HueBridgeSim
from relaxd.sim.hue_model import COLOR_TEMPERATURE, DIMMABLE, EXTENDED_COLOR

WARM = LightScene(bri_254=80, ct_mired=480, transition_s=0)
COLOURED = LightScene(bri_254=60, ct_mired=400, xy=(0.512345, 0.412345), transition_s=2.5)
SNAPSHOT_FIELDS = ("on", "bri", "colormode", "xy", "ct", "hue", "sat")


# -- bridges ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def every_kind_of_light() -> Iterator[HueBridgeSim]:
    """Every kind of light in every colormode, on and off, in one Room "Massage Room" (ids 1-7)."""
    hub = HueBridgeSim(lights=0)
    hub.add_light(EXTENDED_COLOR, "Ceiling", on=True, bri=254, ct=181, colormode="ct")
    hub.add_light(EXTENDED_COLOR, "Floor lamp", on=True, bri=140, xy=[0.2182, 0.1352], colormode="xy")
    hub.add_light(EXTENDED_COLOR, "Strip", on=True, bri=100, hue=45000, sat=200, colormode="hs")
    hub.add_light(COLOR_TEMPERATURE, "Reading", on=True, bri=150, ct=400)
    hub.add_light(DIMMABLE, "Hall", on=True, bri=90)
    hub.add_light(EXTENDED_COLOR, "Globe", on=False, bri=60, xy=[0.6, 0.35], colormode="xy")
    hub.add_light(DIMMABLE, "Bedside", on=False, bri=30)
    hub.add_group("Massage Room", hub.light_ids())
    with hub:
        yield hub


@contextlib.contextmanager
def three_lights(**bridge: Any) -> Iterator[HueBridgeSim]:
    """One light of each model ("Colour" on, "White" on, "Dim" off) in the Room "Massage Room"
    (bridge: HueBridgeSim's keyword arguments, e.g. https=True)."""
    hub = HueBridgeSim(lights=0, **bridge)
    hub.add_light(EXTENDED_COLOR, "Colour", on=True, bri=200, ct=300, colormode="ct")
    hub.add_light(COLOR_TEMPERATURE, "White", on=True, bri=150, ct=400)
    hub.add_light(DIMMABLE, "Dim", on=False, bri=120)
    hub.add_group("Massage Room", ["1", "2", "3"])
    with hub:
        yield hub


# -- raw HTTP to a bridge ------------------------------------------------------------------------------


def call(sim: HueBridgeSim, method: str, path: str, body: Any = None, raw: str | None = None) -> tuple[int, Any]:
    """One request; (status, parsed JSON answer, or the raw bytes of an answer other than 200)."""
    connection = http.client.HTTPConnection(sim.host, sim.port, timeout=5)
    data = raw if raw is not None else (None if body is None else json.dumps(body))
    connection.request(method, path, body=data)
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    return response.status, json.loads(payload) if response.status == 200 else payload


def api(sim: HueBridgeSim, path: str = "") -> str:
    return f"/api/{sim.username}{path}"


def err(error_type: int, address: str, description: str) -> dict[str, Any]:
    return {"error": {"type": error_type, "address": address, "description": description}}


# -- what reached the bridge --------------------------------------------------------------------------


def light_puts(sim: HueBridgeSim) -> list[tuple[str, dict[str, Any]]]:
    """(light id, body) of every light command the bridge received, in order."""
    return [(e.path.split("/")[4], e.body) for e in sim.request_log() if e.method == "PUT" and "/lights/" in e.path]


def group_puts(sim: HueBridgeSim) -> list[dict[str, Any]]:
    return [e.body for e in sim.request_log() if e.method == "PUT" and e.path.endswith("/action")]


def lights_reads(sim: HueBridgeSim) -> int:
    return sum(1 for e in sim.request_log() if e.method == "GET" and e.path.rstrip("/").endswith("/lights"))


def assert_restored(sim: HueBridgeSim, snapshot: dict[str, Any]) -> None:
    for light_id, entry in snapshot["lights"].items():
        state = sim.light_state(light_id)
        for key in SNAPSHOT_FIELDS:
            if key in entry:
                assert state[key] == entry[key], (entry["name"], key)


def max_in_window(times: list[float], window_s: float) -> int:
    """The most events in any window_s (sliding)."""
    return max((sum(1 for t in times if start <= t < start + window_s) for start in times), default=0)


# -- waiting and phue's threads ------------------------------------------------------------------------


async def until(condition: Callable[[], object], timeout_s: float = 5.0) -> None:
    deadline_s = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline_s, "timed out waiting"
        await asyncio.sleep(0.005)


class SlowReturn:
    """Records when phue's set_light really returned in its worker thread, per light; for the lights
    in linger, it lingers there linger_s after the HTTP request (which the op's socket shutdown
    cannot cut short), as an aborted call that has not returned yet."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, linger: set[int], linger_s: float) -> None:
        self.returned_at_s: dict[int, list[float]] = {}
        original = PhueBridge.set_light

        def set_light(bridge: PhueBridge, light_id: int, *args: Any, **kwargs: Any) -> Any:
            try:
                return original(bridge, light_id, *args, **kwargs)
            finally:
                if light_id in linger:
                    linger.discard(light_id)  # the first call only
                    time.sleep(linger_s)
                self.returned_at_s.setdefault(light_id, []).append(time.monotonic())

        monkeypatch.setattr(PhueBridge, "set_light", set_light)
