"""Benchmark 2: phase_started as received against the daemon's own plan, over a routine of short phases."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from bench import phases
from bench.common import BenchResult, end_process, ms, start_process
from bench.harness import Daemon, TimedHueBridgeSim, Watcher, base_config, iso_to_wall, wall_offset
from bench.probes import Recorder
from bench.rooms import add_two_lights, demo_speaker, phase, room_config
from tests.mosquitto import Mosquitto

PHASE_S = 3.0
TICK_TOPIC = "bench/tick"
# The reference: a bare Python process that sleeps to the same kind of deadlines and publishes
# over the same broker (timer wake-up + paho + broker + delivery: the floor of any MQTT follower).
TICKER = """
import sys, time
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
port, first_wall, count, every = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-ticker")
client.connect("127.0.0.1", port, keepalive=60)
client.loop_start()
offset = time.time() - time.monotonic()
for k in range(count):
    deadline = first_wall + k * every - offset
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        time.sleep(left)
    client.publish("bench/tick", str(k), qos=1).wait_for_publish(5)
client.disconnect()
client.loop_stop()
"""


def _routine(count: int) -> dict[str, Any]:
    return {
        "phases": [
            phase(
                f"p{k:02d}",
                f"{PHASE_S:g}s",
                bri=30 + (k % 3) * 10,
                kelvin=2200 + (k % 2) * 300,
                volume=10 + (k % 2) * 4,
                transition="1s",
                ramp="1s",
            )
            for k in range(count)
        ]
    }


def _halves(errors: list[float]) -> tuple[float, float]:
    """Max |error| of the first and of the second half of the phases."""
    rest = [abs(e) for e in errors]
    half = len(rest) // 2
    return max(rest[:half]), max(rest[half:])


def measure(count: int, hue_ms: float, sonos_ms: float, workdir: Path) -> dict[str, Any]:
    hue = TimedHueBridgeSim(lights=0, latency_ms=hue_ms)
    add_two_lights(hue, "timing")
    speaker = demo_speaker(sonos_ms, room_name="timing")
    broker = Mosquitto(workdir / "broker-timing")
    daemon: Daemon | None = None
    ticker = None
    recorder: Recorder | None = None
    try:
        hue.start()
        speaker.start()
        broker.start()
        config = base_config(workdir, broker.port, hue)
        config["rooms"]["timing"] = room_config(group="timing group", speaker=speaker.address, routine="timing")
        config["routines"]["timing"] = _routine(count)
        with Watcher(broker.port, ["relaxd/#", TICK_TOPIC]) as watcher:
            daemon = Daemon(workdir, config, "timing").start()
            watcher.wait(
                lambda: next((m for m in watcher.messages if m.topic == "relaxd/timing/state"), None),
                30,
                "the daemon's first state",
            )
            time.sleep(0.5)
            recorder = Recorder(broker.port, ["relaxd/timing/event", TICK_TOPIC], "phase_started", workdir)
            offset = wall_offset()
            start = watcher.mark()
            watcher.publish("relaxd/timing/set", '{"action": "start", "routine": "timing"}')
            first = watcher.wait_event("timing", "phase_started", start, 15)[0]
            # the session's start as the daemon planned it: phase 1's end minus its duration
            began = iso_to_wall(first.data["phase_ends_at"]) - PHASE_S
            # ticks at the middle of each phase after the first, so they never meet a phase change
            first_tick = began + PHASE_S * 1.5
            ticker = start_process(
                [sys.executable, "-c", TICKER, str(broker.port), repr(first_tick), str(count - 1), repr(PHASE_S)],
                cwd=workdir,
            )
            watcher.wait_event("timing", "phase_started", start, count * PHASE_S + 30, count)
            watcher.wait_event("timing", "room_restored", start, 60)

            def all_ticks() -> list[Any] | None:
                found = [m for m in watcher.messages[start:] if m.topic == TICK_TOPIC]
                return found if len(found) >= count - 1 else None

            watcher.wait(all_ticks, 15, "the reference ticks")
            records = recorder.finish()
            recorder = None
    finally:
        if recorder is not None:
            recorder.abort()
        if ticker is not None:
            end_process(ticker, 5)
        if daemon is not None:
            daemon.stop()
        broker.stop()
        hue.stop()
        speaker.stop()
    starts = phases.phase_starts([r for r in records if r[1].endswith("/event")], [PHASE_S] * count)
    if [p.index for p in starts] != list(range(count)):
        raise RuntimeError(f"the recorder missed phase_started events: {[p.index for p in starts]}")
    tick_errors = [
        (at_s + offset) - (first_tick + int(d) * PHASE_S) for at_s, topic, d in records if topic == TICK_TOPIC
    ]
    return {
        "errors": [p.error_s(offset) for p in starts],
        "stamped": [p.stamped_error_s for p in starts],
        "summary": phases.summary(starts, offset),
        "ticks": tick_errors,
    }


def run(quick: bool, hue_ms: float, sonos_ms: float, workdir: Path, done: dict[str, BenchResult]) -> BenchResult:
    count = 10 if quick else 20
    data = measure(count, hue_ms, sonos_ms, workdir)
    errors, ticks = data["errors"], [abs(t) for t in data["ticks"]]
    first, second = _halves(errors)
    worst = max(abs(e) for e in errors)
    floor = max(ticks)
    floor_first, floor_second = max(ticks[: len(ticks) // 2]), max(ticks[len(ticks) // 2 :])
    summary = data["summary"]
    bench = "2 phase timing"
    routine = f"{count} phases of {PHASE_S:g} s"
    result = BenchResult()
    result.add(
        bench,
        "worst |received - planned| phase_started",
        ms(worst),
        "ms",
        "timer+MQTT floor (bare paho ticker)",
        ms(floor),
        "< 20 ms",
        ms(worst) < 20,
        f"{routine}, all {count} as received by a separate subscriber; plan = phase_ends_at - duration; "
        f"the daemon's own `at` stamps are at most {summary['stamped_worst_ms']:g} ms late (1 ms resolution)",
    )
    result.add(bench, "first-half worst error", ms(first), "ms", "floor first half", ms(floor_first))
    result.add(
        bench,
        "second-half worst error",
        ms(second),
        "ms",
        "floor second half",
        ms(floor_second),
        "no growth (<= first + 5 ms)",
        ms(second) <= ms(first) + 5,
    )
    result.add(
        bench,
        "phase 1 error (right after the snapshot)",
        ms(errors[0]),
        "ms",
        note="the timeline starts when the snapshot is saved; phase 1 is entered at that instant",
    )
    result.details = {
        "routine": routine,
        "errors_ms": [ms(e) for e in errors],
        "daemon_stamped_errors_ms": [ms(e) for e in data["stamped"]],
        "reference_tick_errors_ms": [ms(e) for e in ticks],
        "summary": summary,
    }
    return result
