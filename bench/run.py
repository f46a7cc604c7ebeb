"""Runs the relaxd benchmarks, prints figures next to their references and writes bench/results.json."""

from __future__ import annotations

import argparse
import atexit
import importlib
import json
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BENCHES = ("footprint", "latency", "timing", "restore", "scale", "threads", "shutdown", "breath")
EXTRAS = ("diagnose",)  # only when asked for with --only


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller samples and windows (under 7 minutes)")
    parser.add_argument("--only", action="append", choices=BENCHES + EXTRAS, help="run only these benchmarks")
    parser.add_argument("--hue-latency-ms", type=float, default=25.0, help="simulated Hue request latency")
    parser.add_argument("--sonos-latency-ms", type=float, default=15.0, help="simulated Sonos request latency")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json", help="results file")
    parser.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, configs)")
    return parser.parse_args(argv)


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from bench import common, report

    atexit.register(common.kill_all)
    signal.signal(signal.SIGTERM, _interrupted)
    chosen = args.only or list(BENCHES)
    machine = common.machine_info()
    print(
        f"relaxd benchmarks ({'quick' if args.quick else 'full'}): {machine['cores']} cores, "
        f"{machine['cpu_model']}, Python {machine['python']}, relaxd {machine['relaxd_commit']}, "
        f"load {machine['loadavg']}",
        flush=True,
    )
    stolen0 = common.machine_cpu_jiffies()[2]
    workdir = Path(tempfile.mkdtemp(prefix="relaxd-bench-"))
    results: dict[str, common.BenchResult] = {}
    timings: dict[str, float] = {}
    failed: list[str] = []
    began = time.monotonic()
    try:
        for name in chosen:
            start = time.monotonic()
            print(f"- {name} ...", flush=True)
            sub = workdir / name
            sub.mkdir()
            module = importlib.import_module(f"bench.{name}")
            try:
                results[name] = module.run(args.quick, args.hue_latency_ms, args.sonos_latency_ms, sub, results)
            except Exception as exc:  # one broken benchmark must not hide the others' figures
                failed.append(f"{name}: {type(exc).__name__}: {exc}")
                print(f"  {name} FAILED: {type(exc).__name__}: {exc}", flush=True)
                traceback.print_exc()
                common.kill_all()
            timings[name] = round(time.monotonic() - start, 1)
            print(f"  {name} took {timings[name]} s (load {common.load_average()})", flush=True)
    finally:
        common.kill_all()
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    figures = [f for r in results.values() for f in r.figures]
    print()
    print(report.text_table(figures))
    print()
    for line in report.notes(figures):
        print(f"note: {line}")
    print(report.summary(results))
    total = round(time.monotonic() - began, 1)
    stolen_s = (common.machine_cpu_jiffies()[2] - stolen0) / common.CLK_TCK
    print(f"total {total} s; CPU stolen by the hypervisor meanwhile: {stolen_s:.1f} s")
    if args.markdown:
        print()
        print(report.markdown_table(figures))
    machine["loadavg_end"] = common.load_average()
    machine["stolen_cpu_s"] = round((common.machine_cpu_jiffies()[2] - stolen0) / common.CLK_TCK, 2)
    doc = {
        "mode": "quick" if args.quick else "full",
        "machine": machine,
        "seconds": timings,
        "total_s": total,
        "hue_latency_ms": args.hue_latency_ms,
        "sonos_latency_ms": args.sonos_latency_ms,
        "figures": [f.as_dict() for f in figures],
        "details": {name: r.details for name, r in results.items()},
    }
    doc["failed"] = failed
    args.out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")
    for line in failed:
        print(f"FAILED {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
