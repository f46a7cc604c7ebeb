"""`relaxd start|stop|pause|resume|skip|extend|status|schedule`: ask a running daemon over MQTT, print its answer."""

from __future__ import annotations

import argparse
import contextlib
import json
import queue
import ssl
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from relaxd.adapters.mqtt_setup import set_credentials, set_tls
from relaxd.app.remote_view import answer_line, status_table
from relaxd.core.config import Settings
from relaxd.core.events import DEFAULT_EXTEND_MINUTES
from relaxd.core.schedules import describe
from relaxd.core.topics import Topics

EX_OK, EX_FAILURE = 0, 1
# The events that answer a room command (the one carrying its transaction); command_rejected answers any.
_ANSWERS = {
    "start": {"session_started"},
    "stop": {"session_stopped"},
    "pause": {"session_paused"},
    "resume": {"session_resumed"},
    "skip": {"phase_started", "session_finished"},
    "extend": {"session_extended"},
}
# The broker sends the retained `<base>/status` right after the subscription is acknowledged; none by
# then means no relaxd ever connected to this broker (or not since it lost its retained messages).
STATUS_WAIT_S = 1.0
OFFLINE = "relaxd is offline (last state from the broker)"


class Failure(Exception):
    """Why the command cannot be answered: one line for stderr."""


@dataclass(frozen=True)
class Note:
    """What paho's network thread hands to the command's thread."""

    kind: Literal["connected", "refused", "lost", "subscribed", "unsubscribed", "message"]
    topic: str = ""
    payload: bytes = b""
    detail: str = ""  # the broker's reason code when it refused or dropped the connection


@dataclass
class Exchange:
    """One request: where it goes, where its answer comes, and what the broker retained meanwhile."""

    target: str
    listen: str
    body: dict[str, Any]
    states_filter: str | None = None
    # Also answers: a command for a room the daemon does not have is rejected on its own event topic.
    also: tuple[str, ...] = ()
    status: str | None = None
    states: dict[str, dict[str, Any]] = field(default_factory=dict)


class Link:
    """A paho client on its own network thread; every callback becomes a Note in one queue."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.notes: queue.Queue[Note] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"relaxd-cli-{uuid.uuid4().hex[:8]}")
        set_credentials(self.client, settings.mqtt)
        set_tls(self.client, settings.mqtt)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda c, u, flags, rc, props: self.notes.put(Note("lost", detail=str(rc)))
        self.client.on_subscribe = lambda c, u, mid, codes, props: self.notes.put(Note("subscribed"))
        self.client.on_unsubscribe = lambda c, u, mid, codes, props: self.notes.put(Note("unsubscribed"))
        self.client.on_message = lambda c, u, msg: self.notes.put(Note("message", msg.topic, bytes(msg.payload)))

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        self.notes.put(Note("refused", detail=str(rc)) if rc.is_failure else Note("connected"))

    @property
    def where(self) -> str:
        return f"{self.settings.mqtt.host}:{self.settings.mqtt.port}"

    def open(self) -> None:
        try:
            self.client.connect(self.settings.mqtt.host, self.settings.mqtt.port, keepalive=30)
        except (OSError, ssl.SSLError) as exc:
            raise Failure(f"cannot reach the MQTT broker at {self.where}: {exc}") from None
        self.client.loop_start()

    def close(self) -> None:
        self.client.on_disconnect = None
        self.client.disconnect()
        self.client.loop_stop()

    def next(self, deadline: float) -> Note:
        """The next note before the monotonic deadline: Failure when the broker refused or dropped us,
        TimeoutError when the deadline passed."""
        try:
            note = self.notes.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError from None
        if note.kind == "refused":
            raise Failure(f"the MQTT broker at {self.where} refused the connection: {note.detail}")
        if note.kind == "lost":
            raise Failure(f"lost the connection to the MQTT broker at {self.where}: {note.detail}")
        return note

    def wait_for(self, kind: str, exchange: Exchange, topics: Topics, deadline: float) -> None:
        """Until a note of this kind, keeping the retained status and states that arrive meanwhile."""
        while True:
            note = self.next(deadline)
            if note.kind == kind:
                return
            if note.kind == "message":
                remember(exchange, topics, note)


def remember(exchange: Exchange, topics: Topics, note: Note) -> None:
    """Keep the last `<base>/status` and, for `status`, every room's retained state."""
    if note.topic == topics.status:
        exchange.status = note.payload.decode("utf-8", "replace").strip()
    elif exchange.states_filter is not None and note.topic.endswith("/state"):
        try:
            state = json.loads(note.payload)
        except json.JSONDecodeError:
            return
        if isinstance(state, dict):
            exchange.states[note.topic] = state


