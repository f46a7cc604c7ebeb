"""Diagnostic (only with --only diagnose): why phase_started is late with 50 rooms, seen from inside the daemon."""

# The daemon runs under a wrapper that adds a task to its event loop: it sleeps 2 ms at a time and,
# whenever it wakes more than 3 ms late, notes how the interval was spent by the loop's thread
# (/proc/self/task/<tid>/schedstat: on CPU, waiting for a CPU), what the process's other threads ran
# meanwhile, and how many jobs waited in the blocking pool. Off CPU and not runnable while other
# threads of the process run is waiting for the GIL. The wrapper also times every event-loop
# callback over 5 ms and every garbage collection (gc.callbacks), and counts the GC-tracked objects
# every 10 s. The figures of benchmark 4 come from daemons without the wrapper; this explains them.

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import phases
from bench.common import BenchResult, ms
from bench.fleet import run_fleet
from bench.scale import ROOMS, VARIANTS, phases_for

PROBE_EVERY_S = 0.002
# The same runs with gc.freeze() after start-up (an experiment on the wrapper, relaxd unchanged).
EXPERIMENTS = [("names quiet gc.freeze()", False, False, True), ("groups quiet gc.freeze()", True, False, True)]
WRAPPER = """
import asyncio, gc, json, os, sys, threading, time
from asyncio import events
out_path, every, freeze = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "freeze"
sys.argv = ["relaxd", *sys.argv[4:]]
from relaxd.app import daemon as d
from relaxd.app.cli import main
rows, slow, gcs = [], [], []
def stat(tid):
    try:
        with open(f"/proc/self/task/{tid}/schedstat") as f:
            cpu, wait, _ = f.read().split()
        return int(cpu), int(wait)
    except OSError:
        return 0, 0
def others(me):
    return {t: stat(t)[0] for t in os.listdir("/proc/self/task") if t != me}
async def probe(daemon):
    me = str(threading.get_native_id())
    t, (cpu, wait), rest = time.monotonic(), stat(me), others(me)
    while True:
        await asyncio.sleep(every)
        t2, (cpu2, wait2), rest2 = time.monotonic(), stat(me), others(me)
        late = t2 - t - every
        if late > 0.003:
            ran = sum(v - rest.get(k, v) for k, v in rest2.items())
            rows.append([t, t2, late, (cpu2 - cpu) / 1e9, (wait2 - wait) / 1e9, ran / 1e9,
                         daemon.calls.pool._jobs.qsize()])
        t, cpu, wait, rest = t2, cpu2, wait2, rest2
def where(handle):
    owner = getattr(handle._callback, "__self__", None)
    if not isinstance(owner, asyncio.Task):
        return repr(handle._callback)[:100]
    coro, names = owner.get_coro(), []
    while coro is not None and getattr(coro, "cr_frame", None) is not None:
        names.append(f"{coro.cr_frame.f_code.co_qualname}:{coro.cr_frame.f_lineno}")
        coro = coro.cr_await
    return " > ".join(names[-3:]) or f"{owner.get_name()} (done)"
run_handle = events.Handle._run
def timed(self):
    t, c = time.monotonic(), time.thread_time()
    run_handle(self)
    took = time.monotonic() - t
    if took > 0.005:
        slow.append([t, t + took, took, time.thread_time() - c, where(self)])
events.Handle._run = timed
async def heap():
    while True:
        await asyncio.sleep(10.0)
        t = time.monotonic()
        objects.append([t, len(gc.get_objects()), time.monotonic() - t])
objects = []
def on_gc(phase, info, began=[0.0]):
    if phase == "start":
        began[0] = time.monotonic()
    else:
        gcs.append([began[0], time.monotonic(), info["generation"], threading.current_thread().name])
gc.callbacks.append(on_gc)
import re
import paho.mqtt.client as paho
from relaxd.adapters import mqtt as relaxd_mqtt
hands, sends = [], []
publish_event = relaxd_mqtt.MqttBus.publish_event
def handed(self, room, event):
    t = time.monotonic()
    publish_event(self, room, event)
    if event.get("event") == "phase_started":
        hands.append([t, time.monotonic(), room, event.get("phase_index")])
relaxd_mqtt.MqttBus.publish_event = handed
KEY = re.compile(rb'/([^/"]+)/event.*?"phase_index":(\\d+)', re.S)
sock_send = paho.Client._sock_send
def sent(self, buf):
    t = time.monotonic()
    n = sock_send(self, buf)
    found = KEY.search(bytes(buf)) if b"phase_started" in buf else None
    if found:
        sends.append([t, found.group(1).decode(), int(found.group(2))])
    return n
paho.Client._sock_send = sent
start, shutdown = d.Daemon.start, d.Daemon.shutdown
async def started(self):
    await start(self)
    if freeze:  # the experiment: what start-up made is never looked at by a collection again
        gc.collect()
        gc.freeze()
    self._bench_probe = asyncio.get_running_loop().create_task(probe(self))
    self._bench_heap = asyncio.get_running_loop().create_task(heap())
async def stopped(self):
    self._bench_probe.cancel()
    self._bench_heap.cancel()
    with open(out_path, "w") as f:
        json.dump({"rows": rows, "slow": slow, "gc": gcs, "objects": objects, "hands": hands, "sends": sends}, f)
    await shutdown(self)
d.Daemon.start, d.Daemon.shutdown = started, stopped
sys.exit(main())
"""


