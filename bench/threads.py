"""Benchmark 6: the daemon's peak thread count at 8 and at 50 rooms (the one bounded pool)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.common import BenchResult
from bench.fleet import run_fleet
from bench.scale import ROOMS, phases_for

SMALL = 8
SLACK = 4  # target: peak(50 rooms) <= peak(8 rooms) + 4


def run(quick: bool, hue_ms: float, sonos_ms: float, workdir: Path, done: dict[str, BenchResult]) -> BenchResult:
    phases_s = phases_for(False, quick)
    small = run_fleet(f"threads {SMALL} rooms", SMALL, False, phases_s, hue_ms, sonos_ms, workdir).threads
    # The 50-room figure is the highest peak of every 50-room run of benchmark 4 (quiet, busy,
    # groups); without those (an --only run), one quiet 50-room run of the same routine here.
    large: dict[str, dict[str, Any]] = {}
    if "scale" in done:
        large = {label: d["threads"] for label, d in done["scale"].details.items()}
    if not large:
        large = {
            "names quiet": run_fleet(
                f"threads {ROOMS} rooms", ROOMS, False, phases_s, hue_ms, sonos_ms, workdir
            ).threads
        }
    label, peak = max(((k, v["peak"]) for k, v in large.items()), key=lambda kv: kv[1])
    bench = "6 threads"
    result = BenchResult()
    result.add(
        bench,
        f"peak threads, {SMALL} rooms",
        small["peak"],
        "count",
        note=f"/proc/<pid>/status every {small['every_ms']:g} ms ({small['samples']} samples); "
        f"{small['distinct_tids']} thread ids over the run",
    )
    result.add(
        bench,
        f"peak threads, {ROOMS} rooms",
        peak,
        "count",
        f"peak with {SMALL} rooms + {SLACK}",
        small["peak"] + SLACK,
        f"<= peak({SMALL}) + {SLACK}",
        peak <= small["peak"] + SLACK,
        f"highest of {len(large)} runs ({label}); thread ids per run: "
        + ", ".join(f"{k} {v['distinct_tids']}" for k, v in large.items()),
    )
    result.details = {"rooms_8": small, "rooms_50": large, "phases_s": phases_s}
    return result
