"""Processes beside a run: a thread-count sampler of the daemon, a busy core, an MQTT recorder."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import end_process, load_average, proc_cpu_s, read_line, start_process

SAMPLE_EVERY_S = 0.002
# A process of its own, so that sampling neither waits for nor takes the benchmark process's GIL
# (the simulators answer from its threads). It reads /proc/<pid>/status (Threads) and lists
# /proc/<pid>/task every SAMPLE_EVERY_S until the pid is gone or a line comes on stdin.
SAMPLER = """
import json, os, select, sys, time
pid, every = int(sys.argv[1]), float(sys.argv[2])
peak, peak_at, samples, tids, counts = 0, 0.0, 0, set(), {}
print("ready", flush=True)
while True:
    try:
        with open(f"/proc/{pid}/status") as f:
            threads = next(int(l.split()[1]) for l in f if l.startswith("Threads:"))
        tids.update(os.listdir(f"/proc/{pid}/task"))
    except (OSError, StopIteration, ValueError):
        break
    samples += 1
    counts[threads] = counts.get(threads, 0) + 1
    if threads > peak:
        peak, peak_at = threads, time.monotonic()
    if select.select([sys.stdin], [], [], every)[0]:
        break
print(json.dumps({"peak": peak, "peak_at_s": peak_at, "samples": samples, "distinct_tids": len(tids),
                  "counts": counts}), flush=True)
"""


class ThreadSampler:
    """Samples a process's thread count (/proc/<pid>/status Threads) until it exits or finish()."""

    def __init__(self, pid: int, workdir: Path) -> None:
        self.began_s = time.monotonic()
        self.proc = start_process(
            [sys.executable, "-c", SAMPLER, str(pid), repr(SAMPLE_EVERY_S)],
            cwd=workdir,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if read_line(self.proc, 30) != "ready":
            end_process(self.proc, 5)
            raise RuntimeError("the thread sampler did not start")

    def finish(self, timeout_s: float = 10.0) -> dict[str, Any]:
        """The peak, when it was (s after the sampler started), samples taken, distinct thread ids."""
        try:
            # If the pid went first, the sampler has printed and exited: the line is still read.
            out, _ = self.proc.communicate("\n", timeout=timeout_s)
        except subprocess.TimeoutExpired:
            out = ""
        finally:
            end_process(self.proc, 5)
        lines = (out or "").strip().splitlines()
        if not lines:
            raise RuntimeError("the thread sampler printed nothing")
        data: dict[str, Any] = json.loads(lines[-1])
        data["peak_after_s"] = round(data.pop("peak_at_s") - self.began_s, 3) if data["peak"] else None
        data["every_ms"] = SAMPLE_EVERY_S * 1000
        data["counts"] = {int(k): v for k, v in sorted(data["counts"].items(), key=lambda kv: int(kv[0]))}
        return data


class BusyCore:
    """A process spinning on one core for the length of a `with` block (then stopped)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.proc: subprocess.Popen[Any] | None = None
        self.began_s = 0.0
        self.share_of_core = 0.0  # the spinner's CPU time over its wall time, when it ended

    def __enter__(self) -> BusyCore:
        self.began_s = time.monotonic()
        self.proc = start_process([sys.executable, "-c", "while True: pass"], cwd=self.workdir)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        cpu_s = proc_cpu_s(self.proc.pid) or 0.0
        wall_s = time.monotonic() - self.began_s
        self.share_of_core = round(cpu_s / wall_s, 2) if wall_s > 0 else 0.0
        end_process(self.proc, 5)
        self.proc = None


def say(text: str) -> None:
    """A progress line with the load average (printed while the full run goes on)."""
    print(f"    {text} (load {load_average()})", flush=True)


# A subscriber in a process of its own: receipt times that the benchmark process's own load (the
# simulators answer from threads of it) cannot delay.
RECORDER = """
import json, sys, time
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
port, needle, topics = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3:]
records = []
def on_message(client, userdata, msg):
    at = time.monotonic()
    if needle in msg.payload or msg.topic.startswith("bench/"):
        records.append((at, msg.topic, msg.payload.decode("utf-8", "replace")))
client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-recorder")
client.on_connect = lambda c, *a: c.subscribe([(t, 1) for t in topics])
client.on_subscribe = lambda *a: print("ready", flush=True)
client.on_message = on_message
client.connect("127.0.0.1", port, keepalive=60)
client.loop_start()
sys.stdin.readline()
client.loop_stop()
print(json.dumps(records), flush=True)
"""


class Recorder:
    """Records (receipt time, topic, payload) of messages whose payload holds needle, or on bench/#."""

    def __init__(self, port: int, topics: list[str], needle: str, workdir: Path) -> None:
        self.proc = start_process(
            [sys.executable, "-c", RECORDER, str(port), needle, *topics],
            cwd=workdir,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if read_line(self.proc, 30) != "ready":
            end_process(self.proc, 5)
            raise RuntimeError("the recorder process did not subscribe")

    def finish(self, timeout_s: float = 15.0) -> list[tuple[float, str, Any]]:
        """Stop recording; the records, JSON payloads parsed."""
        try:
            out, _ = self.proc.communicate("\n", timeout=timeout_s)
        finally:
            end_process(self.proc, 5)
        rows = json.loads(out.strip().splitlines()[-1]) if out.strip() else []
        parsed = []
        for at_s, topic, text in rows:
            try:
                data = json.loads(text)
            except ValueError:
                data = text
            parsed.append((float(at_s), str(topic), data))
        return parsed

    def abort(self) -> None:
        end_process(self.proc, 5)
