"""A room's Hue lights (the Lights port): snapshot per light, paced scenes, restore, hands off."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from relaxd.adapters.hue.fit import (
    SETTLE_MARGIN_S,
    Expected,
    LightInfo,
    changed_by_user,
    fit_scene,
    group_body,
    matches,
    restore_fields,
    snapshot_entry,
)
from relaxd.adapters.hue.shapes import state_problem
from relaxd.adapters.hue.transport import DEVICE, HueBridge
from relaxd.core.ports import DeviceError, LightScene, RestoreReport, SnapshotData

logger = logging.getLogger(__name__)

SNAPSHOT_KIND = "hue"
SNAPSHOT_VERSION = 1


@dataclass(frozen=True)
class _Room:
    infos: dict[str, LightInfo]
    # The one bridge group whose lights are exactly the room's, if any.
    group_id: int | None


class HueLights:
    """The lights of one room, by bridge group name or by light names; resolved on first use."""

    def __init__(self, bridge: HueBridge, group: str | None = None, names: list[str] | None = None) -> None:
        if (group is None) == (names is None):
            raise ValueError("give exactly one of group or names")
        if names is not None and not names:
            raise ValueError("names must not be empty")
        self._bridge = bridge
        self._group = group
        self._names = list(names) if names is not None else None
        self._lock = threading.RLock()
        self._room: _Room | None = None
        self._expected: dict[str, Expected] = {}
        self._user_owned: set[str] = set()

    def __repr__(self) -> str:
        what = f"group={self._group!r}" if self._group is not None else f"names={self._names!r}"
        return f"HueLights({self._bridge!r}, {what})"

    # -- the Lights port --------------------------------------------------------------------------

    def snapshot(self) -> SnapshotData:
        with self._lock:
            room, lights = self._resolve()
            entries: dict[str, Any] = {}
            for light_id, info in room.infos.items():
                data = lights.get(light_id)
                if data is None:
                    raise DeviceError(DEVICE, f"light {info.name!r} disappeared from the bridge")
                entries[light_id] = snapshot_entry(info, data)
            # A new session: what the lights show now is the baseline for spotting hand changes.
            self._expected = {i: Expected.from_state(lights[i]["state"]) for i in entries}
            self._user_owned = set()
            return {"kind": SNAPSHOT_KIND, "version": SNAPSHOT_VERSION, "lights": entries}

    def apply(self, scene: LightScene) -> None:
        with self._lock:
            room, lights = self._resolve()
            self._spot_user_changes(lights)
            targets = [
                info
                for light_id, info in room.infos.items()
                if light_id not in self._user_owned and _reachable(lights.get(light_id))
            ]
            skipped = sorted(set(room.infos) - {i.light_id for i in targets} - self._user_owned)
            if skipped:
                logger.info("hue: skipping unreachable lights %s", ", ".join(skipped))
            settle_at_s = time.monotonic() + scene.transition_s + SETTLE_MARGIN_S
            if room.group_id is not None and len(targets) == len(room.infos):
                self._apply_group(room.group_id, targets, scene, lights, settle_at_s)
                return
            failures: dict[str, DeviceError] = {}
            for info in targets:
                body = fit_scene(info, scene)
                try:
                    self._bridge.set_light_state(int(info.light_id), body)
                except DeviceError as exc:
                    # Unknown state now: better not to call it a hand change later.
                    self._expected.pop(info.light_id, None)
                    failures[info.name] = exc
                    continue
                before = lights[info.light_id]["state"]
                self._expected[info.light_id] = Expected.from_command(body, before, settle_at_s)
            _raise_failures("could not set", failures)

    def restore(self, snapshot: SnapshotData) -> RestoreReport:
        entries = _entries(snapshot)
        with self._lock:
            lights = self._bridge.get_lights()
            self._spot_user_changes(lights)
            report = RestoreReport()
            failures: dict[str, DeviceError] = {}
            to_switch_off: list[str] = []
            # Lights that were on first, with bri and colour in one command; lights that were off
            # get their bri/colour while still lit, and are switched off last with no transition
            # (an off with a transition would bring them back at bri 1).
            for light_id, entry in sorted(entries.items(), key=lambda item: not item[1]["on"]):
                name = str(entry.get("name", light_id))
                data = lights.get(light_id)
                if data is None:
                    report.unrestorable[name] = "the light is no longer on the bridge"
                    continue
                if light_id in self._user_owned:
                    report.left_alone.append(name)
                    continue
                state = data.get("state", {})
                if not _reachable(data):
                    failures[name] = DeviceError(DEVICE, f"{name} is unreachable")
                    continue
                lit = bool(state.get("on"))
                body: dict[str, Any] = {}
                if not matches(entry, state) and (entry["on"] or lit):
                    body = {"on": True, **restore_fields(entry)}
                    if not entry["on"]:
                        body["transitiontime"] = 0
                elif entry["on"] and not lit:
                    body = {"on": True}
                try:
                    if body:
                        self._bridge.set_light_state(int(light_id), body)
                except DeviceError as exc:
                    failures[name] = exc
                    continue
                if entry["on"]:
                    self._restored(light_id, entry, report)
                elif lit or body:
                    to_switch_off.append(light_id)
                else:
                    self._restored(light_id, entry, report)
            for light_id in to_switch_off:
                entry = entries[light_id]
                try:
                    self._bridge.set_light_state(int(light_id), {"on": False})
                except DeviceError as exc:
                    failures[str(entry.get("name", light_id))] = exc
                    continue
                self._restored(light_id, entry, report)
            _raise_failures("could not restore", failures)
            return report

    def check(self) -> None:
        self._bridge.check()

    # -- internals --------------------------------------------------------------------------------

    def _restored(self, light_id: str, entry: dict[str, Any], report: RestoreReport) -> None:
        report.restored.append(str(entry.get("name", light_id)))
        # What relaxd set now is the snapshot: a repeated restore must not see a hand change.
        state = {"on": entry["on"], **restore_fields(entry)}
        if "colormode" in entry:
            state["colormode"] = entry["colormode"]
        self._expected[light_id] = Expected.from_state(state)

    def _spot_user_changes(self, lights: dict[str, Any]) -> None:
        now_s = time.monotonic()
        for light_id, expected in self._expected.items():
            if light_id in self._user_owned or light_id not in lights:
                continue
            if changed_by_user(expected, lights[light_id].get("state", {}), now_s):
                name = lights[light_id].get("name", light_id)
                logger.info("hue: light %s was changed by hand; leaving it alone this session", name)
                self._user_owned.add(light_id)

    def _apply_group(
        self,
        group_id: int,
        targets: list[LightInfo],
        scene: LightScene,
        lights: dict[str, Any],
        settle_at_s: float,
    ) -> None:
        try:
            self._bridge.set_group_action(group_id, group_body(targets, scene))
        except DeviceError:
            for info in targets:
                self._expected.pop(info.light_id, None)
            raise
        for info in targets:
            before = lights[info.light_id]["state"]
            self._expected[info.light_id] = Expected.from_command(fit_scene(info, scene), before, settle_at_s)

    def _resolve(self) -> tuple[_Room, dict[str, Any]]:
        """The room (resolved once) and the bridge's lights as read now."""
        lights = self._bridge.get_lights()
        if self._room is not None:
            return self._room, lights
        groups = self._bridge.get_groups()
        if self._group is not None:
            found = [(gid, g) for gid, g in groups.items() if g.get("name") == self._group]
            if not found:
                known = ", ".join(sorted(str(g.get("name")) for g in groups.values())) or "none"
                raise DeviceError(DEVICE, f"no Hue group named {self._group!r} (groups on the bridge: {known})")
            group_id, group = found[0]
            ids = [str(i) for i in group.get("lights", []) if str(i) in lights]
            if not ids:
                raise DeviceError(DEVICE, f"the Hue group {self._group!r} has no lights")
            room = _Room({i: LightInfo.from_json(i, lights[i]) for i in ids}, int(group_id))
        else:
            assert self._names is not None
            by_name = {str(d.get("name")): i for i, d in lights.items()}
            missing = [n for n in self._names if n not in by_name]
            if missing:
                raise DeviceError(DEVICE, f"no Hue light named {', '.join(map(repr, missing))}")
            ids = [by_name[n] for n in self._names]
            exact = [int(gid) for gid, g in groups.items() if set(map(str, g.get("lights", []))) == set(ids)]
            room = _Room({i: LightInfo.from_json(i, lights[i]) for i in ids}, exact[0] if exact else None)
        self._room = room
        return room, lights


