"""Many rooms on one bridge in one daemon, started by one broadcast: the rig of scale, threads and shutdown."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import CLK_TCK, load_average, machine_cpu_jiffies, proc_cpu_s, proc_status_kb
from bench.harness import Daemon, TimedHueBridgeSim, Watcher, base_config, wall_offset
from bench.probes import BusyCore, Recorder, ThreadSampler, say
from bench.rooms import add_two_lights, compare, demo_speaker, light_fields, phase, room_config, speaker_fields
from relaxd.sim.sonos_speaker import SonosSpeakerSim
from tests.mosquitto import Mosquitto

BROADCAST = "bench/all-rooms"  # "start" starts every room, "stop" stops every room


class Fleet:
    """One bridge with 2 lights per room (both on; each room a group of its own, or lights by names)
    and one speaker per room."""

    def __init__(self, rooms: int, groups: bool, hue_ms: float, sonos_ms: float) -> None:
        self.hue = TimedHueBridgeSim(lights=0, latency_ms=hue_ms)
        self.groups_variant = groups
        self.rooms = [f"r{i + 1:02d}" for i in range(rooms)]
        self.lights: dict[str, list[str]] = {}
        self.groups: dict[str, str] = {}
        self.speakers: dict[str, SonosSpeakerSim] = {}
        for room in self.rooms:
            ids, gid = add_two_lights(self.hue, room, group=groups, lamp_on=True)
            self.lights[room] = ids
            if gid is not None:
                self.groups[room] = gid
            self.speakers[room] = demo_speaker(sonos_ms, room_name=room)

    def start(self) -> None:
        self.hue.start()
        for sim in self.speakers.values():
            sim.start()

    def stop(self) -> None:
        self.hue.stop()
        for sim in self.speakers.values():
            sim.stop()

    def config(self, workdir: Path, port: int, routine: dict[str, Any], restore_fade: str) -> dict[str, Any]:
        config = base_config(workdir, port, self.hue)
        for room in self.rooms:
            speaker = self.speakers[room].address
            if room in self.groups:
                config["rooms"][room] = room_config(group=f"{room} group", speaker=speaker, routine="fleet")
            else:
                names = [f"{room} ceiling", f"{room} lamp"]
                config["rooms"][room] = room_config(names=names, speaker=speaker, routine="fleet")
            config["rooms"][room]["restore_fade"] = restore_fade
        config["routines"]["fleet"] = routine
        config["triggers"] = [
            {"topic": BROADCAST, "match": do, "room": r, "do": do} for r in self.rooms for do in ("start", "stop")
        ]
        return config

    def states(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for room in self.rooms:
            for light_id, fields in light_fields(self.hue, self.lights[room]).items():
                out[f"{room}/light{light_id}"] = fields
            out[f"{room}/speaker"] = speaker_fields(self.speakers[room])
        return out

    def lights_set(self, room: str, since_s: float) -> float | None:
        """When the room's first scene was on all its lights (group PUT or last per-light PUT answered)."""
        done = [d for d in self.hue.done_log(since_s) if d.method == "PUT" and d.status == 200]
        if room in self.groups:
            hits = [d.at_s for d in done if d.path == f"/groups/{self.groups[room]}/action"]
            return hits[0] if hits else None
        per_light = []
        for light_id in self.lights[room]:
            hits = [d.at_s for d in done if d.path == f"/lights/{light_id}/state"]
            if not hits:
                return None
            per_light.append(hits[0])
        return max(per_light)

    def music_set(self, room: str, since_s: float) -> float | None:
        plays = [c.at for c in self.speakers[room].requests("Play") if c.at >= since_s]
        return plays[0] if plays else None

    def rooms_restored_exactly(self, before: dict[str, Any], after: dict[str, Any]) -> tuple[int, list[str]]:
        """Rooms whose every light and speaker field is as before (as benchmark 3 compares them)."""
        ok = 0
        diffs: list[str] = []
        for room in self.rooms:
            keys = [k for k in before if k.startswith(room + "/")]
            equal, total, d = compare({k: before[k] for k in keys}, {k: after[k] for k in keys})
            ok += equal == total
            diffs += d
        return ok, diffs


@dataclass
class Live:
    """What a drive function gets while the rooms run."""

    fleet: Fleet
    watcher: Watcher
    daemon: Daemon
    t0_s: float  # just before the broadcast `start` was published
    phases_s: list[float]


@dataclass
class Outcome:
    """Everything a fleet run measured, for the benchmarks to turn into figures."""

    fleet: Fleet
    t0_s: float
    wall_offset_s: float
    phases_s: list[float]
    msgs: list[Any]
    records: list[tuple[float, str, Any]]
    before: dict[str, Any]
    after: dict[str, Any]
    hwm_kb: int
    daemon_cpu_s: float
    rate_limited: int
    threads: dict[str, Any]
    load_before: list[float]
    load_after: list[float]
    busy_share: float | None
    machine_busy: float  # share of both cores in use, broadcast to the end of the sessions
    bench_cpu_s: float  # the benchmark process (the simulators) over the same span
    others_cpu_s: float  # what else ran meanwhile: not the daemon, bench, broker, probes or spinner
    stolen_s: float  # CPU time the hypervisor took from this VM over the same span
    drive: dict[str, Any] = field(default_factory=dict)
    run_s: float = 0.0


def fleet_routine(phases_s: list[float]) -> dict[str, Any]:
    """Every phase a different scene (30..70 %: no scene bri equals a light's own 254 or 90)."""
    return {
        "phases": [
            phase(f"s{k}", f"{d:g}s", bri=30 + 10 * (k % 5), volume=10 + 2 * (k % 5)) for k, d in enumerate(phases_s)
        ]
    }


