"""A room's Hue lights (the Lights port): snapshot per light, paced scenes, restore, hands off."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from relaxd.adapters.hue.bridge import HueBridge
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
from relaxd.adapters.hue.shapes import entry_problem
from relaxd.adapters.hue.transport import DEVICE
from relaxd.core.ports import DeviceError, LightScene, RestoreReport, SnapshotData, SnapshotUnusable

logger = logging.getLogger(__name__)

SNAPSHOT_KIND = "hue"
SNAPSHOT_VERSION = 1
# (light id, name, command) of one light's part of a restore.
_Step = tuple[str, str, dict[str, Any]]


class HueLights:
    """The lights of one room, by bridge group name or by light names, resolved at every snapshot.

    A session acts only on the lights of its snapshot: a light that joins the group mid-session is
    left alone until the next snapshot. Every method may be cancelled at any await: waiting commands
    are dropped, running ones aborted, and the bridge's fences keep them from overtaking later ones.
    """

    def __init__(self, bridge: HueBridge, group: str | None = None, names: list[str] | None = None) -> None:
        if (group is None) == (names is None):
            raise ValueError("give exactly one of group or names")
        if names is not None and not names:
            raise ValueError("names must not be empty")
        self._bridge = bridge
        self._group = group
        self._names = list(names) if names is not None else None
        self._lock = asyncio.Lock()
        self._infos: dict[str, LightInfo] | None = None  # the session's lights
        self._expected: dict[str, Expected] = {}
        self._user_owned: set[str] = set()

    def __repr__(self) -> str:
        what = f"group={self._group!r}" if self._group is not None else f"names={self._names!r}"
        return f"HueLights({self._bridge!r}, {what})"

    # -- the Lights port --------------------------------------------------------------------------

    async def snapshot(self) -> SnapshotData:
        async with self._lock:
            lights, groups = await self._read(groups_needed=self._group is not None)
            infos = self._members(lights, groups)
            entries = {light_id: snapshot_entry(info, lights[light_id]) for light_id, info in infos.items()}
            # A new session: what the lights show now is the baseline for spotting hand changes.
            self._infos = infos
            self._expected = {i: Expected.from_state(lights[i]["state"]) for i in entries}
            self._user_owned = set()
            return {"kind": SNAPSHOT_KIND, "version": SNAPSHOT_VERSION, "lights": entries}

    async def apply(self, scene: LightScene) -> None:
        async with self._lock:
            lights, groups = await self._read(groups_needed=True)
            if self._infos is None:  # a scene without a snapshot first: the room as it is now
                self._infos = self._members(lights, groups)
            infos = self._infos
            self._spot_user_changes(lights)
            targets = [
                info
                for light_id, info in infos.items()
                if light_id not in self._user_owned and _reachable(lights.get(light_id))
            ]
            skipped = sorted(set(infos) - {i.light_id for i in targets} - self._user_owned)
            if skipped:
                logger.info("hue: skipping unreachable lights %s", ", ".join(skipped))
            group_id = self._exact_group(groups, set(infos)) if len(targets) == len(infos) else None
            body = group_body(targets, scene) if group_id is not None else None
            if group_id is not None and body is not None:
                await self._apply_group(group_id, targets, body, scene, lights)
                return
            steps = [(info.light_id, info.name, fit_scene(info, scene)) for info in targets]
            failures = await self._send(steps, lights, scene.transition_s)
            _raise_failures("could not set", failures)

    async def restore(self, snapshot: SnapshotData) -> RestoreReport:
        entries = _entries(snapshot)
        async with self._lock:
            lights = await self._bridge.lights()
            self._spot_user_changes(lights)
            report = RestoreReport()
            failures: dict[str, tuple[str, DeviceError]] = {}  # by light id: (name, error)
            first: list[_Step] = []
            # Lights that were on first, with bri and colour in one command; lights that were off
            # get their bri/colour while still lit, and are switched off last with no transition
            # (an off with a transition would bring them back at bri 1).
            for light_id, entry in sorted(entries.items(), key=lambda item: not item[1]["on"]):
                name = str(entry.get("name", light_id))
                data = lights.get(light_id)
                if data is None:
                    report.unrestorable[name] = "the light is no longer on the bridge"
                elif light_id in self._user_owned:
                    report.left_alone.append(name)
                elif not _reachable(data):
                    failures[light_id] = (name, DeviceError(DEVICE, f"{name} is unreachable"))
                else:
                    first.append((light_id, name, _restore_body(entry, data.get("state", {}))))
            failures.update(await self._send([s for s in first if s[2]], None, 0.0))
            last: list[_Step] = []
            for light_id, name, body in first:
                entry, lit = entries[light_id], bool(lights[light_id].get("state", {}).get("on"))
                if light_id in failures:
                    continue
                if not entry["on"] and (lit or body):
                    last.append((light_id, name, {"on": False}))
                else:
                    self._restored(light_id, entry, report)
            last_failures = await self._send(last, None, 0.0)
            for light_id, _, _ in last:
                if light_id not in last_failures:
                    self._restored(light_id, entries[light_id], report)
            failures.update(last_failures)
            _raise_failures("could not restore", failures)
            return report

    async def check(self) -> None:
        await self._bridge.check()

    # -- internals --------------------------------------------------------------------------------

    async def _read(self, groups_needed: bool) -> tuple[dict[str, Any], dict[str, Any]]:
        if not groups_needed:
            return await self._bridge.lights(), {}
        # Both to the end, even when one fails: nothing of this call may still be on its way after it.
        read = await asyncio.gather(self._bridge.lights(), self._bridge.groups(), return_exceptions=True)
        lights, groups = read
        if isinstance(lights, BaseException):
            raise lights
        if isinstance(groups, BaseException):
            raise groups
        return lights, groups

    async def _send(
        self, steps: list[_Step], lights: dict[str, Any] | None, transition_s: float
    ) -> dict[str, tuple[str, DeviceError]]:
        """Each step's command, all queued at once; the failures by light id. With lights (the state
        before), a command answered becomes what relaxd expects of its light (for hand changes)."""

        async def one(light_id: str, body: dict[str, Any]) -> DeviceError | None:
            try:
                await self._bridge.set_light(int(light_id), body)
            except (DeviceError, asyncio.CancelledError) as exc:
                # Unknown state now: better not to call it a hand change later.
                self._expected.pop(light_id, None)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                return exc
            if lights is not None:
                # From the answer, not the queueing: a fade starts when the bridge got the command.
                settle_at_s = time.monotonic() + transition_s + SETTLE_MARGIN_S
                self._expected[light_id] = Expected.from_command(body, lights[light_id]["state"], settle_at_s)
            return None

        results = await asyncio.gather(*(one(light_id, body) for light_id, _, body in steps))
        return {i: (name, exc) for (i, name, _), exc in zip(steps, results, strict=True) if exc is not None}

    async def _apply_group(
        self,
        group_id: int,
        targets: list[LightInfo],
        body: dict[str, Any],
        scene: LightScene,
        lights: dict[str, Any],
    ) -> None:
        try:
            await self._bridge.set_group(group_id, [int(i.light_id) for i in targets], body)
        except (DeviceError, asyncio.CancelledError):
            for info in targets:
                self._expected.pop(info.light_id, None)
            raise
        settle_at_s = time.monotonic() + scene.transition_s + SETTLE_MARGIN_S
        for info in targets:
            before = lights[info.light_id]["state"]
            self._expected[info.light_id] = Expected.from_command(fit_scene(info, scene), before, settle_at_s)

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

    def _members(self, lights: dict[str, Any], groups: dict[str, Any]) -> dict[str, LightInfo]:
        """The room's lights as the bridge lists them now."""
        if self._group is not None:
            found = [g for g in groups.values() if g.get("name") == self._group]
            if not found:
                known = ", ".join(sorted(str(g.get("name")) for g in groups.values())) or "none"
                raise DeviceError(DEVICE, f"no Hue group named {self._group!r} (groups on the bridge: {known})")
            ids = [str(i) for i in found[0].get("lights", []) if str(i) in lights]
            if not ids:
                raise DeviceError(DEVICE, f"the Hue group {self._group!r} has no lights")
        else:
            assert self._names is not None
            by_name = {str(d.get("name")): i for i, d in lights.items()}
            missing = [n for n in self._names if n not in by_name]
            if missing:
                raise DeviceError(DEVICE, f"no Hue light named {', '.join(map(repr, missing))}")
            ids = [by_name[n] for n in self._names]
        return {i: LightInfo.from_json(i, lights[i]) for i in ids}

    def _exact_group(self, groups: dict[str, Any], ids: set[str]) -> int | None:
        """A group whose members, as just read, are exactly these lights (the room's own first)."""
        exact = [(gid, g) for gid, g in groups.items() if set(map(str, g.get("lights", []))) == ids]
        exact.sort(key=lambda item: item[1].get("name") != self._group)
        return int(exact[0][0]) if exact else None

    def edge_cost(self) -> list[tuple[str, int, int, float]]:
        """What one breath edge costs the bridge (the Lights port; see edge_cost.py)."""
        from relaxd.adapters.hue.edge_cost import edge_cost

        return list(edge_cost(self._bridge, len(self._infos) if self._infos else len(self._names or []) or 1))


