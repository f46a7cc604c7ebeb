"""Benchmark 8: breath edges at the bridge against the daemon's own plan, for 1 room and 10 on one bridge."""

from __future__ import annotations

import itertools
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import BenchResult, end_process, load_average, ms, pct, start_process
from bench.harness import Daemon, TimedHueBridgeSim, Watcher, base_config, iso_to_wall, wall_offset
from bench.rooms import add_two_lights, room_config
from relaxd.core.breath_budget import BREATH_SHARE
from tests.mosquitto import Mosquitto

INHALE_S = EXHALE_S = 2.0  # a quick breath (15 a minute), so that a run holds many edges
BRIDGE_WINDOW_S = 1.1  # relaxd's pacing window for one group command (the bridge takes about 1 a second)
ROUTINE = {
    "phases": [
        {
            "name": "breathe",
            "duration": "1h",
            "lights": {"brightness": "30%", "color_temp": "2200K"},
            "breathing": {"inhale": f"{INHALE_S:g}s", "exhale": f"{EXHALE_S:g}s", "brightness": ["20%", "40%"]},
        }
    ]
}
# The reference, in a process of its own: what any edge through the Lights port costs at least. It
# sleeps to deadlines as far apart as the edges, then reads the lights and the groups at once (as
# HueLights.apply does before every command) and sends one group command, to a simulator of its own
# with the same latency.
REFERENCE = """
import http.client, json, sys, threading, time
host, port, user, group = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
first, count, every = float(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7])
def call(method, path, body=None):
    connection = http.client.HTTPConnection(host, port, timeout=5)
    connection.request(method, path, body=None if body is None else json.dumps(body))
    connection.getresponse().read()
    connection.close()
for k in range(count):
    deadline = first + k * every
    while deadline - time.monotonic() > 0:
        time.sleep(deadline - time.monotonic())
    reads = [threading.Thread(target=call, args=("GET", f"/api/{user}/{what}")) for what in ("lights", "groups")]
    for thread in reads:
        thread.start()
    for thread in reads:
        thread.join()
    body = {"on": True, "bri": 102 if k % 2 == 0 else 51, "transitiontime": 20}
    call("PUT", f"/api/{user}/groups/{group}/action", body)
"""


def measure(rooms: int, seconds: float, hue_ms: float, workdir: Path) -> dict[str, Any]:
    """One daemon breathing `rooms` rooms on one simulated bridge for `seconds`, then stopping them
    (a broker of its own: no retained state of an earlier run may pass for this daemon's)."""
    hue = TimedHueBridgeSim(lights=0, latency_ms=hue_ms)
    groups: dict[str, str] = {}
    for i in range(rooms):
        _, gid = add_two_lights(hue, f"b{i}")
        assert gid is not None
        groups[gid] = f"b{i}"
    daemon: Daemon | None = None
    broker = Mosquitto(workdir / "broker")
    load_before = load_average()
    try:
        broker.start()
        hue.start()
        config = base_config(workdir, broker.port, hue)
        config["routines"]["breath"] = ROUTINE
        config["rooms"] = {room: room_config(group=f"{room} group", routine="breath") for room in groups.values()}
        with Watcher(broker.port, ["relaxd/+/breath", "relaxd/+/event", "relaxd/+/state"]) as watcher:
            daemon = Daemon(workdir, config, f"breath-{rooms}").start()
            states = {f"relaxd/{room}/state" for room in groups.values()}

            def all_states() -> bool | None:
                return True if states <= {m.topic for m in watcher.messages} else None

            watcher.wait(all_states, 30, "every room's first state")
            start = watcher.mark()
            for room in groups.values():
                watcher.publish(f"relaxd/{room}/set", '{"action": "start", "routine": "breath"}')
                time.sleep(0.3)  # one button after the other
            time.sleep(seconds)
            for room in groups.values():
                watcher.publish(f"relaxd/{room}/set", "stop")
            for room in groups.values():
                watcher.wait_event(room, "room_restored", start, 60)
            messages = watcher.since(start)
        offset = wall_offset()
        log = hue.request_log()
        rate_limited = hue.rate_limited_count
    finally:
        if daemon is not None:
            daemon.stop()
        broker.stop()
        hue.stop()
    late: list[float] = []
    followed: dict[str, float] = {}
    for room in groups.values():
        edges = [json.loads(m.payload) for m in messages if m.topic == f"relaxd/{room}/breath"]
        sent = [e for e in edges if e["lights"]]
        puts = [
            e
            for e in log
            if e.method == "PUT" and e.path.endswith("/action") and groups.get(e.path.split("/")[4]) == room
        ]
        if len(puts) < len(sent) - 1 or len(puts) > len(sent):  # the last may have been cut off by the stop
            raise RuntimeError(f"{room}: {len(sent)} edges sent, {len(puts)} group commands at the bridge")
        late += [put.at_s + offset - iso_to_wall(edge["at"]) for edge, put in zip(sent, puts, strict=False)]
        light_edges = [e for e in edges if e["breath"] in ("inhale", "exhale")]
        followed[room] = len(sent) / len(light_edges) if light_edges else 0.0
    arrivals = sorted(e.at_s for e in log if e.method == "PUT" and e.path.endswith("/action"))
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    return {
        "rooms": rooms,
        "late": late,
        "rate_limited": rate_limited,
        "followed": followed,
        "shortest_gap_s": min(gaps) if gaps else None,
        "load": [load_before, load_average()],
    }