def wait_sessions_done(live: Live) -> dict[str, Any]:
    """The default drive: every phase of every room, then every restore; the daemon's CPU until
    every room's first phase (the start burst)."""
    rooms, count = len(live.fleet.rooms), len(live.phases_s)
    cpu0_s = proc_cpu_s(live.daemon.pid) or 0.0
    per_scene_s = rooms * (1.1 if live.fleet.groups_variant else 0.22)  # the bridge's floor, generously
    live.watcher.wait_count("phase_started", rooms, 120)
    burst = {
        "window_s": round(time.monotonic() - live.t0_s, 2),
        "daemon_cpu_s": round((proc_cpu_s(live.daemon.pid) or 0.0) - cpu0_s, 2),
    }
    live.watcher.wait_count("phase_started", rooms * count, sum(live.phases_s) + per_scene_s + 60)
    live.watcher.wait_count("room_restored", rooms, per_scene_s + 90)
    return {"start_burst": burst}


def _every_state(watcher: Watcher, daemon: Daemon | None, rooms: int) -> bool | None:
    if daemon is not None and not daemon.alive():
        raise RuntimeError(f"relaxd exited at start-up:\n{daemon.log_tail(10)}")
    return True if len({m.topic for m in watcher.messages if m.topic.endswith("/state")}) >= rooms else None


@contextlib.contextmanager
def _maybe_busy(busy: bool, workdir: Path) -> Iterator[BusyCore | None]:
    if not busy:
        yield None
        return
    with BusyCore(workdir) as core:
        yield core


def run_fleet(
    label: str,
    rooms: int,
    groups: bool,
    phases_s: list[float],
    hue_ms: float,
    sonos_ms: float,
    workdir: Path,
    *,
    busy: bool = False,
    restore_fade: str = "0s",
    drive: Callable[[Live], dict[str, Any]] = wait_sessions_done,
    launcher: list[str] | None = None,
) -> Outcome:
    """Start the rooms with one broadcast, let drive() run the sessions, stop the daemon; the evidence."""
    began_s = time.monotonic()
    load_before = load_average()
    say(
        f"{label}: {rooms} rooms, {'a group' if groups else 'lights by names'} each, phases {phases_s} s"
        f"{', one core kept busy by a spinner' if busy else ', quiet'}"
    )
    fleet = Fleet(rooms, groups, hue_ms, sonos_ms)
    sub = workdir / label.replace(" ", "-")
    sub.mkdir()
    broker = Mosquitto(sub / "broker")
    daemon: Daemon | None = None
    recorder: Recorder | None = None
    sampler: ThreadSampler | None = None
    data: dict[str, Any] = {}
    try:
        fleet.start()
        broker.start()
        with _maybe_busy(busy, sub) as core, Watcher(broker.port, ["relaxd/+/event", "relaxd/+/state"]) as watcher:
            config = fleet.config(sub, broker.port, fleet_routine(phases_s), restore_fade)
            daemon = Daemon(sub, config, "relaxd", launcher).start()
            sampler = ThreadSampler(daemon.pid, sub)
            watcher.wait(lambda: _every_state(watcher, daemon, rooms), 60, "a state of every room")
            time.sleep(1.0)  # start-up work (health checks, discovery) out of the way
            before = fleet.states()
            recorder = Recorder(broker.port, ["relaxd/+/event"], "phase_started", sub)
            offset = wall_offset()
            limited0 = fleet.hue.rate_limited_count
            cpu0 = proc_cpu_s(daemon.pid) or 0.0
            start = watcher.mark()
            rig = [os.getpid(), recorder.proc.pid, sampler.proc.pid]
            rig += [p.pid for p in (broker.proc, core.proc if core is not None else None) if p is not None]
            jiffies0, rig0 = machine_cpu_jiffies(), [proc_cpu_s(pid) or 0.0 for pid in rig]
            t0 = watcher.publish(BROADCAST, "start")
            data = drive(Live(fleet, watcher, daemon, t0, phases_s))
            jiffies1, rig1 = machine_cpu_jiffies(), [proc_cpu_s(pid) or 0.0 for pid in rig]
            hwm = proc_status_kb(daemon.pid, "VmHWM") or data.get("hwm_kb", 0)
            cpu_s = (proc_cpu_s(daemon.pid) or data.get("cpu_s", 0.0)) - cpu0
            limited = fleet.hue.rate_limited_count - limited0
            msgs = watcher.since(start)
            records = recorder.finish()
            recorder = None
            load_after = load_average()
            daemon.stop()  # SIGTERM (a no-op when drive() ended it); the sampler sees the shutdown too
            threads = sampler.finish()
            sampler = None
        after = fleet.states()
    finally:
        if recorder is not None:
            recorder.abort()
        if sampler is not None:
            with contextlib.suppress(RuntimeError):  # the run failed already: that error is the news
                sampler.finish(5)
        if daemon is not None:
            daemon.stop()
        broker.stop()
        fleet.stop()
    busy_s = (jiffies1[0] - jiffies0[0]) / CLK_TCK
    rig_s = sum(b - a for a, b in zip(rig0, rig1, strict=True))
    outcome = Outcome(
        fleet, t0, offset, phases_s, msgs, records, before, after, hwm, cpu_s, limited, threads,
        load_before, load_after, core.share_of_core if core is not None else None,
        round((jiffies1[0] - jiffies0[0]) / max(1, jiffies1[1] - jiffies0[1]), 2), rig1[0] - rig0[0],
        round(max(0.0, busy_s - cpu_s - rig_s), 2), round((jiffies1[2] - jiffies0[2]) / CLK_TCK, 2), data,
    )  # fmt: skip
    outcome.run_s = round(time.monotonic() - began_s, 1)
    say(f"{label} took {outcome.run_s} s; peak {threads['peak']} threads")
    return outcome