def _restore_body(entry: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """The command that brings one light back before the switch-offs ({}: nothing to do yet)."""
    lit = bool(state.get("on"))
    if not matches(entry, state) and (entry["on"] or lit):
        body = {"on": True, **restore_fields(entry)}
        if not entry["on"]:
            body["transitiontime"] = 0
        return body
    if entry["on"] and not lit:
        return {"on": True}
    return {}


def _reachable(data: dict[str, Any] | None) -> bool:
    return data is not None and data.get("state", {}).get("reachable", True) is not False


def check_snapshot(snapshot: SnapshotData) -> None:
    """SnapshotUnusable unless HueLights.restore() can use snapshot."""
    _entries(snapshot)


def _entries(snapshot: SnapshotData) -> dict[str, dict[str, Any]]:
    """The snapshot's lights, checked before anything is sent: a damaged or out-of-range entry is
    SnapshotUnusable (retrying would send the same values again)."""
    if not isinstance(snapshot, dict) or snapshot.get("kind") != SNAPSHOT_KIND:
        raise SnapshotUnusable(DEVICE, "not a Hue lights snapshot")
    lights = snapshot.get("lights")
    if not isinstance(lights, dict):
        raise SnapshotUnusable(DEVICE, "not a Hue lights snapshot")
    if not all(isinstance(e, dict) and isinstance(e.get("on"), bool) for e in lights.values()):
        raise SnapshotUnusable(DEVICE, "the Hue lights snapshot is damaged")
    for light_id, entry in lights.items():
        problem = entry_problem(entry) if str(light_id).isdigit() else "has an id that is not a number"
        if problem is not None:
            raise SnapshotUnusable(DEVICE, f"the Hue lights snapshot is damaged: light {light_id} {problem}")
    return {str(k): v for k, v in lights.items()}


def _raise_failures(what: str, failures: dict[str, tuple[str, DeviceError]]) -> None:
    if not failures:
        return
    details = "; ".join(f"{name}: {exc.message}" for name, exc in failures.values())
    names = ", ".join(name for name, _ in failures.values())
    raise DeviceError(DEVICE, f"{what} {names} ({details})", code=next(iter(failures.values()))[1].code)
