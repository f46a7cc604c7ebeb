"""`relaxd sim`: a simulated Hue bridge and Sonos speaker on 127.0.0.1, their fault control API, the config."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

import yaml

from relaxd.sim.control import ControlServer
from relaxd.sim.hue_bridge import HueBridgeSim
from relaxd.sim.sonos_speaker import SonosSpeakerSim

ROOM = "massage_room"


def config_snippet(hue: HueBridgeSim, sonos: SonosSpeakerSim, room: str = ROOM) -> str:
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


def header(control: ControlServer) -> str:
    """The comment lines above the snippet (the whole output stays valid YAML)."""
    return (
        "# relaxd sim: a simulated Hue bridge and Sonos speaker on 127.0.0.1.\n"
        f"# fault control: {control.url}  (see docs/sim.md)\n"
        "# Put this in your relaxd config (with your mqtt section); Ctrl-C stops the simulators.\n"
    )


def run_sim(args: argparse.Namespace) -> int:
    if args.lights < 1:
        print("relaxd sim: --lights must be at least 1", file=sys.stderr)
        return 2
    hue = HueBridgeSim(port=args.hue_port, lights=args.lights, latency_ms=args.latency_ms)
    sonos = SonosSpeakerSim.demo(port=args.sonos_port, latency_ms=args.latency_ms)
    # The room's key in the config snippet names its speaker in the control API too.
    control = ControlServer(hue, {ROOM: sonos}, port=args.control_port)
    try:
        hue.start()
        sonos.start()
        control.start()
    except OSError as exc:
        control.stop()
        sonos.stop()
        hue.stop()
        print(
            f"relaxd sim: cannot listen: {exc} (choose other ports with --hue-port/--sonos-port/--control-port)",
            file=sys.stderr,
        )
        return 1
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # Only now that everything listens: whoever reads this may connect at once.
    print(header(control) + config_snippet(hue, sonos), end="", flush=True)
    try:
        stop.wait()
    finally:
        control.stop()
        sonos.stop()
        hue.stop()
    return 0
