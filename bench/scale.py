"""Benchmark 4: 50 rooms in one daemon, started by one broadcast trigger, sharing one Hue bridge."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from bench.common import BenchResult, ms, pct, proc_cpu_s, proc_status_kb
from bench.harness import Daemon, Recorder, TimedHueBridgeSim, Watcher, base_config, iso_to_wall, wall_offset
from bench.rooms import add_two_lights, compare, demo_speaker, light_fields, phase, room_config, speaker_fields
from relaxd.sim.sonos_speaker import SonosSpeakerSim
from tests.mosquitto import Mosquitto

ROOMS = 50
BROADCAST = "bench/all-rooms"  # "start" starts every room, "stop" stops every room


class Setup:
    """One bridge with 2 lights per room (each room in a group of its own, or by light names) and,
    optionally, one speaker per room."""

    def __init__(self, rooms: int, groups: bool, speakers: bool, hue_ms: float, sonos_ms: float) -> None:
        self.hue = TimedHueBridgeSim(lights=0, latency_ms=hue_ms)
        self.rooms = [f"r{i + 1:02d}" for i in range(rooms)]
        self.lights: dict[str, list[str]] = {}
        self.groups: dict[str, str] = {}
        self.speakers: dict[str, SonosSpeakerSim] = {}
        for room in self.rooms:
            ids, gid = add_two_lights(self.hue, room, group=groups, lamp_on=True)
            self.lights[room] = ids
            if gid is not None:
                self.groups[room] = gid
            if speakers:
                self.speakers[room] = demo_speaker(sonos_ms, room_name=room)

    def start(self) -> None:
        self.hue.start()
        for sim in self.speakers.values():
            sim.start()

    def stop(self) -> None:
        self.hue.stop()
        for sim in self.speakers.values():
            sim.stop()

    def config(self, workdir: Path, port: int, routine: dict[str, Any]) -> dict[str, Any]:
        config = base_config(workdir, port, self.hue)
        for room in self.rooms:
            speaker = self.speakers[room].address if room in self.speakers else None
            if room in self.groups:
                config["rooms"][room] = room_config(group=f"{room} group", speaker=speaker, routine="scale")
            else:
                names = [f"{room} ceiling", f"{room} lamp"]
                config["rooms"][room] = room_config(names=names, speaker=speaker, routine="scale")
        config["routines"]["scale"] = routine
        config["triggers"] = [
            {"topic": BROADCAST, "match": do, "room": r, "do": do} for r in self.rooms for do in ("start", "stop")
        ]
        return config

    def states(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for room in self.rooms:
            for light_id, fields in light_fields(self.hue, self.lights[room]).items():
                out[f"{room}/light{light_id}"] = fields
            if room in self.speakers:
                out[f"{room}/speaker"] = speaker_fields(self.speakers[room])
        return out

    def lights_set(self, room: str, since: float) -> float | None:
        """When the room's first scene was on all its lights (group PUT or last per-light PUT)."""
        done = [d for d in self.hue.done_log(since) if d.method == "PUT" and d.status == 200]
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

    def music_set(self, room: str, since: float) -> float | None:
        plays = [c.at for c in self.speakers[room].requests("Play") if c.at >= since]
        return plays[0] if plays else None