def build_exchange(topics: Topics, args: argparse.Namespace, transaction: str) -> Exchange:
    if args.command == "status":
        body: dict[str, Any] = {"transaction": transaction}
        if args.room:
            body["room"] = args.room
        states = topics.state(args.room or "+")
        return Exchange(topics.request("status"), topics.response("status"), body, states_filter=states)
    if args.command == "schedule":
        verb = f"schedule/{args.schedule_command}"
        return Exchange(
            topics.request(verb), topics.response(verb), {"transaction": transaction, **_schedule_body(args)}
        )
    body = {"action": args.command, "transaction": transaction}
    if getattr(args, "routine", None):
        body["routine"] = args.routine
    if args.command == "extend":
        body["minutes"] = args.minutes
    return Exchange(topics.set(args.room), topics.event(args.room), body, also=(topics.daemon_event,))


def run_remote(settings: Settings, args: argparse.Namespace) -> int:
    """Send one command or request and print the daemon's answer: exit 0, or 1 with a line on stderr
    when the broker cannot be reached, relaxd is offline, the command is rejected or nobody answers."""
    topics = Topics(settings.mqtt.base_topic, settings.mqtt.discovery_prefix)
    transaction = uuid.uuid4().hex[:12]
    exchange = build_exchange(topics, args, transaction)
    link = Link(settings)
    try:
        link.open()
    except Failure as exc:
        return _failed(exc)
    try:
        return _converse(link, topics, exchange, args, _zone(settings))
    except Failure as exc:
        return _failed(exc)
    finally:
        link.close()


def _failed(exc: Failure) -> int:
    line = str(exc)
    print(line if line.startswith("relaxd ") else f"relaxd: {line}", file=sys.stderr)
    return EX_FAILURE


def _zone(settings: Settings) -> tzinfo:
    from relaxd.adapters.fire_times import zone

    return zone(settings.timezone)


def _converse(link: Link, topics: Topics, exchange: Exchange, args: argparse.Namespace, tz: tzinfo) -> int:
    deadline = time.monotonic() + args.timeout
    try:
        link.wait_for("connected", exchange, topics, deadline)
        wanted = [(exchange.listen, 1), *((t, 1) for t in exchange.also), (topics.status, 0)]
        if exchange.states_filter is not None:
            wanted.append((exchange.states_filter, 0))
        link.client.subscribe(wanted)
        link.wait_for("subscribed", exchange, topics, deadline)
    except TimeoutError:
        raise Failure(f"no answer from the MQTT broker at {link.where} within {args.timeout:g} s") from None
    status_by = min(deadline, time.monotonic() + STATUS_WAIT_S)
    while exchange.status is None:
        try:
            note = link.next(status_by)
        except TimeoutError:
            break
        if note.kind == "message":
            remember(exchange, topics, note)
    if exchange.status != "online":
        return _offline(link, topics, exchange, args, tz, deadline)
    link.client.publish(exchange.target, json.dumps(exchange.body), qos=1)
    try:
        return _wait_answer(link, topics, exchange, args, tz, deadline)
    except TimeoutError:
        raise Failure(f"no answer from the daemon within {args.timeout:g} s (is `relaxd run` running?)") from None


