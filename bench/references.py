"""Benchmark 1's references: the device floor (what a snapshot-then-change cannot avoid) and a naive script."""

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

from bench.harness import TimedHueBridgeSim
from bench.rooms import FAVORITE, add_two_lights, demo_speaker, reset_speaker, scene_body
from relaxd.sim.sonos_speaker import SonosSpeakerSim

VOLUME = 12
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
