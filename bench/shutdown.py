"""Benchmark 7: SIGTERM with 50 rooms in a session: every room restored at once, no phase after it."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import phases
from bench.common import BenchResult, proc_cpu_s, proc_status_kb, wait_until
from bench.fleet import Live, Outcome, run_fleet
from bench.harness import Done, iso_to_wall, wall_offset
from bench.scale import ROOMS

FADE_S = 5.0  # relaxd's default restore_fade: the music fades back in over it
LIGHT_COMMANDS_PER_S = 10
LEAD_S = 1.0  # the signal comes this long before the first room's phase 2 is due
# Phase 1 holds every room's first scene (100 light commands: ~11 s); the short phases after it
# would start one after another during the restore if the timeline were not stopped.
PHASES_S = [20.0] + [2.0] * 10
SHUTDOWN_TIMEOUT_S = 60.0  # relaxd's default


def drive(live: Live) -> dict[str, Any]:
    """Wait for every room's first scene, then SIGTERM just before phase 2 is due; wait for the exit."""
    fleet, watcher = live.fleet, live.watcher
    rooms = len(fleet.rooms)
    watcher.wait_count("phase_started", rooms, 60)
    ends = [
        iso_to_wall(m.data["phase_ends_at"])
        for m in watcher.since(0)
        if isinstance(m.data, dict) and m.data.get("event") == "phase_started" and m.data.get("phase_index") == 0
    ]
    signal_at_s = min(ends) - LEAD_S - wall_offset()
    all_set = wait_until(
        lambda: all(fleet.lights_set(r, live.t0_s) and fleet.music_set(r, live.t0_s) for r in fleet.rooms),
        max(0.0, signal_at_s - time.monotonic()),
        0.05,
    )
    time.sleep(max(0.0, signal_at_s - time.monotonic()))
    proc = live.daemon.proc
    assert proc is not None
    hwm, cpu = proc_status_kb(proc.pid, "VmHWM") or 0, proc_cpu_s(proc.pid) or 0.0
    at_signal = fleet.states()
    t_signal = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code: int | None = proc.wait(timeout=SHUTDOWN_TIMEOUT_S + 30)
    except subprocess.TimeoutExpired:
        code = None
    t_exit = time.monotonic()
    return {
        "t_signal": t_signal,
        "t_exit": t_exit,
        "exit_code": code,
        "all_set_before_signal": all_set,
        "at_signal": at_signal,
        "hwm_kb": hwm,
        "cpu_s": cpu,
    }


def analyse(out: Outcome) -> dict[str, Any]:
    d, fleet = out.drive, out.fleet
    t_sig, offset = d["t_signal"], out.wall_offset_s
    events = [m for m in out.msgs if isinstance(m.data, dict) and "event" in m.data]
    restored = [m for m in events if m.data["event"] == "room_restored" and m.at_s >= t_sig]
    stopped = [m for m in events if m.data["event"] == "session_stopped" and m.data.get("reason") == "shutdown"]
    starts = phases.phase_starts(out.records, out.phases_s)
    sig_wall = t_sig + offset
    after = [p for p in starts if p.stamped_wall_s >= sig_wall]
    received_after = [p for p in starts if p.received_s >= t_sig]
    last_restore = max((m.at_s for m in restored), default=None)
    window_end = (last_restore if last_restore is not None else d["t_exit"]) + offset
    # Phases the timeline would have started between the signal and the last restore.
    sessions = {(p.room, p.session_id): p.planned_wall_s for p in starts if p.index == 0}
    due = 0
    for begin in sessions.values():
        plans = [begin + sum(out.phases_s[:k]) for k in range(1, len(out.phases_s))]
        due += sum(sig_wall <= t < window_end for t in plans)
    # Light commands the restores need: one per light the session changed (every light was on before,
    # so bri and colour go back in one command). A light changed = a scene command to it answered;
    # scene commands differ from restore commands by their bri (no scene bri equals a light's own).
    before_bri = {lid: out.before[f"{room}/light{lid}"]["bri"] for room in fleet.rooms for lid in fleet.lights[room]}
    puts = [x for x in fleet.hue.done_log(out.t0_s) if x.method == "PUT" and x.path.startswith("/lights/")]
    puts = [x for x in puts if x.status == 200 and isinstance(x.body, dict)]

    def is_scene(put: Done) -> bool:
        bri = put.body.get("bri") if isinstance(put.body, dict) else None
        return bri is not None and bri != before_bri.get(put.path.split("/")[2])

    changed = {x.path.split("/")[2] for x in puts if is_scene(x)}
    changed_at_signal = sum(
        1
        for room in fleet.rooms
        for lid in fleet.lights[room]
        if d["at_signal"][f"{room}/light{lid}"] != out.before[f"{room}/light{lid}"]
    )
    restore_puts = [x for x in puts if x.at_s >= t_sig and not is_scene(x)]
    speaker_last = max((c.at for sim in fleet.speakers.values() for c in sim.requests() if c.at >= t_sig), default=None)
    sonos_after = [c.at - t_sig for sim in fleet.speakers.values() for c in sim.requests() if c.at >= t_sig]
    ok, diffs = fleet.rooms_restored_exactly(out.before, out.after)
    return {
        "restore_light_commands_per_s": _per_second([x.at_s - t_sig for x in restore_puts]),
        "sonos_requests_per_s": _per_second(sonos_after),
        "first_restore_command_s": min((x.at_s for x in restore_puts), default=t_sig) - t_sig,
        "restored_after_signal": len(restored),
        "last_restore_s": last_restore - t_sig if last_restore is not None else None,
        "exit_s": d["t_exit"] - t_sig,
        "exit_code": d["exit_code"],
        "sessions_stopped_shutdown": len(stopped),
        "phase_started_stamped_after_signal": len(after),
        "phase_started_received_after_signal": len(received_after),
        "phases_due_in_window": due,
        "commands_needed": len(changed),
        "lights_changed_at_signal": changed_at_signal,
        "restore_commands_sent": len(restore_puts),
        "scene_commands_answered_after_signal": sum(1 for x in puts if x.at_s >= t_sig and is_scene(x)),
        "lights_done_s": max(x.at_s for x in restore_puts) - t_sig if restore_puts else None,
        "speakers_done_s": speaker_last - t_sig if speaker_last is not None else None,
        "all_set_before_signal": d["all_set_before_signal"],
        "rooms_restored_exactly": ok,
        "diffs": diffs[:10],
    }