def scenario(
    groups: bool,
    speakers: bool,
    phases: list[float],
    hue_ms: float,
    sonos_ms: float,
    workdir: Path,
    stop_after_phase: bool = False,
) -> dict[str, Any]:
    """Start every room with one broadcast; wait for every phase of every room and every restore."""
    setup = Setup(ROOMS, groups, speakers, hue_ms, sonos_ms)
    name = "groups" if groups else "names"
    broker = Mosquitto(workdir / f"broker-scale-{name}")
    daemon: Daemon | None = None
    count = len(phases)
    routine = {"phases": [phase(f"s{k}", f"{d:g}s", bri=30 + 10 * k, volume=10 + 2 * k) for k, d in enumerate(phases)]}
    recorder: Recorder | None = None
    try:
        setup.start()
        broker.start()
        with Watcher(broker.port, ["relaxd/+/event", "relaxd/+/state", "relaxd/status"]) as watcher:
            daemon = Daemon(workdir, setup.config(workdir, broker.port, routine), f"scale-{name}").start()
            watcher.wait(
                lambda: True if sum(m.topic.endswith("/state") for m in watcher.messages) >= ROOMS else None,
                60,
                "a state of every room",
            )
            time.sleep(1.0)
            before = setup.states()
            recorder = Recorder(broker.port, ["relaxd/+/event"], "phase_started", workdir)
            offset = wall_offset()
            own0 = proc_cpu_s(os.getpid()) or 0.0
            limited = setup.hue.rate_limited_count
            cpu0 = proc_cpu_s(daemon.pid) or 0.0
            start = watcher.mark()
            t0 = watcher.publish(BROADCAST, "start")
            watcher.wait_count("phase_started", ROOMS, 120)
            cpu_first = (proc_cpu_s(daemon.pid) or 0.0) - cpu0
            own_first = (proc_cpu_s(os.getpid()) or 0.0) - own0
            first_s = time.monotonic() - t0
            bridge_bound_s = ROOMS * (1.1 if groups else 0.22) + 30
            watcher.wait_count("phase_started", ROOMS * count, sum(phases) + bridge_bound_s * count)
            if stop_after_phase:
                watcher.publish(BROADCAST, "stop")
            watcher.wait_count("room_restored", ROOMS, bridge_bound_s + 60)
            hwm = proc_status_kb(daemon.pid, "VmHWM") or 0
            cpu = (proc_cpu_s(daemon.pid) or 0.0) - cpu0
            limited = setup.hue.rate_limited_count - limited
            own = (proc_cpu_s(os.getpid()) or 0.0) - own0
            msgs = watcher.since(start)
            records = recorder.finish()
            recorder = None
        after = setup.states()
    finally:
        if recorder is not None:
            recorder.abort()
        if daemon is not None:
            daemon.stop()
        broker.stop()
        setup.stop()
    return analyse(setup, msgs, records, t0, offset, phases, before, after) | {
        "cpu_to_first_phases": {
            "window_s": round(first_s, 2),
            "daemon_cpu_s": round(cpu_first, 2),
            "bench_cpu_s": round(own_first, 2),
        },
        "hwm_kb": hwm,
        "cpu_s": cpu,
        "bench_cpu_s": own,
        "rate_limited": limited,
        "groups": groups,
        "speakers": speakers,
        "phases_s": phases,
    }


def analyse(
    setup: Setup,
    msgs: list[Any],
    records: list[tuple[float, str, Any]],
    t0: float,
    offset: float,
    phases: list[float],
    before: dict[str, Any],
    after: dict[str, Any],
) -> dict[str, Any]:
    began: dict[str, float] = {}
    starts: dict[str, dict[int, tuple[float, float]]] = {room: {} for room in setup.rooms}
    restored: set[str] = set()
    for m in msgs:
        room = m.topic.split("/")[1]
        if not isinstance(m.data, dict) or room not in starts:
            continue
        if m.topic.endswith("/state") and m.data.get("session_started_at") and room not in began:
            began[room] = iso_to_wall(m.data["session_started_at"])
        elif m.data.get("event") == "room_restored":
            restored.add(room)
    for at_s, topic, data in records:
        room = topic.split("/")[1]
        if room in starts and isinstance(data, dict) and data.get("event") == "phase_started":
            starts[room].setdefault(int(data["phase_index"]), (at_s, iso_to_wall(data["at"])))
    first = [starts[r][0][0] - t0 for r in setup.rooms if 0 in starts[r]]
    errors, stamped = [], []
    for room in setup.rooms:
        for k, (at_s, at_wall) in starts[room].items():
            if k > 0 and room in began:
                planned = began[room] + sum(phases[:k])
                errors.append(at_s + offset - planned)
                stamped.append(at_wall - planned)
    lights = [setup.lights_set(r, t0) for r in setup.rooms]
    music = [setup.music_set(r, t0) for r in setup.speakers]
    rooms_ok = 0
    diffs: list[str] = []
    for room in setup.rooms:
        keys = [k for k in before if k.startswith(room + "/")]
        equal, total, d = compare({k: before[k] for k in keys}, {k: after[k] for k in keys})
        rooms_ok += equal == total
        diffs += d
    return {
        "first_phase_s": first,
        "phase_errors_s": errors,
        "stamped_errors_s": stamped,
        "evidence": evidence(setup, t0, phases[0]),
        "lights_set_s": [x - t0 if x is not None else None for x in lights],
        "music_set_s": [x - t0 if x is not None else None for x in music],
        "restored_events": len(restored),
        "rooms_restored_exactly": rooms_ok,
        "diffs": diffs[:10],
    }