def _overlap(spans: list[list[Any]], begin_s: float, end_s: float) -> list[list[Any]]:
    return [x for x in spans if x[1] >= begin_s and x[0] <= end_s]


def delivery(starts: list[phases.PhaseStart], probe: dict[str, Any], offset: float) -> list[dict[str, Any]]:
    """The 8 latest arrivals, step by step: stamped, handed to paho (publish_event returned), written
    to the socket by paho's network thread, received by the subscriber (all ms after the plan)."""
    hands = {(h[2], h[3]): h for h in probe.get("hands", [])}
    sends = {(x[1], x[2]): x[0] for x in reversed(probe.get("sends", []))}  # the first write of each
    out = []
    for p in sorted(starts, key=lambda p: -p.error_s(offset))[:8]:
        plan_s = p.planned_wall_s - offset
        hand, send = hands.get((p.room, p.index)), sends.get((p.room, p.index))
        out.append(
            {
                "event": f"{p.room} phase {p.index + 1}",
                "stamped_ms": ms(p.stamped_error_s),
                "publish_called_ms": ms(hand[0] - plan_s) if hand else None,
                "publish_returned_ms": ms(hand[1] - plan_s) if hand else None,
                "on_socket_ms": ms(send - plan_s) if send is not None else None,
                "received_ms": ms(p.error_s(offset)),
            }
        )
    return out


def explain(starts: list[phases.PhaseStart], probe: dict[str, Any], offset: float) -> list[dict[str, Any]]:
    """The 8 latest phase_started stamps, and what the daemon did between their plan and their stamp."""
    out = []
    for p in sorted(starts, key=lambda p: -p.stamped_error_s)[:8]:
        plan_s, stamp_s = p.planned_wall_s - offset, p.stamped_wall_s - offset + 0.001
        hits = _overlap(probe["rows"], plan_s, stamp_s)
        collections = _overlap(probe["gc"], plan_s, stamp_s)
        callbacks = _overlap(probe["slow"], plan_s, stamp_s)
        out.append(
            {
                "event": f"{p.room} phase {p.index + 1}",
                "stamped_late_ms": ms(p.stamped_error_s),
                "received_late_ms": ms(p.error_s(offset)),
                "loop_late_ms": ms(sum(r[2] for r in hits)),
                "loop_thread_cpu_ms": ms(sum(r[3] for r in hits)),
                "loop_thread_runqueue_ms": ms(sum(r[4] for r in hits)),
                # late = on CPU (callbacks) + waiting for a CPU + the rest: off CPU while others ran
                "loop_thread_off_cpu_ms": ms(sum(r[2] - r[3] - r[4] for r in hits)),
                "other_threads_cpu_ms": ms(sum(r[5] for r in hits)),
                "pool_jobs_queued_max": max((int(r[6]) for r in hits), default=0),
                "gc": [f"gen{g[2]} {ms(g[1] - g[0]):g} ms in {g[3]}" for g in collections],
                "slow_callbacks": [f"{ms(c[2]):g} ms (cpu {ms(c[3]):g}): {c[4]}" for c in callbacks],
            }
        )
    return out