def reference(count: int, every_s: float, hue_ms: float, workdir: Path) -> list[float]:
    """The reference's lateness at its bridge, one per deadline."""
    hue = TimedHueBridgeSim(lights=0, latency_ms=hue_ms)
    _, gid = add_two_lights(hue, "ref")
    hue.start()
    try:
        first = time.monotonic() + 1.0
        args = [hue.host, str(hue.port), hue.username, str(gid), repr(first), str(count), repr(every_s)]
        proc = start_process([sys.executable, "-c", REFERENCE, *args], cwd=workdir)
        try:
            proc.wait(timeout=count * every_s + 30)
        finally:
            end_process(proc, 5)
        puts = [e.at_s for e in hue.request_log() if e.method == "PUT"]
    finally:
        hue.stop()
    if len(puts) != count:
        raise RuntimeError(f"the reference sent {len(puts)} of {count} commands")
    return [at - (first + k * every_s) for k, at in enumerate(puts)]


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def run(quick: bool, hue_ms: float, sonos_ms: float, workdir: Path, done: dict[str, BenchResult]) -> BenchResult:
    repeats, seconds = (2, 16.0) if quick else (3, 40.0)
    runs: list[dict[str, Any]] = []
    for r in range(repeats):
        for rooms in (1, 10):
            sub = workdir / f"run{r}-{rooms}"
            sub.mkdir()
            runs.append(measure(rooms, seconds, hue_ms, sub))
        ref = reference(int(seconds / INHALE_S), INHALE_S, hue_ms, workdir)
        runs.append({"rooms": 0, "late": ref, "load": [load_average()]})

    def per_run(rooms: int, stat: str) -> float | None:
        values: list[float | None] = []
        for run_ in (x for x in runs if x["rooms"] == rooms):
            late = [abs(v) for v in run_["late"]]
            if stat == "p50":
                values.append(pct(late, 50) if late else None)
            elif stat == "worst":
                values.append(max(late) if late else None)
            elif stat == "followed":
                values.append(statistics.mean(run_["followed"].values()))
            elif stat == "spread":
                values.append(max(run_["followed"].values()) - min(run_["followed"].values()))
            elif stat == "429":
                values.append(run_["rate_limited"])
            elif stat == "gap":
                values.append(run_["shortest_gap_s"])
            elif stat == "sent":
                values.append(len(run_["late"]))
        return _median(values)

    def in_ms(value: float | None) -> float | None:
        return None if value is None else ms(value)

    bench = "8 breath edges"
    breath = f"{INHALE_S:g} s in, {EXHALE_S:g} s out, {seconds:g} s a run, median of {repeats} runs"
    ref_p50, ref_worst = in_ms(per_run(0, "p50")), in_ms(per_run(0, "worst"))
    result = BenchResult()
    for rooms in (1, 10):
        p50, worst = in_ms(per_run(rooms, "p50")), in_ms(per_run(rooms, "worst"))
        result.add(
            bench, f"{rooms} room(s): p50 edge at the bridge - plan", p50, "ms", "bare reads + PUT script", ref_p50
        )
        result.add(
            bench,
            f"{rooms} room(s): worst edge at the bridge - plan",
            worst,
            "ms",
            "bare script worst",
            ref_worst,
            "< 50 ms",
            worst is not None and worst < 50,
            f"{breath}; every edge the lights followed (plan: the `at` of its breath message)",
        )
    # Ten rooms want 10 x 2 edges per (in + out) seconds; the budget gives breaths one group command
    # per window / share: the share of breaths the lights can follow at best.
    ideal = min(1.0, (BREATH_SHARE / BRIDGE_WINDOW_S) / (10 * 2 / (INHALE_S + EXHALE_S)))
    followed = per_run(10, "followed")
    result.add(
        bench,
        "10 rooms: share of breaths the lights followed",
        None if followed is None else round(followed, 3),
        "",
        "the budget's share (one command per 1.47 s)",
        round(ideal, 3),
        note=f"spread between rooms (max - min share): {per_run(10, 'spread') or 0:.2f}; "
        f"edges sent per run: {per_run(10, 'sent')}",
    )
    too_many = per_run(10, "429")
    result.add(bench, "10 rooms: HTTP 429 from the bridge", too_many, "", target="0", met=too_many == 0)
    gap = per_run(10, "gap")
    result.add(
        bench,
        "10 rooms: shortest gap between group commands at the bridge",
        in_ms(gap),
        "ms",
        "relaxd's pacing window",
        ms(BRIDGE_WINDOW_S),
        ">= 1000 ms (the bridge's second)",
        gap is not None and gap >= 1.0,
    )
    result.details = {
        "breath": breath,
        "runs": [
            {
                **{k: v for k, v in r.items() if k != "late"},
                "late_ms": [ms(v) for v in r["late"]],
            }
            for r in runs
        ],
    }
    return result
