"""Benchmark 1: button press to phase_started and to devices set, against the device floor and a naive script."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from bench.common import BenchResult, ms, pct
from bench.harness import Daemon, TimedHueBridgeSim, Watcher, base_config
from bench.references import VOLUME, Sample, device_times, run_reference
from bench.rooms import add_two_lights, demo_speaker, phase, room_config
from relaxd.sim.sonos_speaker import SonosSpeakerSim
from tests.mosquitto import Mosquitto

BUTTON = "zigbee2mqtt/Massage Button"
PRESS = json.dumps({"action": "single", "linkquality": 87})
GROUP_GAP_S = 1.15  # the bridge takes one group command a second: presses are spaced past that


def daemon_presses(presses: int, hue_ms: float, sonos_ms: float, workdir: Path) -> dict[str, Any]:
    hue = TimedHueBridgeSim(lights=0, latency_ms=hue_ms)
    _, gid = add_two_lights(hue, "spa")
    assert gid is not None
    speaker = demo_speaker(sonos_ms, room_name="spa")
    broker = Mosquitto(workdir / "broker-latency")
    daemon: Daemon | None = None
    samples: list[Sample] = []
    timelines: list[list[tuple[float, str, str]]] = []
    try:
        hue.start()
        speaker.start()
        broker.start()
        config = base_config(workdir, broker.port, hue)
        config["rooms"]["spa"] = room_config(group="spa group", speaker=speaker.address, routine="press")
        config["routines"]["press"] = {"phases": [phase("hold", "10m", volume=VOLUME)]}
        config["triggers"] = [{"topic": BUTTON, "match": {"action": "single"}, "room": "spa", "do": "toggle"}]
        with Watcher(broker.port, ["relaxd/#"]) as watcher:
            daemon = Daemon(workdir, config, "latency").start()
            watcher.wait(
                lambda: next((m for m in watcher.messages if m.topic == "relaxd/spa/state"), None),
                30,
                "the daemon's first state",
            )
            time.sleep(0.5)
            limited = hue.rate_limited_count
            for i in range(presses + 1):  # press 0 is the first after start-up, reported apart
                start = watcher.mark()
                t0 = watcher.publish(BUTTON, PRESS)
                event = watcher.wait_event("spa", "phase_started", start, 15)[0]
                times: Sample = {}
                deadline = time.monotonic() + 15
                while not times and time.monotonic() < deadline:
                    time.sleep(0.005)
                    times = device_times(hue, gid, speaker, t0)
                if not times:
                    raise RuntimeError(f"press {i}: devices not set within 15 s")
                times["phase_started"] = event.at_s - t0
                stop_mark = watcher.mark()
                watcher.publish(BUTTON, PRESS)
                watcher.wait_event("spa", "room_restored", stop_mark, 30)
                samples.append(times)
                timelines.append(_timeline(hue, speaker, t0, event.at_s, t0 + times["all"] + 0.001))
                # the next press comes after the group rate window has passed (bounded: < 2 s)
                time.sleep(max(0.0, t0 + times["lights"] + GROUP_GAP_S - time.monotonic()))
            limited = hue.rate_limited_count - limited
    finally:
        if daemon is not None:
            daemon.stop()
        broker.stop()
        hue.stop()
        speaker.stop()
    return {"first": samples[0], "samples": samples[1:], "timelines": timelines, "rate_limited": limited}


def _timeline(
    hue: TimedHueBridgeSim, speaker: SonosSpeakerSim, t0: float, phase_at: float, until: float
) -> list[tuple[float, str, str]]:
    """Every device request of one press (ms after the button; Hue: arrival and answer, Sonos: when
    the speaker carried it out, after its latency), and phase_started."""
    rows = [(ms(d.at_s - t0), "hue", f"{d.method} {d.path} answered") for d in hue.done_log(t0) if d.at_s <= until]
    prefix = f"/api/{hue.username}"
    rows += [
        (ms(e.at_s - t0), "hue", f"{e.method} {e.path.removeprefix(prefix)} arrived")
        for e in hue.request_log()
        if t0 <= e.at_s <= until
    ]
    rows += [(ms(c.at - t0), "sonos", c.action) for c in speaker.requests() if t0 <= c.at <= until]
    rows.append((ms(phase_at - t0), "mqtt", "phase_started received"))
    return sorted(rows)


def summarize(samples: list[Sample], key: str) -> dict[str, float]:
    values = [s[key] for s in samples]
    return {"p50": pct(values, 50), "p99": pct(values, 99), "n": len(values)}


def run(quick: bool, hue_ms: float, sonos_ms: float, workdir: Path, done: dict[str, BenchResult]) -> BenchResult:
    presses = 30 if quick else 100
    refs = 15 if quick else 50
    result = BenchResult()
    floor = run_reference("floor", refs, hue_ms, sonos_ms, workdir)
    naive = run_reference("naive", refs, hue_ms, sonos_ms, workdir)
    daemon = daemon_presses(presses, hue_ms, sonos_ms, workdir)
    samples = daemon["samples"]
    bench = "1 trigger latency"
    pairs = [
        ("phase_started", "saved", "floor: both snapshots read and fsynced"),
        ("lights", "lights", "floor: GET lights+groups, group PUT"),
        ("music", "music", "floor: 5 reads at once, SetVolume, SetAVTransportURI, Play"),
        ("all", "all", "floor: both devices set"),
    ]
    for key, ref_key, ref_name in pairs:
        mine, ref = summarize(samples, key), summarize(floor, ref_key)
        for q in ("p50", "p99"):
            label = {
                "phase_started": "button -> phase_started",
                "lights": "button -> lights set",
                "music": "button -> music playing",
                "all": "button -> room set",
            }[key]
            target = "<= 1.2x floor" if q == "p50" else ""
            ratio = mine[q] / ref[q]
            result.add(
                bench,
                f"{label} {q}",
                ms(mine[q]),
                "ms",
                ref_name,
                ms(ref[q]),
                target,
                (ratio <= 1.2) if q == "p50" else None,
                f"{mine['n']} presses, floor {ref['n']} runs" if key == "all" and q == "p50" else "",
            )
    for q in ("p50", "p99"):
        mine_all, naive_all = summarize(samples, "all")[q], summarize(naive, "all")[q]
        result.add(
            bench,
            f"button -> room set {q} vs naive",
            ms(mine_all),
            "ms",
            "naive sequential phue+soco script",
            ms(naive_all),
            "< naive" if q == "p50" else "",
            (mine_all < naive_all) if q == "p50" else None,
            f"naive {len(naive)} runs" if q == "p50" else "",
        )
    first, floor_all = daemon["first"], summarize(floor, "all")["p50"]
    result.add(
        bench,
        "first press after start-up: room set",
        ms(first["all"]),
        "ms",
        "floor: both devices set",
        ms(floor_all),
        note="soco's first use of the speaker; timeline in results.json (first_press_timeline)",
    )
    result.add(
        bench, "HTTP 429 from the bridge", daemon["rate_limited"], "count", target="0", met=daemon["rate_limited"] == 0
    )
    median_all = summarize(samples, "all")["p50"]
    index = min(range(len(samples)), key=lambda i: abs(samples[i]["all"] - median_all))
    median_lights = summarize(samples, "lights")["p50"]
    lights_index = min(range(len(samples)), key=lambda i: abs(samples[i]["lights"] - median_lights))
    result.details = {
        "presses": len(samples),
        "hue_latency_ms": hue_ms,
        "sonos_latency_ms": sonos_ms,
        "first_press_after_start_ms": {k: ms(v) for k, v in daemon["first"].items()},
        "daemon": {
            k: {q: ms(v) if q != "n" else v for q, v in summarize(samples, k).items()}
            for k in ("phase_started", "lights", "music", "all")
        },
        "floor": {
            k: {q: ms(v) if q != "n" else v for q, v in summarize(floor, k).items()}
            for k in ("saved", "lights", "music", "all")
        },
        "naive": {
            k: {q: ms(v) if q != "n" else v for q, v in summarize(naive, k).items()}
            for k in ("saved", "lights", "music", "all")
        },
        "median_press_timeline": daemon["timelines"][index + 1],
        "median_lights_press_timeline": daemon["timelines"][lights_index + 1],
        "first_press_timeline": daemon["timelines"][0],
    }
    return result