def run(quick: bool, hue_ms: float, sonos_ms: float, workdir: Path, done: dict[str, BenchResult]) -> BenchResult:
    result = BenchResult()
    details: dict[str, Any] = {}
    for label, groups, busy, freeze in [(*v, False) for v in VARIANTS] + EXPERIMENTS:
        if quick and groups:
            continue
        rows_path = workdir / f"probe-{label.replace(' ', '-').replace('()', '')}.json"
        launcher = ["-c", WRAPPER, str(rows_path), repr(PROBE_EVERY_S), "freeze" if freeze else "plain"]
        out = run_fleet(
            f"diagnose {label.replace('()', '')}",
            ROOMS,
            groups,
            phases_for(groups, quick),
            hue_ms,
            sonos_ms,
            workdir,
            busy=busy,
            launcher=launcher,
        )
        probe: dict[str, Any] = json.loads(rows_path.read_text()) if rows_path.exists() else {}
        details[label] = figures(result, f"diagnose {label}", out.records, out.phases_s, out.wall_offset_s, probe)
        details[label]["machine"] = {
            "load_before": out.load_before,
            "load_after": out.load_after,
            "both_cores_busy": out.machine_busy,
            "other_processes_cpu_s": out.others_cpu_s,
            "stolen_cpu_s": out.stolen_s,
        }
    result.details = details
    return result


def figures(
    result: BenchResult,
    bench: str,
    records: list[tuple[float, str, Any]],
    phases_s: list[float],
    offset: float,
    probe: dict[str, Any],
) -> dict[str, Any]:
    rows, collections, callbacks = probe.get("rows", []), probe.get("gc", []), probe.get("slow", [])
    starts = phases.phase_starts(records, phases_s)
    summary = phases.summary(starts, offset)
    result.add(
        bench,
        "worst phase_started stamp after its plan",
        summary["stamped_worst_ms"],
        "ms",
        note=f"received: worst {summary['worst_ms']} ms; {summary['worst_at']}",
    )
    late_s = sum(r[2] for r in rows)
    result.add(
        bench,
        "event-loop wake-ups > 3 ms late",
        len(rows),
        "count",
        note=f"probe every {PROBE_EVERY_S * 1000:g} ms; worst {ms(max((r[2] for r in rows), default=0.0)):g} ms",
    )
    result.add(
        bench,
        "late time: loop thread on CPU",
        ms(sum(r[3] for r in rows)),
        "ms",
        "total lateness",
        ms(late_s),
        note=f"waiting for a CPU {ms(sum(r[4] for r in rows)):g} ms; the rest off CPU, not runnable (the GIL)",
    )
    full = [g[1] - g[0] for g in collections if g[2] == 2]
    result.add(
        bench,
        "garbage collections: longest",
        ms(max((g[1] - g[0] for g in collections), default=0.0)),
        "ms",
        note=f"{len(collections)} collections, {ms(sum(g[1] - g[0] for g in collections)):g} ms; "
        f"{len(full)} full (gen 2), longest {ms(max(full, default=0.0)):g} ms",
    )
    return {
        "late_events": explain(starts, probe, offset) if probe else [],
        "late_arrivals": delivery(starts, probe, offset) if probe else [],
        "slowest_callbacks": [
            f"{ms(c[2]):g} ms (cpu {ms(c[3]):g}): {c[4]}" for c in sorted(callbacks, key=lambda c: -c[2])[:15]
        ],
        "gc_objects": probe.get("objects", []),
        "summary": summary,
    }
