"""Benchmark 3: restoring 20 mixed lights and a speaker playing a queue, against the rate-limit floor."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from bench.common import BenchResult, ms, wait_until
from bench.harness import Daemon, TimedHueBridgeSim, Watcher, base_config
from bench.rooms import add_mixed_lights, compare, demo_speaker, light_fields, phase, room_config, speaker_fields
from tests.mosquitto import Mosquitto

LIGHT_COMMANDS_PER_S = 10


def minimal_commands(before: dict[str, dict[str, Any]], during: dict[str, dict[str, Any]]) -> int:
    """Light commands any restore needs: one per changed light that was on; two per light that was
    off but is lit now (bri/colour can only be set while on, then off without transition)."""
    count = 0
    for light_id, was in before.items():
        now = during[light_id]
        if was["on"]:
            count += 1 if now != was else 0
        elif now["on"]:
            count += (
                2 if {k: v for k, v in now.items() if k != "on"} != {k: v for k, v in was.items() if k != "on"} else 1
            )
    return count


def measure(lights_n: int, hue_ms: float, sonos_ms: float, workdir: Path) -> dict[str, Any]:
    hue = TimedHueBridgeSim(lights=0, latency_ms=hue_ms)
    ids, gid = add_mixed_lights(hue, lights_n)
    speaker = demo_speaker(sonos_ms, room_name="spa")
    speaker.load_queue(track=3, position_s=60.0)
    with speaker.lock:
        speaker.set_volume(22)
        speaker.bass, speaker.treble, speaker.loudness = 3, -2, False
        speaker.play_mode = "REPEAT_ALL"
    broker = Mosquitto(workdir / "broker-restore")
    daemon: Daemon | None = None
    try:
        hue.start()
        speaker.start()
        broker.start()
        config = base_config(workdir, broker.port, hue)
        config["rooms"]["spa"] = room_config(group="Spa", speaker=speaker.address, routine="hold")
        config["routines"]["hold"] = {"phases": [phase("hold", "10m", bri=30, kelvin=2200, volume=10)]}
        with Watcher(broker.port, ["relaxd/#"]) as watcher:
            daemon = Daemon(workdir, config, "restore").start()
            watcher.wait(
                lambda: next((m for m in watcher.messages if m.topic == "relaxd/spa/state"), None),
                30,
                "the daemon's first state",
            )
            time.sleep(0.5)
            limited = hue.rate_limited_count
            before = {**light_fields(hue, ids), "speaker": speaker_fields(speaker)}
            start = watcher.mark()
            t_start = watcher.publish("relaxd/spa/set", "start")
            watcher.wait_event("spa", "phase_started", start, 15)
            set_ok = wait_until(
                lambda: (
                    bool(speaker.requests("Play"))
                    and any(d.path == f"/groups/{gid}/action" for d in hue.done_log(t_start))
                ),
                15,
            )
            if not set_ok:
                raise RuntimeError("the session did not set the room within 15 s")
            time.sleep(0.5)
            during = light_fields(hue, ids)
            stop = watcher.mark()
            t_stop = watcher.publish("relaxd/spa/set", "stop")
            restored = watcher.wait_event("spa", "room_restored", stop, 60)[0]
            after = {**light_fields(hue, ids), "speaker": speaker_fields(speaker)}
            limited = hue.rate_limited_count - limited
    finally:
        if daemon is not None:
            daemon.stop()
        broker.stop()
        hue.stop()
        speaker.stop()
    puts = [d for d in hue.done_log(t_stop) if d.method == "PUT" and d.path.startswith("/lights/")]
    sonos = [c for c in speaker.requests() if c.at >= t_stop]
    equal, total, diffs = compare(before, after)
    return {
        "duration_s": restored.at_s - t_stop,
        "lights_s": (max(d.at_s for d in puts) - t_stop) if puts else 0.0,
        "speaker_s": (max(c.at for c in sonos) - t_stop) if sonos else 0.0,
        "commands": len(puts),
        "minimal": minimal_commands({k: v for k, v in before.items() if k != "speaker"}, during),
        "sonos_requests": len(sonos),
        "equal": equal,
        "total": total,
        "diffs": diffs,
        "rate_limited": limited,
        "report": restored.data.get("details") if isinstance(restored.data, dict) else None,
        "put_times_ms": [ms(d.at_s - t_stop) for d in puts],
    }


def run(quick: bool, hue_ms: float, sonos_ms: float, workdir: Path, done: dict[str, BenchResult]) -> BenchResult:
    data = measure(20, hue_ms, sonos_ms, workdir)
    floor_s = math.ceil(data["minimal"] / LIGHT_COMMANDS_PER_S)
    bench = "3 restore"
    result = BenchResult()
    result.add(
        bench,
        "stop -> room_restored (20 lights + speaker)",
        round(data["duration_s"], 3),
        "s",
        f"rate-limit floor ceil({data['minimal']} cmds/10) s",
        floor_s,
        "<= floor",
        data["duration_s"] <= floor_s,
        f"lights done after {data['lights_s']:.2f} s, speaker after {data['speaker_s']:.2f} s; restore_fade 0s",
    )
    result.add(
        bench,
        "light commands sent by the restore",
        data["commands"],
        "count",
        "minimal light commands",
        data["minimal"],
        "= minimal",
        data["commands"] <= data["minimal"],
    )
    result.add(
        bench,
        "fields restored exactly",
        data["equal"],
        "count",
        "fields compared",
        data["total"],
        "all",
        data["equal"] == data["total"],
        "; ".join(data["diffs"][:4]),
    )
    result.add(
        bench, "HTTP 429 from the bridge", data["rate_limited"], "count", target="0", met=data["rate_limited"] == 0
    )
    result.details = {k: v for k, v in data.items() if k not in ("equal", "total")}
    return result