def evidence(setup: Setup, t0: float, first_phase_s: float) -> dict[str, Any]:
    """Where the start-up time went: bridge reads, speaker snapshots, refused commands."""
    done = setup.hue.done_log(t0)
    gets = [d for d in done if d.method == "GET" and d.at_s < t0 + first_phase_s]
    puts = [d for d in done if d.method == "PUT" and d.path.startswith("/lights/")]
    arrivals = [e.at_s for e in setup.hue.request_log() if e.method == "PUT" and e.at_s >= t0]
    refused = []
    for d in [d for d in puts if d.status == 429][:6]:
        admitted = [p for p in puts if p.status == 200 and d.at_s - 1.0 < p.at_s <= d.at_s]
        refused.append(
            {
                "at_ms": ms(d.at_s - t0),
                "path": d.path,
                "light_puts_admitted_in_previous_1s": len(admitted),
                "their_answer_spread_ms": ms(admitted[-1].at_s - admitted[0].at_s) if admitted else None,
                "puts_arrived_in_previous_1s": sum(d.at_s - 1.0 < a <= d.at_s for a in arrivals),
                "gets_answered_in_previous_1s": sum(
                    g.method == "GET" and d.at_s - 1.0 < g.at_s <= d.at_s for g in done
                ),
            }
        )
    snapshots = []
    for sim in setup.speakers.values():
        calls = [c for c in sim.requests() if c.at >= t0]
        first_set = next((i for i, c in enumerate(calls) if c.action == "SetVolume"), None)
        if first_set:
            snapshots.append(calls[first_set - 1].at - t0)
    group_puts = [d for d in done if d.method == "PUT" and d.path.startswith("/groups/") and d.status == 200]
    later_first = None
    if group_puts:
        # FIFO pacing would answer every room's first scene before any room's second one
        first_bri = group_puts[0].body.get("bri")
        firsts: dict[str, float] = {}
        for d in group_puts:
            firsts.setdefault(d.path, d.at_s)
        last_first = max(firsts.values())
        later_first = sum(1 for d in group_puts if d.body.get("bri") != first_bri and d.at_s < last_first)
    return {
        "later_phase_group_commands_before_the_last_first_scene": later_first,
        "hue_gets_first_phase": len(gets),
        "hue_last_get_ms": ms(max(d.at_s for d in gets) - t0) if gets else None,
        "sonos_snapshot_done_ms": {"p50": ms(pct(snapshots, 50)), "max": ms(max(snapshots))} if snapshots else None,
        "refused_429": refused,
    }