def _offline(
    link: Link, topics: Topics, exchange: Exchange, args: argparse.Namespace, tz: tzinfo, deadline: float
) -> int:
    if exchange.status is None:
        why = f"no relaxd status is retained on the MQTT broker at {link.where} (has `relaxd run` connected to it?)"
    else:
        why = f"its retained status on the MQTT broker at {link.where} is {exchange.status!r}"
    if exchange.states_filter is None:
        raise Failure(f"relaxd is offline: {why}; nothing was sent")
    # The broker sends everything retained for a subscription before it acknowledges a later request
    # on the same connection: once this unsubscribe is acknowledged, every retained state is here.
    link.client.unsubscribe(exchange.listen)
    with contextlib.suppress(TimeoutError):
        link.wait_for("unsubscribed", exchange, topics, min(deadline, time.monotonic() + STATUS_WAIT_S))
    print(OFFLINE + (f"; {why}" if exchange.status is None else ""), file=sys.stderr)
    states = [exchange.states[t] for t in sorted(exchange.states)]
    if args.json:
        data: Any = states[0] if args.room and states else {s.get("room"): s for s in states}
        print(json.dumps(data, indent=2))
    elif states:
        print(status_table(states, tz, datetime.now(UTC)), end="")
    return EX_FAILURE


def _schedule_body(args: argparse.Namespace) -> dict[str, Any]:
    if args.schedule_command == "add":
        fields = ("room", "routine", "cron", "every", "on", "at", "starting", "once")
        return {k: getattr(args, k) for k in fields if getattr(args, k) is not None}
    if args.schedule_command == "list":
        return {"room": args.room} if args.room else {}
    return {"id": args.id}


def _print_schedules(args: argparse.Namespace, data: Any) -> None:
    if args.schedule_command == "add":
        print(f"added {describe(data)}")
    elif args.schedule_command == "remove":
        print(f"removed {describe(data)}")
    elif args.json:
        print(json.dumps(data, indent=2))
    else:
        schedules = data.get("schedules", []) if isinstance(data, dict) else []
        print(f"# {len(schedules)} schedule(s), times in {data.get('timezone')}")
        for view in schedules:
            print(describe(view))


def _print_status(args: argparse.Namespace, data: Any, tz: tzinfo) -> None:
    if args.json:
        print(json.dumps(data, indent=2))
        return
    states = [data] if args.room else list(data.values()) if isinstance(data, dict) else []
    print(f"# times in {tz}")
    print(status_table(states, tz, datetime.now(UTC)), end="")


def _wait_answer(
    link: Link, topics: Topics, exchange: Exchange, args: argparse.Namespace, tz: tzinfo, deadline: float
) -> int:
    transaction = exchange.body["transaction"]
    while True:
        note = link.next(deadline)
        if note.kind != "message":
            continue
        if note.topic == topics.status:
            remember(exchange, topics, note)
            if exchange.status == "offline":
                raise Failure("relaxd went offline before it answered")
            continue
        if note.topic != exchange.listen and note.topic not in exchange.also:
            continue
        try:
            message = json.loads(note.payload)
        except json.JSONDecodeError:
            continue
        if not isinstance(message, dict) or message.get("transaction") != transaction:
            continue
        if args.command in ("status", "schedule"):
            if message.get("status") != "ok":
                raise Failure(str(message.get("error")))
            if args.command == "schedule":
                _print_schedules(args, message.get("data"))
            else:
                _print_status(args, message.get("data"), tz)
            return EX_OK
        if message.get("event") == "command_rejected":
            print(f"{args.room}: rejected: {message.get('reason')}", file=sys.stderr)
            return EX_FAILURE
        if message.get("event") in _ANSWERS[args.command]:
            minutes = float(exchange.body.get("minutes") or DEFAULT_EXTEND_MINUTES)
            print(answer_line(args.command, message, tz, datetime.now(UTC), minutes=minutes))
            return EX_OK
