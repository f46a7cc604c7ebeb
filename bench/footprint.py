"""Benchmark 5: idle RSS, idle CPU and start-up time of `relaxd run`, against a bare process of its deps."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import BenchResult, end_process, proc_cpu_ns, proc_cpu_s, proc_status_kb, read_line, start_process
from bench.harness import Daemon, TimedHueBridgeSim, Watcher, base_config
from bench.rooms import add_two_lights, demo_speaker, phase, room_config
from tests.mosquitto import Mosquitto

FLOOR_STATUS = "bench/floor/status"
# relaxd's dependencies imported, then what any MQTT daemon does: connect, subscribe, say online, idle.
FLOOR = """
import sys
import paho.mqtt.client, apscheduler, pydantic_settings, soco, phue
print("imported", flush=True)
from paho.mqtt.enums import CallbackAPIVersion
client = paho.mqtt.client.Client(CallbackAPIVersion.VERSION2, client_id="bench-floor")
client.on_connect = lambda c, *a: (c.subscribe("bench/floor/set", 1), c.publish("bench/floor/status", "online", 1))
client.connect("127.0.0.1", int(sys.argv[1]), keepalive=60)
client.loop_start()
sys.stdin.readline()
client.disconnect()
client.loop_stop()
"""


def _start_floor(port: int, watcher: Watcher, workdir: Path) -> tuple[subprocess.Popen[Any], float, int]:
    """A floor process; returns it, its start-up time to `online` and its RSS (kB) after the imports."""
    mark = watcher.mark()
    began = time.monotonic()
    proc = start_process(
        [sys.executable, "-c", FLOOR, str(port)], cwd=workdir, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    line = read_line(proc, 30)
    if line != "imported":
        raise RuntimeError(f"the floor process failed: {line!r}")
    rss = proc_status_kb(proc.pid, "VmRSS") or 0
    online = watcher.wait(
        lambda: next((m for m in watcher.messages[mark:] if m.topic == FLOOR_STATUS), None),
        30,
        "the floor process online",
    )
    return proc, online.at_s - began, rss


def _stop_floor(proc: subprocess.Popen[Any]) -> None:
    try:
        if proc.stdin is not None and proc.poll() is None:
            proc.stdin.write("\n")
            proc.stdin.flush()
            proc.wait(timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        pass
    end_process(proc, 5)


def _start_daemon(workdir: Path, config: dict[str, Any], watcher: Watcher, n: int) -> tuple[Daemon, float]:
    mark = watcher.mark()
    daemon = Daemon(workdir, config, f"footprint-{n}").start()
    online = watcher.wait(
        lambda: next(
            (m for m in watcher.messages[mark:] if m.topic == "relaxd/status" and m.payload == b"online"), None
        ),
        30,
        "relaxd online",
    )
    return daemon, online.at_s - daemon.started_at


def measure(starts: int, idle_s: float, hue_ms: float, sonos_ms: float, workdir: Path) -> dict[str, Any]:
    hue = TimedHueBridgeSim(lights=0, latency_ms=hue_ms)
    add_two_lights(hue, "idle")
    speaker = demo_speaker(sonos_ms, room_name="idle")
    broker = Mosquitto(workdir / "broker-footprint")
    floor: subprocess.Popen[Any] | None = None
    daemon: Daemon | None = None
    try:
        hue.start()
        speaker.start()
        broker.start()
        config = base_config(workdir, broker.port, hue)
        config["rooms"]["idle"] = room_config(group="idle group", speaker=speaker.address, routine="idle")
        config["routines"]["idle"] = {"phases": [phase("one", "10m")]}
        with Watcher(broker.port, ["relaxd/status", FLOOR_STATUS]) as watcher:
            floor_starts, floor_rss = [], []
            for n in range(starts):
                floor, took, rss = _start_floor(broker.port, watcher, workdir)
                floor_starts.append(took)
                floor_rss.append(rss)
                if n < starts - 1:
                    _stop_floor(floor)
            daemon_starts = []
            for n in range(starts):
                daemon, took = _start_daemon(workdir, config, watcher, n)
                daemon_starts.append(took)
                if n < starts - 1:
                    daemon.stop()
            assert daemon is not None and floor is not None
            time.sleep(2.0)  # let start-up work (probes, discovery) finish before the idle window
            pids = (daemon.pid, floor.pid)
            ticks0, ns0 = [proc_cpu_s(p) or 0.0 for p in pids], [proc_cpu_ns(p) or 0 for p in pids]
            idle0 = time.monotonic()
            time.sleep(idle_s)
            ticks1, ns1 = [proc_cpu_s(p) or 0.0 for p in pids], [proc_cpu_ns(p) or 0 for p in pids]
            # what the daemon did while idle: its health checks (every device every 30 s)
            requests = {
                "hue": [e.path.split("/", 3)[-1] for e in hue.request_log() if e.at_s >= idle0],
                "sonos": [c.action for c in speaker.requests() if c.at >= idle0],
            }
            # schedstat (ns) unless a thread ended in the window; then the 10 ms ticks
            cpu = [(b - a) / 1e9 if b >= a else t1 - t0 for a, b, t0, t1 in zip(ns0, ns1, ticks0, ticks1, strict=True)]
            rss = proc_status_kb(daemon.pid, "VmRSS") or 0
            hwm = proc_status_kb(daemon.pid, "VmHWM") or 0
            floor_idle_rss = proc_status_kb(floor.pid, "VmRSS") or 0
    finally:
        if floor is not None:
            _stop_floor(floor)
        if daemon is not None:
            daemon.stop()
        broker.stop()
        hue.stop()
        speaker.stop()
    return {
        "daemon_start_s": daemon_starts,
        "floor_start_s": floor_starts,
        "daemon_rss_kb": rss,
        "daemon_hwm_kb": hwm,
        "floor_rss_kb": statistics.median(floor_rss),
        "floor_connected_rss_kb": floor_idle_rss,
        "daemon_cpu_s": cpu[0],
        "device_requests_while_idle": requests,
        "floor_cpu_s": cpu[1],
        "idle_s": idle_s,
        "daemon_cpu_ticks_s": ticks1[0] - ticks0[0],
        "floor_cpu_ticks_s": ticks1[1] - ticks0[1],
    }


def run(quick: bool, hue_ms: float, sonos_ms: float, workdir: Path, done: dict[str, BenchResult]) -> BenchResult:
    idle_s = 10.0 if quick else 60.0
    data = measure(3 if quick else 5, idle_s, hue_ms, sonos_ms, workdir)
    bench = "5 footprint"
    mib = 1024.0
    result = BenchResult()
    result.add(
        bench,
        "idle RSS of relaxd run (1 room)",
        round(data["daemon_rss_kb"] / mib, 1),
        "MiB",
        "python importing relaxd's deps",
        round(data["floor_rss_kb"] / mib, 1),
        note=f"peak (VmHWM) {data['daemon_hwm_kb'] / mib:.1f} MiB",
    )
    result.add(
        bench,
        f"CPU in {idle_s:g} s idle",
        round(data["daemon_cpu_s"] * 1000, 2),
        "ms",
        "deps + idle paho client, same window",
        round(data["floor_cpu_s"] * 1000, 2),
        note=f"{100 * data['daemon_cpu_s'] / idle_s:.3f}% of one core (thread schedstat); device requests in the "
        f"window (health checks): Hue {len(data['device_requests_while_idle']['hue'])}, "
        f"Sonos {len(data['device_requests_while_idle']['sonos'])}",
    )
    d_start, f_start = statistics.median(data["daemon_start_s"]), statistics.median(data["floor_start_s"])
    result.add(
        bench,
        "start-up until `online` (median)",
        round(d_start * 1000),
        "ms",
        "deps imported + paho online",
        round(f_start * 1000),
        note=f"{len(data['daemon_start_s'])} starts each",
    )
    result.details = data
    result.details["import_floor_rss_mib"] = round(data["floor_rss_kb"] / mib, 1)
    return result
