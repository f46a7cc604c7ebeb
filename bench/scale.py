"""Benchmark 4: 50 rooms on one bridge (lights by names, or a group each), quiet and with a busy core."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench import phases
from bench.common import BenchResult, ms, pct
from bench.fleet import Outcome, run_fleet

ROOMS = 50
# (label, groups, busy core); the groups variants only in the full run (a scene round takes 55 s)
VARIANTS = (
    ("names quiet", False, False),
    ("names busy", False, True),
    ("groups quiet", True, False),
    ("groups busy", True, True),
)


def phases_for(groups: bool, quick: bool) -> list[float]:
    """Long enough for every room's first scene (names: 100 light commands, ~11 s at the bridge's
    10/s; groups: 50 group commands, ~55 s at 1/s), then shorter phases that start while the bridge
    is still busy (groups: scenes still waiting are replaced)."""
    if groups:
        return [60.0, 10.0, 10.0]
    return [15.0, 15.0] if quick else [20.0, 15.0, 15.0]


def analyse(out: Outcome) -> dict[str, Any]:
    fleet, t0 = out.fleet, out.t0_s
    starts = phases.phase_starts(out.records, out.phases_s)
    restored = {
        m.topic.split("/")[1] for m in out.msgs if isinstance(m.data, dict) and m.data.get("event") == "room_restored"
    }
    first = [p.received_s - t0 for p in starts if p.index == 0]
    lights = [fleet.lights_set(r, t0) for r in fleet.rooms]
    music = [fleet.music_set(r, t0) for r in fleet.rooms]
    ok, diffs = fleet.rooms_restored_exactly(out.before, out.after)
    return {
        "phase_starts": phases.summary(starts, out.wall_offset_s),
        "phase_starts_expected": len(fleet.rooms) * len(out.phases_s),
        "first_phase_s": first,
        "lights_set_s": [x - t0 if x is not None else None for x in lights],
        "music_set_s": [x - t0 if x is not None else None for x in music],
        "restored_events": len(restored),
        "rooms_restored_exactly": ok,
        "diffs": diffs[:10],
        "evidence": evidence(out),
    }


def evidence(out: Outcome) -> dict[str, Any]:
    """Where the time went: bridge reads, refused commands, FIFO order of group commands."""
    hue, t0 = out.fleet.hue, out.t0_s
    done = hue.done_log(t0)
    first_phase_end = t0 + out.phases_s[0]
    gets = [d for d in done if d.method == "GET" and d.at_s < first_phase_end]
    refused = []
    for d in [d for d in done if d.status == 429][:6]:
        window = [p for p in done if p.method == "PUT" and p.status == 200 and d.at_s - 1.0 < p.at_s <= d.at_s]
        refused.append({"at_ms": ms(d.at_s - t0), "path": d.path, "puts_admitted_in_previous_1s": len(window)})
    group_puts = [d for d in done if d.method == "PUT" and d.path.startswith("/groups/") and d.status == 200]
    later_first = None
    if group_puts:
        # FIFO across rooms answers every room's first scene before any room's next one
        first_bri = group_puts[0].body.get("bri") if isinstance(group_puts[0].body, dict) else None
        firsts: dict[str, float] = {}
        for d in group_puts:
            firsts.setdefault(d.path, d.at_s)
        last_first = max(firsts.values())
        later_first = sum(
            1 for d in group_puts if isinstance(d.body, dict) and d.body.get("bri") != first_bri and d.at_s < last_first
        )
    return {
        "later_phase_group_commands_before_the_last_first_scene": later_first,
        "group_commands_answered": len(group_puts),
        "hue_gets_in_first_phase": len(gets),
        "hue_last_get_in_first_phase_ms": ms(max(d.at_s for d in gets) - t0) if gets else None,
        "light_commands_answered": sum(1 for d in done if d.method == "PUT" and d.path.startswith("/lights/")),
        "refused_429": refused,
    }


def _stats(values: list[float | None]) -> dict[str, Any]:
    present = [v for v in values if v is not None]
    return {
        "p50_ms": ms(pct(present, 50)) if present else None,
        "max_ms": ms(max(present)) if present else None,
        "missing": len(values) - len(present),
    }


def _all(values: list[float | None]) -> float | None:
    """The last of them, or None when a room never got there."""
    present = [v for v in values if v is not None]
    return max(present) if present and len(present) == len(values) else None


def figures(result: BenchResult, label: str, out: Outcome, data: dict[str, Any], done: dict[str, BenchResult]) -> None:
    bench = f"4 scale {label}"
    rooms = len(out.fleet.rooms)
    groups = out.fleet.groups_variant
    latency = done["latency"].details if "latency" in done else {}
    floor_saved = latency.get("floor", {}).get("saved", {}).get("p50")
    floor_music = latency.get("floor", {}).get("music", {}).get("p50")
    single = done["timing"].figures[0].value if "timing" in done else None
    footprint = done["footprint"].details if "footprint" in done else {}
    load = (
        f"load {out.load_before[0]:g} -> {out.load_after[0]:g}, both cores {out.machine_busy:.0%} busy "
        f"({out.others_cpu_s:.1f} s CPU by other processes, {out.stolen_s:.1f} s stolen by the hypervisor)"
    )
    busy = f"; spinner had {out.busy_share:.0%} of a core" if out.busy_share is not None else ""
    result.add(bench, "HTTP 429 from the bridge", out.rate_limited, "count", target="0", met=out.rate_limited == 0)
    result.add(
        bench,
        "rooms restored exactly",
        data["rooms_restored_exactly"],
        "count",
        "rooms",
        rooms,
        "all",
        data["rooms_restored_exactly"] == rooms and data["restored_events"] == rooms,
        "; ".join(data["diffs"][:3]) or f"every light and speaker field as before; {load}{busy}",
    )
    ps = data["phase_starts"]
    complete = ps["n"] == data["phase_starts_expected"]
    worst = ps["worst_ms"]
    result.add(
        bench,
        f"worst phase_started error, all phases ({ps['n']}/{data['phase_starts_expected']} starts)",
        worst,
        "ms",
        "1 room (bench 2)",
        single,
        "every one < 20 ms",
        worst is not None and worst < 20 and complete,
        f"received by a separate subscriber vs phase_ends_at - duration; p50 {ps['p50_ms']} ms, p99 {ps['p99_ms']} "
        f"ms; the daemon's own stamps: worst {ps['stamped_worst_ms']} ms; worst at {ps['worst_at']}",
    )
    first = data["first_phase_s"]
    result.add(
        bench,
        f"broadcast -> every room's phase_started ({len(first)}/{rooms})",
        ms(max(first)) if first else None,
        "ms",
        "1-room device floor p50 (bench 1)",
        floor_saved,
        note=f"p50 over rooms {ms(pct(first, 50)):.0f} ms" if first else "",
    )
    commands, per_s = (rooms, 1) if groups else (2 * rooms, 10)
    lights = _all(data["lights_set_s"])
    result.add(
        bench,
        "broadcast -> every room's lights set",
        round(lights, 2) if lights is not None else None,
        "s",
        f"bridge floor ceil({commands} {'group' if groups else 'light'} cmds/{per_s}/s)",
        math.ceil(commands / per_s),
        note=f"first scene answered at the bridge (of whichever phase); {_stats(data['lights_set_s'])['missing']} "
        "rooms never set",
    )
    music = _all(data["music_set_s"])
    result.add(
        bench,
        "broadcast -> every room's music playing",
        ms(music) if music is not None else None,
        "ms",
        "1-room device floor p50 (bench 1)",
        floor_music,
    )
    result.add(
        bench,
        "peak threads of the daemon",
        out.threads["peak"],
        "count",
        note=f"{out.threads['distinct_tids']} thread ids over the run; benchmark 6 has the target",
    )
    idle = footprint.get("daemon_rss_kb")
    result.add(
        bench,
        "peak RSS of the daemon (VmHWM)",
        round(out.hwm_kb / 1024, 1),
        "MiB",
        "1-room idle RSS (bench 5)",
        round(idle / 1024, 1) if idle else None,
        note=f"daemon CPU during the run {out.daemon_cpu_s:.1f} s",
    )


def run(quick: bool, hue_ms: float, sonos_ms: float, workdir: Path, done: dict[str, BenchResult]) -> BenchResult:
    result = BenchResult()
    details: dict[str, Any] = {}
    for label, groups, busy in VARIANTS:
        if quick and groups:
            continue
        out = run_fleet(
            f"scale {label}", ROOMS, groups, phases_for(groups, quick), hue_ms, sonos_ms, workdir, busy=busy
        )
        data = analyse(out)
        figures(result, label, out, data, done)
        details[label] = {
            "phases_s": out.phases_s,
            "busy_core": busy,
            "spinner_share_of_core": out.busy_share,
            "load_before": out.load_before,
            "load_after": out.load_after,
            "machine_cpu_busy": out.machine_busy,
            "bench_process_cpu_s": round(out.bench_cpu_s, 2),
            "other_processes_cpu_s": out.others_cpu_s,
            "stolen_cpu_s": out.stolen_s,
            "start_burst": out.drive.get("start_burst"),
            "run_s": out.run_s,
            "phase_starts": data["phase_starts"],
            "first_phase": _stats(data["first_phase_s"]),
            "lights_set": _stats(data["lights_set_s"]),
            "music_set": _stats(data["music_set_s"]),
            "rooms_restored_exactly": data["rooms_restored_exactly"],
            "restored_events": data["restored_events"],
            "diffs": data["diffs"],
            "rate_limited": out.rate_limited,
            "threads": out.threads,
            "hwm_mib": round(out.hwm_kb / 1024, 1),
            "daemon_cpu_s": round(out.daemon_cpu_s, 2),
            "evidence": data["evidence"],
        }
    result.details = details
    return result
