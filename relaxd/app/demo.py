"""`relaxd demo`: simulators, a broker and the daemon; a button press over MQTT; the room compared."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import queue
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from relaxd.adapters.clock import SystemClock
from relaxd.app.daemon import Daemon
from relaxd.app.demo_view import Screen, bar, describe_breath, describe_light, light_states, report, speaker_state
from relaxd.core.config import Settings
from relaxd.core.configfile import all_routines
from relaxd.core.routines import builtin_routines
from relaxd.core.units import format_duration
from relaxd.sim.hue_bridge import HueBridgeSim
from relaxd.sim.sonos_speaker import SonosSpeakerSim

ROOM = "massage_room"
BASE_TOPIC = "relaxd_demo"  # not `relaxd`: the demo may share a broker with a real daemon
BUTTON_TOPIC = "relaxd_demo/button"


class Follower:
    """A paho client watching the room's topics, as Home Assistant or Node-RED would."""

    def __init__(self, host: str, port: int) -> None:
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.state: dict[str, Any] = {}
        self.online = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"relaxd-demo-{uuid.uuid4().hex[:8]}")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(
            [(f"{BASE_TOPIC}/status", 1), (f"{BASE_TOPIC}/{ROOM}/#", 1)]
        )
        self.client.on_message = self._on_message
        self.host, self.port = host, port

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            if msg.topic == f"{BASE_TOPIC}/status":
                if msg.payload == b"online":
                    self.online.set()
            elif msg.topic.endswith("/event"):
                self.events.put(json.loads(msg.payload))
            elif msg.topic.endswith("/breath"):
                self.events.put({"breath": json.loads(msg.payload)})  # redraws the progress line
            elif msg.topic.endswith("/state"):
                self.state = json.loads(msg.payload)
        except ValueError:
            pass  # not ours to judge; the demo only shows what it can read

    def start(self) -> None:
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()

    def press_button(self) -> None:
        # Exactly what a Zigbee2MQTT button publishes (not retained).
        info = self.client.publish(BUTTON_TOPIC, json.dumps({"action": "single", "battery": 100}), qos=1)
        info.wait_for_publish(5)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def clear_retained(host: str, port: int, filters: list[str], quiet_s: float = 0.5, timeout_s: float = 10.0) -> int:
    """Empty every retained message under filters (what the demo leaves on a broker); how many were cleared."""
    found: dict[str, None] = {}
    subscribed = threading.Event()
    heard = [time.monotonic()]

    def on_message(client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        heard[0] = time.monotonic()
        if msg.retain and msg.payload:
            found[msg.topic] = None

    def on_subscribe(*_: Any) -> None:
        heard[0] = time.monotonic()
        subscribed.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"relaxd-demo-sweep-{uuid.uuid4().hex[:8]}")
    client.on_connect = lambda c, u, f, rc, p: c.subscribe([(topic_filter, 1) for topic_filter in filters])
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(host, port, keepalive=30)
    client.loop_start()
    try:
        if not subscribed.wait(timeout_s):
            return 0
        # The broker sends what it retains right after acknowledging the subscription: wait until
        # nothing more arrives.
        deadline_s = time.monotonic() + timeout_s
        while time.monotonic() - heard[0] < quiet_s and time.monotonic() < deadline_s:
            time.sleep(0.05)
        sent = [client.publish(topic, b"", qos=1, retain=True) for topic in list(found)]
        for info in sent:
            info.wait_for_publish(timeout_s)
        return len(sent)
    finally:
        client.disconnect()
        client.loop_stop()


def _settings(
    hue: HueBridgeSim,
    sonos: SonosSpeakerSim,
    host: str,
    port: int,
    routine: str,
    state_dir: Path,
    protocol: str = "auto",
) -> Settings:
    return Settings.model_validate(
        {
            "state_dir": state_dir,
            "log_level": "WARNING",
            "mqtt": {
                "host": host,
                "port": port,
                "base_topic": BASE_TOPIC,
                "discovery_prefix": None,
                "client_id": f"relaxd-demo-daemon-{uuid.uuid4().hex[:6]}",
                "protocol": protocol,
            },
            "hue": {"host": hue.address, "username": hue.username, "https": False, "timeout": "5s"},
            "rooms": {
                ROOM: {
                    "lights": {"group": "Massage Room"},
                    "speaker": {"host": sonos.address},
                    "music": {"favorite": "Spa Radio"},
                    "max_volume": 30,
                    "restore_fade": "5s",
                    "routine": routine,
                }
            },
            "triggers": [{"topic": BUTTON_TOPIC, "match": {"action": "single"}, "room": ROOM, "do": "toggle"}],
        }
    )