def _reachable(data: dict[str, Any] | None) -> bool:
    return data is not None and data.get("state", {}).get("reachable", True) is not False


def _entries(snapshot: SnapshotData) -> dict[str, dict[str, Any]]:
    if not isinstance(snapshot, dict) or snapshot.get("kind") != SNAPSHOT_KIND:
        raise DeviceError(DEVICE, "not a Hue lights snapshot")
    lights = snapshot.get("lights")
    if not isinstance(lights, dict):
        raise DeviceError(DEVICE, "not a Hue lights snapshot")
    if not all(isinstance(e, dict) and isinstance(e.get("on"), bool) for e in lights.values()):
        raise DeviceError(DEVICE, "the Hue lights snapshot is damaged")
    for light_id, entry in lights.items():
        problem = state_problem(entry) if str(light_id).isdigit() else "has an id that is not a number"
        if problem is not None:
            raise DeviceError(DEVICE, f"the Hue lights snapshot is damaged: light {light_id} {problem}")
    return {str(k): v for k, v in lights.items()}


def _raise_failures(what: str, failures: dict[str, DeviceError]) -> None:
    if not failures:
        return
    details = "; ".join(f"{name}: {exc.message}" for name, exc in failures.items())
    first = next(iter(failures.values()))
    raise DeviceError(DEVICE, f"{what} {', '.join(failures)} ({details})", code=first.code)