def _per_second(offsets_s: list[float]) -> list[int]:
    """How many of them fell in each second after the signal."""
    if not offsets_s:
        return []
    counts = [0] * (int(max(offsets_s)) + 1)
    for offset_s in offsets_s:
        counts[int(offset_s)] += 1
    return counts


def run(quick: bool, hue_ms: float, sonos_ms: float, workdir: Path, done: dict[str, BenchResult]) -> BenchResult:
    out = run_fleet(
        "shutdown", ROOMS, False, PHASES_S, hue_ms, sonos_ms, workdir, restore_fade=f"{FADE_S:g}s", drive=drive
    )
    data = analyse(out)
    floor_s = data["commands_needed"] / LIGHT_COMMANDS_PER_S
    target_s = FADE_S + floor_s + 1.0
    bench = "7 SIGTERM"
    result = BenchResult()
    target = f"<= fade + {data['commands_needed']}/10 s + 1 s"
    last = data["last_restore_s"]
    all_back = data["restored_after_signal"] == ROOMS
    result.add(
        bench,
        f"signal -> last room_restored ({data['restored_after_signal']}/{ROOMS})",
        round(last, 2) if last is not None else None,
        "s",
        f"fade {FADE_S:g} s + floor {floor_s:g} s + 1 s",
        target_s,
        target,
        all_back and last is not None and last <= target_s,
        f"lights restored after {data['lights_done_s'] or 0:.2f} s, speakers (with the fade) after "
        f"{data['speakers_done_s'] or 0:.2f} s; load {out.load_before[0]:g} -> {out.load_after[0]:g}",
    )
    result.add(
        bench,
        "signal -> process exit",
        round(data["exit_s"], 2),
        "s",
        f"fade {FADE_S:g} s + floor {floor_s:g} s + 1 s",
        target_s,
        target,
        data["exit_s"] <= target_s and data["exit_code"] == 0,
        f"exit code {data['exit_code']}",
    )
    result.add(
        bench,
        "phase_started after the signal",
        data["phase_started_stamped_after_signal"],
        "count",
        target="0",
        met=data["phase_started_stamped_after_signal"] == 0,
        note=f"the timeline had {data['phases_due_in_window']} phase starts due before the last restore; "
        f"by the events' own stamps; received after the signal: {data['phase_started_received_after_signal']}; "
        f"sessions stopped with reason shutdown: {data['sessions_stopped_shutdown']}",
    )
    result.add(
        bench,
        "light commands sent by the restores",
        data["restore_commands_sent"],
        "count",
        "needed: one per light the session changed",
        data["commands_needed"],
        "= needed",
        data["restore_commands_sent"] == data["commands_needed"],
        f"lights changed at the signal: {data['lights_changed_at_signal']}; scene commands answered after it: "
        f"{data['scene_commands_answered_after_signal']}",
    )
    result.add(
        bench,
        "rooms restored exactly",
        data["rooms_restored_exactly"],
        "count",
        "rooms",
        ROOMS,
        "all",
        data["rooms_restored_exactly"] == ROOMS,
        "; ".join(data["diffs"][:3]),
    )
    result.add(bench, "HTTP 429 from the bridge", out.rate_limited, "count", target="0", met=out.rate_limited == 0)
    result.details = {
        **data,
        "floor_s": floor_s,
        "target_s": target_s,
        "phases_s": PHASES_S,
        "fade_s": FADE_S,
        "threads": out.threads,
        "load_before": out.load_before,
        "load_after": out.load_after,
        "machine_cpu_busy": out.machine_busy,
        "stolen_cpu_s": out.stolen_s,
        "run_s": out.run_s,
    }
    return result
