"""Benchmark 1: button press to phase_started and to devices set, against the device floor and a naive script."""

from __future__ import annotations

import http.client
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import phue
import soco
from soco.snapshot import Snapshot

from bench.common import BenchResult, ms, pct
from bench.harness import Daemon, TimedHueBridgeSim, Watcher, base_config
from bench.rooms import FAVORITE, add_two_lights, demo_speaker, phase, reset_speaker, room_config, scene_body
from relaxd.sim.sonos_speaker import SonosSpeakerSim
from tests.mosquitto import Mosquitto

BUTTON = "zigbee2mqtt/Massage Button"
PRESS = json.dumps({"action": "single", "linkquality": 87})
VOLUME = 12
GROUP_GAP_S = 1.15  # the bridge takes one group command a second: presses are spaced past that
Sample = dict[str, float]


def persist(path: Path, data: Any) -> None:
    """What the contract makes unavoidable before a change: the snapshot on disk, fsynced, atomically."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as handle:
        handle.write(json.dumps(data, default=str).encode())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def resolve_favorite(device: Any) -> tuple[str, str]:
    """The favorite's URI and metadata, looked up once at set-up (a daemon can cache it too)."""
    favorite = next(f for f in device.music_library.get_sonos_favorites() if f.title == FAVORITE)
    return favorite.reference.resources[0].uri, favorite.resource_meta_data


def _hue_request(address: str, method: str, path: str, body: Any = None) -> Any:
    conn = http.client.HTTPConnection(address, timeout=5)
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def floor_once(
    hue: TimedHueBridgeSim, gid: str, device: Any, favorite: tuple[str, str], workdir: Path, pool: Executor
) -> dict[str, float]:
    """The unavoidable round trips, both devices in parallel; per device: read, persist, change.

    Reads that do not depend on each other are sent at once (as the runtime does). Hue: GET /lights
    and GET /groups (the group's members, read at every snapshot), then one PUT /groups/<id>/action.
    Sonos: GetMediaInfo, GetPositionInfo, GetTransportInfo, GetVolume, GetMute (what a restore of
    source, queue position, play state, volume and mute needs), then one after the other SetVolume
    (before Play: never blare), SetAVTransportURI, Play.
    """
    user = hue.username
    uri, meta = favorite
    av, rc = device.avTransport, device.renderingControl
    master = [("InstanceID", 0), ("Channel", "Master")]

    def at_once(calls: dict[str, Callable[[], Any]]) -> dict[str, Any]:
        futures = {name: pool.submit(call) for name, call in calls.items()}
        return {name: future.result(10) for name, future in futures.items()}

    def hue_chain() -> float:
        state = at_once(
            {
                "lights": lambda: _hue_request(hue.address, "GET", f"/api/{user}/lights"),
                "groups": lambda: _hue_request(hue.address, "GET", f"/api/{user}/groups"),
            }
        )
        persist(workdir / "floor-lights.json", state)
        saved = time.monotonic()
        _hue_request(hue.address, "PUT", f"/api/{user}/groups/{gid}/action", scene_body())
        return saved

    def sonos_chain() -> float:
        state = at_once(
            {
                "media": lambda: av.GetMediaInfo([("InstanceID", 0)]),
                "position": lambda: av.GetPositionInfo([("InstanceID", 0)]),
                "transport": lambda: av.GetTransportInfo([("InstanceID", 0)]),
                "volume": lambda: rc.GetVolume(master),
                "mute": lambda: rc.GetMute(master),
            }
        )
        persist(workdir / "floor-speaker.json", state)
        saved = time.monotonic()
        rc.SetVolume([*master, ("DesiredVolume", VOLUME)])
        if state["mute"]["CurrentMute"] == "1":
            rc.SetMute([*master, ("DesiredMute", 0)])
        av.SetAVTransportURI([("InstanceID", 0), ("CurrentURI", uri), ("CurrentURIMetaData", meta)])
        av.Play([("InstanceID", 0), ("Speed", 1)])
        return saved

    t0 = time.monotonic()
    chains = [pool.submit(hue_chain), pool.submit(sonos_chain)]
    saved = max(chain.result(10) for chain in chains)
    return {"saved": saved - t0, "t0": t0}


def naive_once(hue: TimedHueBridgeSim, gid: str, device: Any, workdir: Path) -> dict[str, float]:
    """A script doing the job the obvious way: phue and soco, one step after the other."""
    t0 = time.monotonic()
    bridge = phue.Bridge(ip=hue.address, username=hue.username, config_file_path=os.devnull)
    lights = bridge.get_light()
    snap = Snapshot(device, snapshot_queue=True)
    snap.snapshot()
    saved_state = {k: v for k, v in vars(snap).items() if k not in ("device", "queue")}
    (workdir / "naive.json").write_text(json.dumps({"lights": lights, "speaker": saved_state}, default=str))
    saved = time.monotonic() - t0
    bridge.set_group(int(gid), scene_body())
    favorite = next(f for f in device.music_library.get_sonos_favorites() if f.title == FAVORITE)
    device.volume = VOLUME
    device.play_uri(favorite.reference.resources[0].uri, favorite.resource_meta_data)
    return {"saved": saved, "t0": t0}


def device_times(hue: TimedHueBridgeSim, gid: str, speaker: SonosSpeakerSim, t0: float) -> Sample:
    """When the lights (group PUT answered) and the music (Play handled) were set, after t0."""
    group_path = f"/groups/{gid}/action"
    puts = [d.at_s for d in hue.done_log(t0) if d.method == "PUT" and d.path == group_path and d.status == 200]
    plays = [c.at for c in speaker.requests("Play") if c.at >= t0]
    if not puts or not plays:
        return {}
    lights, music = puts[0] - t0, plays[0] - t0
    return {"lights": lights, "music": music, "all": max(lights, music)}


def run_reference(kind: str, iterations: int, hue_ms: float, sonos_ms: float, workdir: Path) -> list[Sample]:
    """Floor or naive runs: a fresh bridge sim per run (its group rate limit), one reset speaker."""
    speaker = demo_speaker(sonos_ms, room_name=f"{kind} room").start()
    samples: list[Sample] = []
    # chains and their parallel reads (2 + 2 + 5) in threads started once, not per run
    pool = ThreadPoolExecutor(max_workers=10, thread_name_prefix="floor")
    try:
        device = soco.SoCo(speaker.host, speaker.port)
        favorite = resolve_favorite(device)
        for i in range(iterations + 1):  # the first run warms soco up and is not counted
            hue = TimedHueBridgeSim(lights=0, latency_ms=hue_ms)
            _, gid = add_two_lights(hue, kind)
            assert gid is not None
            hue.start()
            try:
                reset_speaker(speaker)
                if kind == "floor":
                    marks = floor_once(hue, gid, device, favorite, workdir, pool)
                else:
                    marks = naive_once(hue, gid, device, workdir)
                times = device_times(hue, gid, speaker, marks["t0"])
            finally:
                hue.stop()
            if not times:
                raise RuntimeError(f"{kind} run {i}: the devices were not set")
            if i > 0:
                samples.append({**times, "saved": marks["saved"]})
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        speaker.stop()
    return samples


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
