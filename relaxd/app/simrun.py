"""`relaxd sim`: a simulated Hue bridge and Sonos speaker on 127.0.0.1, their fault control API, the config."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

import yaml

from relaxd.sim.control import ControlServer
from relaxd.sim.hue_bridge import HueBridgeSim
from relaxd.sim.hue_tls import SimCertificates
from relaxd.sim.sonos_speaker import SonosSpeakerSim

ROOM = "massage_room"


def config_snippet(hue: HueBridgeSim, sonos: SonosSpeakerSim, room: str = ROOM, *more: HueBridgeSim) -> str:
    """The YAML a relaxd config needs to use these simulators (more: further bridges, `hue.bridges`)."""
    bridges = {"main": _bridge_config(hue)}
    bridges.update({f"bridge{i}": _bridge_config(extra) for i, extra in enumerate(more, start=2)})
    lights: dict[str, Any] = {"group": hue.group_names()[0]}
    if more:
        lights = {"bridge": "main", **lights}
    data = {
        "hue": bridges["main"] if not more else {"bridges": bridges},
        "rooms": {
            room: {
                "lights": lights,
                "speaker": {"host": sonos.address},
                "music": {"favorite": "Spa Radio"},
                "max_volume": 30,
            }
        },
    }
    return yaml.safe_dump(data, sort_keys=False)


def _bridge_config(hue: HueBridgeSim) -> dict[str, Any]:
    """One bridge's part: over HTTPS with the identity pairing would have printed."""
    config: dict[str, Any] = {"host": hue.address, "username": hue.username, "https": hue.https}
    if hue.https:
        config.update(bridge_id=hue.bridge_id, fingerprint=hue.fingerprint)
    return config


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
    if args.hue_bridges < 1:
        print("relaxd sim: --hue-bridges must be at least 1", file=sys.stderr)
        return 2
    certificates = SimCertificates()
    tls: dict[str, Any] = {"https": True, "certificates": certificates} if args.hue_https else {}
    hue = HueBridgeSim(port=args.hue_port, lights=args.lights, latency_ms=args.latency_ms, **tls)
    more = [HueBridgeSim(lights=args.lights, latency_ms=args.latency_ms, **tls) for _ in range(args.hue_bridges - 1)]
    sonos = SonosSpeakerSim.demo(port=args.sonos_port, latency_ms=args.latency_ms)
    # The room's key in the config snippet names its speaker in the control API too.
    control = ControlServer(hue, {ROOM: sonos}, port=args.control_port)
    try:
        for bridge in (hue, *more):
            bridge.start()
        sonos.start()
        control.start()
    except OSError as exc:
        control.stop()
        sonos.stop()
        for bridge in (hue, *more):
            bridge.stop()
        certificates.close()
        print(
            f"relaxd sim: cannot listen: {exc} (choose other ports with --hue-port/--sonos-port/--control-port)",
            file=sys.stderr,
        )
        return 1
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # Only now that everything listens: whoever reads this may connect at once.
    print(header(control) + config_snippet(hue, sonos, ROOM, *more), end="", flush=True)
    try:
        stop.wait()
    finally:
        control.stop()
        sonos.stop()
        for bridge in (hue, *more):
            bridge.stop()
        certificates.close()
    return 0
