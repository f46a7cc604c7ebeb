"""A room with lights on several bridges: one Lights port over one HueLights per bridge."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from relaxd.adapters.hue.lights import HueLights, check_snapshot
from relaxd.adapters.hue.transport import DEVICE
from relaxd.core.ports import DeviceError, LightScene, RestoreReport, SnapshotData, SnapshotUnusable

SNAPSHOT_KIND = "hue-bridges"
SNAPSHOT_VERSION = 1


class SeveralBridgesLights:
    """The Lights port of a room whose lights are on several bridges (by bridge name).

    Every call goes to every bridge at once, each paced by its own bridge; a bridge that fails does
    not stop the others, and the call then raises one DeviceError naming the bridges that failed
    (after all of them have ended, so nothing of the call is still on its way afterwards).
    """

    def __init__(self, parts: Mapping[str, HueLights]) -> None:
        if len(parts) < 2:
            raise ValueError("several bridges means at least two")
        self._parts = dict(parts)

    def __repr__(self) -> str:
        return f"SeveralBridgesLights({self._parts!r})"

    async def snapshot(self) -> SnapshotData:
        snapshots = await self._each("could not read", lambda name, lights: lights.snapshot())
        return {"kind": SNAPSHOT_KIND, "version": SNAPSHOT_VERSION, "bridges": snapshots}

    async def apply(self, scene: LightScene) -> None:
        await self._each("could not set", lambda name, lights: lights.apply(scene))

    async def restore(self, snapshot: SnapshotData) -> RestoreReport:
        parts = _parts(snapshot, set(self._parts))
        for part in parts.values():
            check_snapshot(part)  # every part before anything is sent anywhere
        reports = await self._each("could not restore", lambda name, lights: lights.restore(parts[name]))
        report = RestoreReport()
        for part in reports.values():
            assert isinstance(part, RestoreReport)
            report.restored += part.restored
            report.left_alone += part.left_alone
            report.unrestorable.update(part.unrestorable)
        return report

    async def check(self) -> None:
        await self._each("cannot reach", lambda name, lights: lights.check())

    def edge_cost(self) -> list[tuple[str, int, int, float]]:
        """Every bridge's own cost (each has its own limits, keyed by bridge)."""
        return [cost for lights in self._parts.values() for cost in lights.edge_cost()]

    async def _each(self, what: str, call: Callable[[str, HueLights], Awaitable[Any]]) -> dict[str, Any]:
        names = list(self._parts)
        results = await asyncio.gather(*(call(name, self._parts[name]) for name in names), return_exceptions=True)
        failed = {n: r for n, r in zip(names, results, strict=True) if isinstance(r, BaseException)}
        for result in failed.values():
            if not isinstance(result, DeviceError):
                raise result  # cancelled, or a bug: not a device failure
        if failed:
            details = "; ".join(f"bridge {n}: {e.message}" for n, e in failed.items() if isinstance(e, DeviceError))
            first = next(iter(failed.values()))
            code = first.code if isinstance(first, DeviceError) else None
            raise DeviceError(
                DEVICE, f"{what} the lights of {len(failed)} of {len(names)} bridges ({details})", code=code
            )
        return dict(zip(names, results, strict=True))


def _parts(snapshot: SnapshotData, bridges: set[str]) -> dict[str, SnapshotData]:
    """The per-bridge snapshots, checked: a damaged one restores nothing anywhere."""
    if not isinstance(snapshot, dict) or snapshot.get("kind") != SNAPSHOT_KIND:
        raise SnapshotUnusable(DEVICE, "not a snapshot of lights on several Hue bridges")
    parts = snapshot.get("bridges")
    if not isinstance(parts, dict) or set(parts) != bridges:
        raise SnapshotUnusable(DEVICE, f"the snapshot is of other bridges than {', '.join(sorted(bridges))}")
    return {str(k): v for k, v in parts.items()}