def _parse_broker(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--broker must be HOST:PORT, not {text!r}")
    return host, int(port)


def run_demo(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("phue").setLevel(logging.WARNING)
    if args.speed <= 0:
        print("relaxd demo: --speed must be positive", file=sys.stderr)
        return 2
    if args.routine not in builtin_routines():
        print(f"relaxd demo: unknown routine {args.routine!r}; see `relaxd routines`", file=sys.stderr)
        return 2
    try:
        broker_addr = _parse_broker(args.broker) if args.broker else None
    except ValueError as exc:
        print(f"relaxd demo: {exc}", file=sys.stderr)
        return 2
    hue, sonos = HueBridgeSim.demo_room(), SonosSpeakerSim.demo()
    embedded = None
    try:
        hue.start()
        sonos.start()
        if broker_addr is None:
            from relaxd.sim.broker import EmbeddedBroker

            embedded = EmbeddedBroker().start()
            broker_addr = (embedded.host, embedded.port)
            print(f"embedded MQTT broker (amqtt) on {embedded.address}", file=out)
        else:
            print(f"MQTT broker {broker_addr[0]}:{broker_addr[1]}", file=out)
        with tempfile.TemporaryDirectory(prefix="relaxd-demo-") as state_dir:
            return _run(args, out, hue, sonos, broker_addr, Path(state_dir), shared=embedded is None)
    except OSError as exc:
        print(f"relaxd demo: {exc}", file=sys.stderr)
        return 1
    finally:
        if embedded is not None:
            embedded.stop()
        hue.stop()
        sonos.stop()


def _run(
    args: argparse.Namespace,
    out: TextIO,
    hue: HueBridgeSim,
    sonos: SonosSpeakerSim,
    broker: tuple[str, int],
    state_dir: Path,
    shared: bool,
) -> int:
    # The embedded broker (amqtt) speaks only 3.1.1: asking it for 5 first would cost auto's 5 s wait.
    protocol = "auto" if shared else "3.1.1"
    settings = _settings(hue, sonos, broker[0], broker[1], args.routine, state_dir, protocol)
    routine = all_routines(settings)[args.routine]
    clock = SystemClock(args.speed)
    daemon = Daemon(settings, clock=clock)
    print(f"simulated Hue bridge on {hue.address}, simulated Sonos speaker on {sonos.address}", file=out)
    print(
        f"routine {args.routine} ({format_duration(routine.duration_s)}, {len(routine.phases)} phases) "
        f"at {args.speed:g}x: about {routine.duration_s / args.speed:.0f} s",
        file=out,
    )
    before = {"lights": light_states(hue), "speaker": speaker_state(sonos)}
    follower = Follower(*broker)
    follower.start()
    runner = threading.Thread(
        target=lambda: asyncio.run(daemon.run(handle_signals=False)), name="relaxd-daemon", daemon=True
    )
    runner.start()
    try:
        if not follower.online.wait(20):
            print("relaxd demo: the daemon did not come online on MQTT within 20 s", file=sys.stderr)
            return 1
        print(f'pressing the massage button ({BUTTON_TOPIC} {{"action": "single"}})...', file=out)
        follower.press_button()
        during: dict[str, Any] = {}
        screen = Screen(out)
        deadline_s = routine.duration_s / args.speed * 3 + 60
        final = _follow(follower, screen, hue, sonos, clock, during, deadline_s)
        screen.done()
    finally:
        # Also on Ctrl-C: the daemon gives the room back, then the user's broker is left as it was.
        daemon.request_stop_threadsafe()
        runner.join(timeout=60)
        follower.stop()
        if shared:
            _leave_no_trace(settings, broker, out)
    after = {"lights": light_states(hue), "speaker": speaker_state(sonos)}
    return report(out, before, during, after, final)


def _leave_no_trace(settings: Settings, broker: tuple[str, int], out: TextIO) -> None:
    """Clear the retained status, states, phases (and discovery configs, were they on) of the demo."""
    filters = [f"{BASE_TOPIC}/#"]
    if settings.mqtt.discovery_prefix:
        filters += [f"{settings.mqtt.discovery_prefix}/+/relaxd_{room}/#" for room in settings.rooms]
    try:
        cleared = clear_retained(*broker, filters)
    except (OSError, RuntimeError, ValueError) as exc:  # what paho raises for a broker gone meanwhile
        print(f"relaxd demo: could not clear the demo's retained messages ({BASE_TOPIC}/#): {exc}", file=sys.stderr)
        return
    print(f"cleared the demo's {cleared} retained message(s) from the broker", file=out)


def _follow(
    follower: Follower,
    screen: Screen,
    hue: HueBridgeSim,
    sonos: SonosSpeakerSim,
    clock: SystemClock,
    during: dict[str, Any],
    deadline_s: float,
) -> dict[str, Any] | None:
    """Show MQTT events and progress until room_restored or restore_failed (or the deadline)."""
    started = time.monotonic()
    breath: dict[str, Any] | None = None  # the last breath edge of the phase
    while time.monotonic() - started < deadline_s:
        try:
            event: dict[str, Any] | None = follower.events.get(timeout=0.2)
        except queue.Empty:
            event = None
        first_breath = False
        if event is not None and "breath" in event:
            first_breath, breath, event = breath is None, event["breath"], None
        if event is not None:
            name = event.get("event")
            detail = {
                k: event[k] for k in ("phase", "technique", "intensity", "reason", "device", "cues") if event.get(k)
            }
            screen.line(f"  mqtt event {name:<18} {json.dumps(detail) if detail else ''}".rstrip())
            if name == "phase_started":
                breath = None
            if name == "phase_started" and event.get("phase_index") == 1:
                time.sleep(0.3)  # let the first fades settle before sampling the room "during"
                during.update(lights=light_states(hue), speaker=speaker_state(sonos))
            if name in ("room_restored", "restore_failed"):
                return event
        state = follower.state
        if state.get("state") == "running" and state.get("session_ends_at"):
            begun = datetime.fromisoformat(state["session_started_at"])
            total_s = (datetime.fromisoformat(state["session_ends_at"]) - begun).total_seconds()
            elapsed_s = (clock.now() - begun).total_seconds()
            lights = ", ".join(describe_light(s) for s in light_states(hue).values())
            screen.status(
                f"{bar(elapsed_s / total_s)} {format_duration(max(0, round(elapsed_s)))}/"
                f"{format_duration(round(total_s))} phase {state['phase_index'] + 1}/"
                f"{state['phase_count']} {state['phase']:<18} lights: {lights}; "
                f"volume {sonos.state().volume}{describe_breath(breath)}",
                now=first_breath,
            )
    return None
