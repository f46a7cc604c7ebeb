"""Shared benchmark plumbing: figures, statistics, machine facts, /proc readings, child processes."""

from __future__ import annotations

import contextlib
import math
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Every process started by the benchmarks, so that an interrupted run can still kill them.
LIVE: list[subprocess.Popen[Any]] = []


# --- figures ------------------------------------------------------------------------------------


@dataclass
class Figure:
    """One measured value next to its reference, measured in the same run."""

    bench: str
    name: str
    value: float | None
    unit: str
    ref_name: str = ""
    ref_value: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.ref_value:
            return None
        return self.value / self.ref_value

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


@dataclass
class BenchResult:
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def add(self, *args: Any, **kwargs: Any) -> Figure:
        figure = Figure(*args, **kwargs)
        self.figures.append(figure)
        return figure


def pct(values: list[float], q: float) -> float:
    """Percentile q (0..100) with linear interpolation between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def wait_until(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.005) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)
    return True


# --- machine and processes -----------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "relaxd_commit": _commit(),
        "cores": os.cpu_count(),
        "cpu_model": model,
        "python": sys.version.split()[0],
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "loadavg": load_average(),
    }


def _commit() -> str:
    """The checked-out commit (read-only git), with "+changes" when relaxd/ differs from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "relaxd"], cwd=ROOT, capture_output=True, text=True)
    except OSError:
        return "unknown"
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "") if head.returncode == 0 else "unknown"


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine_cpu_jiffies() -> tuple[int, int, int]:
    """(busy, total, stolen) CPU time of the whole machine in ticks, from the first line of
    /proc/stat; stolen: taken by the hypervisor from this virtual machine (not in busy or total)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields[:7]) - idle, sum(fields[:7]), fields[7]


def proc_status_kb(pid: int, key: str) -> int | None:
    """VmRSS, VmHWM, ... of a process in kB, from /proc/<pid>/status."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def proc_cpu_s(pid: int) -> float | None:
    """utime + stime of a process in seconds, from /proc/<pid>/stat."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_cpu_ns(pid: int) -> int | None:
    """CPU time of every live thread of a process in ns (/proc/<pid>/task/*/schedstat): finer than
    the 10 ms ticks of /proc/<pid>/stat, but threads that ended are no longer counted."""
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
    except OSError:
        return None
    return total


def kill_all() -> None:
    """Kill every process the benchmarks started that still runs (by its own pid)."""
    for proc in list(LIVE):
        if proc.poll() is None:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        LIVE.remove(proc)


def start_process(args: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
    proc: subprocess.Popen[Any] = subprocess.Popen(args, **kwargs)
    LIVE.append(proc)
    return proc


def read_line(proc: subprocess.Popen[Any], timeout_s: float) -> str:
    """The next line a child prints on its stdout pipe, or "" if none comes within timeout_s."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    return str(proc.stdout.readline()).strip() if ready else ""


def end_process(proc: subprocess.Popen[Any], timeout_s: float = 30.0) -> int | None:
    """SIGTERM, wait, then SIGKILL; returns the exit code."""
    try:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
    finally:
        if proc in LIVE:
            LIVE.remove(proc)
    return proc.returncode