def _max(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present and len(present) == len(values) else None


def run(quick: bool, hue_ms: float, sonos_ms: float, workdir: Path, done: dict[str, BenchResult]) -> BenchResult:
    phases = [15.0, 15.0] if quick else [20.0, 20.0, 20.0]
    data = scenario(False, True, phases, hue_ms, sonos_ms, workdir)
    result = BenchResult()
    _figures(result, "4 scale", data, done, light_commands=2 * ROOMS, per_s=10)
    details: dict[str, Any] = {"names": _summary(data)}
    if not quick:
        groups = scenario(True, False, [30.0, 60.0], hue_ms, sonos_ms, workdir, stop_after_phase=True)
        _figures(result, "4 scale (groups)", groups, done, light_commands=ROOMS, per_s=1)
        details["groups"] = _summary(groups)
    result.details = details
    return result


def _summary(data: dict[str, Any]) -> dict[str, Any]:
    def stats(values: list[float | None]) -> dict[str, Any]:
        present = [v for v in values if v is not None]
        return {
            "p50_ms": ms(pct(present, 50)),
            "max_ms": ms(max(present)) if present else None,
            "missing": len(values) - len(present),
        }

    return {
        "first_phase": stats(data["first_phase_s"]),
        "lights_set": stats(data["lights_set_s"]),
        "music_set": stats(data["music_set_s"]) if data["speakers"] else None,
        "phase_errors": stats([abs(e) for e in data["phase_errors_s"]]),
        "phase_errors_stamped_by_daemon": stats([abs(e) for e in data["stamped_errors_s"]]),
        "evidence": data["evidence"],
        "bench_process_cpu_s": round(data["bench_cpu_s"], 2),
        "cpu_to_first_phases": data["cpu_to_first_phases"],
        "hwm_mib": round(data["hwm_kb"] / 1024, 1),
        "cpu_s": round(data["cpu_s"], 2),
        "rate_limited": data["rate_limited"],
        "restored_events": data["restored_events"],
        "rooms_restored_exactly": data["rooms_restored_exactly"],
        "diffs": data["diffs"],
        "phases_s": data["phases_s"],
    }


def _figures(
    result: BenchResult, bench: str, data: dict[str, Any], done: dict[str, BenchResult], light_commands: int, per_s: int
) -> None:
    latency = done["latency"].details if "latency" in done else {}
    floor_saved = latency.get("floor", {}).get("saved", {}).get("p50")
    floor_music = latency.get("floor", {}).get("music", {}).get("p50")
    first = data["first_phase_s"]
    result.add(
        bench,
        f"broadcast -> every room's phase_started ({len(first)}/{ROOMS})",
        ms(max(first)),
        "ms",
        "1-room device floor p50 (bench 1)",
        floor_saved,
        "",
        None,
        f"p50 over rooms {ms(pct(first, 50)):.0f} ms",
    )
    lights = _max(data["lights_set_s"])
    floor_s = math.ceil(light_commands / per_s)
    kind = "group" if per_s == 1 else "light"
    result.add(
        bench,
        "broadcast -> every room's lights set",
        round(lights, 2) if lights is not None else None,
        "s",
        f"bridge floor ceil({light_commands} {kind} cmds/{per_s}/s)",
        floor_s,
        "",
        None,
        "one shared bridge: its rate limit is the bottleneck",
    )
    if data["speakers"]:
        music = _max(data["music_set_s"])
        result.add(
            bench,
            "broadcast -> every room's music playing",
            ms(music) if music is not None else None,
            "ms",
            "1-room device floor p50 (bench 1)",
            floor_music,
        )
    errors = [abs(e) for e in data["phase_errors_s"]]
    single = done["timing"].figures[0].value if "timing" in done else None
    worst = ms(max(errors)) if errors else None
    result.add(
        bench,
        f"worst phase_started error, phases 2+ ({len(errors)} starts)",
        worst,
        "ms",
        "1 room (bench 2)",
        single,
        "< 20 ms",
        worst is not None and worst < 20,
        f"phases {'/'.join(f'{p:g}' for p in data['phases_s'])} s",
    )
    footprint = done["footprint"].details if "footprint" in done else {}
    idle = footprint.get("daemon_rss_kb")
    result.add(
        bench,
        "peak RSS of the daemon (VmHWM)",
        round(data["hwm_kb"] / 1024, 1),
        "MiB",
        "1-room idle RSS (bench 5)",
        round(idle / 1024, 1) if idle else None,
        note=f"daemon CPU during the run {data['cpu_s']:.1f} s",
    )
    result.add(
        bench,
        "rooms restored exactly",
        data["rooms_restored_exactly"],
        "count",
        "rooms",
        ROOMS,
        "all",
        data["rooms_restored_exactly"] == ROOMS and data["restored_events"] == ROOMS,
        "; ".join(data["diffs"][:3]),
    )
    result.add(
        bench, "HTTP 429 from the bridge", data["rate_limited"], "count", target="0", met=data["rate_limited"] == 0
    )
