"""The control API's routes over the simulators: status, start/stop, latency, faults, hand changes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from relaxd.sim.control_fields import (
    MAX_DELAY_S,
    ApiError,
    Field,
    boolean,
    count_field,
    given,
    integer,
    number,
    only_true,
    parse,
    text,
    xy_pair,
)
from relaxd.sim.hue_bridge import HueBridgeSim
from relaxd.sim.sonos_faults import ANY_ACTION
from relaxd.sim.sonos_soap import SERVICES
from relaxd.sim.sonos_speaker import SonosSpeakerSim

Reply = dict[str, Any]
Action = Callable[[Any], Reply]  # parsed JSON body (None when empty) -> success answer

_ACTIONS = {ANY_ACTION, *(action for service in SERVICES for action in service.actions)}
_LATENCY = {"ms": Field(number(0, 60_000))}
_SLOW = {"delay_s": Field(number(0, MAX_DELAY_S, low_open=True))}
_TRICKLE = {
    "interval_s": Field(number(0.001, MAX_DELAY_S)),
    "chunk_bytes": Field(integer(1, 65_536), 1),
}
_HUE_MATCH = {"count": count_field(), "path_contains": Field(text(200), "")}
_HUE_FAIL = {
    **_HUE_MATCH,
    "error_type": Field(integer(1, 65_535), 901),
    "http_status": Field(integer(200, 599), 200),
}
_SONOS_MATCH = {"action": Field(text(100, choices=_ACTIONS), ANY_ACTION), "times": count_field()}
_SONOS_FAIL = {**_SONOS_MATCH, "code": Field(integer(100, 999), 501)}
# The light fields the Hue app can set; the bridge's own rules (model, on/off) apply after these.
_HUE_HAND = {
    "on": Field(boolean, None),
    "bri": Field(integer(1, 254), None),
    "hue": Field(integer(0, 65_535), None),
    "sat": Field(integer(0, 254), None),
    "xy": Field(xy_pair, None),
    "ct": Field(integer(153, 500), None),
    "alert": Field(text(10, choices=("none", "select", "lselect")), None),
    "effect": Field(text(10, choices=("none", "colorloop")), None),
    "transitiontime": Field(integer(0, 65_535), None),
}
_SONOS_HAND = {
    "play_uri": Field(text(2000, non_empty=True), None),
    "title": Field(text(200), None),
    "pause": Field(only_true, None),
    "volume": Field(integer(0, 100), None),
    "mute": Field(boolean, None),
}


class ControlApi:
    """Routes a (method, path segments, JSON body) to the simulators; no HTTP here."""

    def __init__(self, hue: HueBridgeSim | None, speakers: Mapping[str, SonosSpeakerSim]) -> None:
        for name in speakers:
            if not name or "/" in name:
                raise ValueError(f"speaker name {name!r}: must be non-empty and without '/'")
        self.hue = hue
        self.speakers = dict(speakers)
        # One change at a time: start and stop of one simulator must not interleave.
        self._lock = threading.Lock()

    def handle(self, method: str, parts: list[str], body: Callable[[], Any]) -> Reply:
        """The answer to a request for the path parts, or ApiError (404 unknown path, 405 wrong
        method, 400 bad body); body() gives the parsed JSON body, asked for once the route is known."""
        routes = self._routes(parts)
        action = routes.get(method)
        if action is None:
            raise ApiError(405, f"method: {method} not allowed here (allowed: {', '.join(routes)})", tuple(routes))
        if method == "GET":
            return action(body())
        with self._lock:
            return action(body())

    def status(self) -> Reply:
        return {
            "hue": self._hue_status() if self.hue is not None else None,
            "speakers": {name: self._speaker_status(name) for name in self.speakers},
        }

    # -- routing ------------------------------------------------------------------------------

    def _routes(self, parts: list[str]) -> dict[str, Action]:
        if not parts:
            return {"GET": lambda body: self.status()}
        top, rest = parts[0], parts[1:]
        if top == "hue":
            return self._hue_routes(self._need_hue(), rest)
        if top == "sonos":
            if not rest:
                return {"GET": lambda body: {"speakers": self.status()["speakers"]}}
            return self._sonos_routes(rest[0], self._speaker(rest[0]), rest[1:])
        raise ApiError(404, f"path: unknown, try GET / (first segment {top!r})")

    def _hue_routes(self, hue: HueBridgeSim, rest: list[str]) -> dict[str, Action]:
        if not rest:
            return {"GET": lambda body: self._hue_status()}
        if len(rest) == 3 and rest[0] == "lights" and rest[2] in ("hand", "reachable"):
            light_id = rest[1]
            if light_id not in hue.light_ids():
                raise ApiError(404, f"light: no light {light_id!r} (lights: {', '.join(hue.light_ids())})")
            change = self._hue_hand if rest[2] == "hand" else self._hue_reachable
            return {"POST": lambda body: change(hue, light_id, body)}
        verbs: dict[str, Action] = {
            "start": lambda body: self._run(hue, body, start=True),
            "stop": lambda body: self._run(hue, body, start=False),
            "link-button": lambda body: self._link_button(hue, body),
            "latency": lambda body: self._latency(hue, body),
            "fail": lambda body: self._hue_fault(hue, "fail", body),
            "slow": lambda body: self._hue_fault(hue, "slow", body),
            "trickle": lambda body: self._hue_fault(hue, "trickle", body),
            "clear": lambda body: self._clear(hue, body),
        }
        if len(rest) == 1 and rest[0] in verbs:
            return {"POST": verbs[rest[0]]}
        raise ApiError(404, f"path: unknown Hue path /hue/{'/'.join(rest)}")

    def _sonos_routes(self, name: str, speaker: SonosSpeakerSim, rest: list[str]) -> dict[str, Action]:
        if not rest:
            return {"GET": lambda body: self._speaker_status(name)}
        verbs: dict[str, Action] = {
            "start": lambda body: self._run(speaker, body, start=True),
            "stop": lambda body: self._run(speaker, body, start=False),
            "latency": lambda body: self._latency(speaker, body),
            "fail": lambda body: self._sonos_fault(speaker, "fail", body),
            "slow": lambda body: self._sonos_fault(speaker, "slow", body),
            "trickle": lambda body: self._sonos_fault(speaker, "trickle", body),
            "clear": lambda body: self._clear(speaker, body),
            "hand": lambda body: self._sonos_hand(name, speaker, body),
        }
        if len(rest) == 1 and rest[0] in verbs:
            return {"POST": verbs[rest[0]]}
        raise ApiError(404, f"path: unknown speaker path /sonos/{name}/{'/'.join(rest)}")

    def _need_hue(self) -> HueBridgeSim:
        if self.hue is None:
            raise ApiError(404, "hue: this simulator runs no Hue bridge")
        return self.hue

    def _speaker(self, name: str) -> SonosSpeakerSim:
        speaker = self.speakers.get(name)
        if speaker is None:
            raise ApiError(404, f"speaker: no speaker {name!r} (speakers: {', '.join(self.speakers) or 'none'})")
        return speaker

    # -- actions ------------------------------------------------------------------------------

    def _run(self, sim: HueBridgeSim | SonosSpeakerSim, body: Any, *, start: bool) -> Reply:
        parse(body, {})
        if start:
            try:
                sim.start()
            except OSError as exc:
                raise ApiError(409, f"start: cannot listen on {sim.address}: {exc}") from None
        else:
            sim.stop()
        return _done({"running": sim.running}, f"{sim.address} {'listening' if start else 'stopped'}")

    def _link_button(self, hue: HueBridgeSim, body: Any) -> Reply:
        parse(body, {})
        hue.press_link_button()
        return _done({"link_button_pressed": hue.link_button_pressed}, "link button pressed (pairing open for 30 s)")

    def _latency(self, sim: HueBridgeSim | SonosSpeakerSim, body: Any) -> Reply:
        sim.latency_ms = parse(body, _LATENCY)["ms"]
        return _done({"latency_ms": sim.latency_ms}, f"every request to {sim.address} waits {sim.latency_ms:g} ms")

    def _clear(self, sim: HueBridgeSim | SonosSpeakerSim, body: Any) -> Reply:
        parse(body, {})
        forgotten = sim.pending_faults()
        sim.clear_faults()
        return _done({"forgotten": forgotten}, f"{forgotten} pending fault(s) forgotten")

    def _hue_fault(self, hue: HueBridgeSim, kind: str, body: Any) -> Reply:
        fields = {"fail": _HUE_FAIL, "slow": {**_HUE_MATCH, **_SLOW}, "trickle": {**_HUE_MATCH, **_TRICKLE}}[kind]
        values = parse(body, fields)
        count, where = values.pop("count"), values.pop("path_contains")
        if kind == "fail":
            hue.fail_next(count, path_contains=where, **values)
        elif kind == "slow":
            hue.slow_next(count, path_contains=where, **values)
        else:
            hue.trickle_next(count, path_contains=where, **values)
        target = f"paths containing {where!r}" if where else "any path"
        return _done({"pending_faults": hue.fault_summary()}, f"next {count} answer(s) to {target}: {kind}")

    def _sonos_fault(self, speaker: SonosSpeakerSim, kind: str, body: Any) -> Reply:
        fields = {"fail": _SONOS_FAIL, "slow": {**_SONOS_MATCH, **_SLOW}, "trickle": {**_SONOS_MATCH, **_TRICKLE}}[kind]
        values = parse(body, fields)
        action, times = values.pop("action"), values.pop("times")
        if kind == "fail":
            speaker.fail_next(action, values["code"], times)
        elif kind == "slow":
            speaker.slow_next(action, values["delay_s"], times)
        else:
            speaker.trickle_next(action, values["interval_s"], times, values["chunk_bytes"])
        target = "any action" if action == ANY_ACTION else action
        return _done({"pending_faults": speaker.fault_summary()}, f"next {times} answer(s) to {target}: {kind}")

    def _hue_hand(self, hue: HueBridgeSim, light_id: str, body: Any) -> Reply:
        fields = given(body, _HUE_HAND)
        try:
            hue.set_light_by_hand(light_id, **fields)
        except ValueError as exc:
            # The bridge's own refusal (model, light off): already "<field>: <description>".
            raise ApiError(400, str(exc)) from None
        return _done({"state": hue.light_state(light_id)}, f"light {light_id} changed by hand: {fields}")

    def _hue_reachable(self, hue: HueBridgeSim, light_id: str, body: Any) -> Reply:
        reachable = parse(body, {"reachable": Field(boolean)})["reachable"]
        hue.set_reachable(light_id, reachable)
        return _done({"state": hue.light_state(light_id)}, f"light {light_id} {'' if reachable else 'un'}reachable")

    def _sonos_hand(self, name: str, speaker: SonosSpeakerSim, body: Any) -> Reply:
        fields = given(body, _SONOS_HAND)
        if "title" in fields and "play_uri" not in fields:
            raise ApiError(400, "title: goes with play_uri")
        # In the order a user would: pick something to play, then pause it or set the volume.
        if "play_uri" in fields:
            speaker.hand_play_uri(fields["play_uri"], fields.get("title", ""))
        if "pause" in fields:
            speaker.hand_pause()
        if "volume" in fields:
            speaker.hand_set_volume(fields["volume"])
        if "mute" in fields:
            speaker.hand_set_mute(fields["mute"])
        return _done(self._speaker_status(name), f"{name} changed by hand: {fields}")

    # -- status -------------------------------------------------------------------------------

    def _hue_status(self) -> Reply:
        hue = self._need_hue()
        return {
            "address": hue.address,
            "running": hue.running,
            "latency_ms": hue.latency_ms,
            "link_button_pressed": hue.link_button_pressed,
            "rate_limited": hue.rate_limited_count,
            "lights": {i: {"name": hue.light(i)["name"], "state": hue.light_state(i)} for i in hue.light_ids()},
            "pending_faults": hue.fault_summary(),
        }

    def _speaker_status(self, name: str) -> Reply:
        speaker = self._speaker(name)
        state = speaker.state()
        return {
            "room_name": speaker.room_name,
            "address": speaker.address,
            "running": speaker.running,
            "latency_ms": speaker.latency_ms,
            "volume": state.volume,
            "mute": state.mute,
            "transport_state": state.transport_state,
            "uri": state.uri,
            "pending_faults": speaker.fault_summary(),
        }


def _done(details: Reply, what: str) -> Reply:
    return {"ok": True, "done": what, **details}
