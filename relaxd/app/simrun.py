"""`relaxd sim`: a simulated Hue bridge and Sonos speaker on 127.0.0.1, with the config to use them."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

import yaml

from relaxd.sim.hue_bridge import HueBridgeSim
from relaxd.sim.sonos_speaker import SonosSpeakerSim


def config_snippet(hue: HueBridgeSim, sonos: SonosSpeakerSim, room: str = "massage_room") -> str:
    """The YAML a relaxd config needs to use these simulators."""
    data = {
        "hue": {"host": hue.address, "username": hue.username, "https": False},
        "rooms": {
            room: {
                "lights": {"group": hue.group_names()[0]},
                "speaker": {"host": sonos.address},
                "music": {"favorite": "Spa Radio"},
                "max_volume": 30,
            }
        },
    }
    return yaml.safe_dump(data, sort_keys=False)


def run_sim(args: argparse.Namespace) -> int:
    if args.lights < 1:
        print("relaxd sim: --lights must be at least 1", file=sys.stderr)
        return 2
    hue = HueBridgeSim(port=args.hue_port, lights=args.lights, latency_ms=args.latency_ms)
    sonos = SonosSpeakerSim.demo(port=args.sonos_port, latency_ms=args.latency_ms)
    try:
        hue.start()
        sonos.start()
    except OSError as exc:
        hue.stop()
        print(f"relaxd sim: cannot listen: {exc} (choose other ports with --hue-port/--sonos-port)", file=sys.stderr)
        return 1
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("# relaxd sim: a simulated Hue bridge and Sonos speaker on 127.0.0.1.", flush=True)
    print("# Put this in your relaxd config (with your mqtt section); Ctrl-C stops the simulators.")
    print(config_snippet(hue, sonos), end="", flush=True)
    try:
        stop.wait()
    finally:
        sonos.stop()
        hue.stop()
    return 0
