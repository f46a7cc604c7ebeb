"""`relaxd start|stop|status|schedule`: talk to a running daemon over MQTT and print what it answered."""

from __future__ import annotations

import argparse
import json
import queue
import ssl
import sys
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from relaxd.adapters.mqtt_setup import set_credentials, set_tls
from relaxd.core.config import Settings
from relaxd.core.schedules import describe
from relaxd.core.topics import Topics

EX_OK, EX_FAILURE = 0, 1
_ANSWERS = {"start": {"session_started"}, "stop": {"session_stopped"}}


def _client(settings: Settings) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"relaxd-cli-{uuid.uuid4().hex[:8]}")
    set_credentials(client, settings.mqtt)
    set_tls(client, settings.mqtt)
    return client


def run_remote(settings: Settings, args: argparse.Namespace) -> int:
    """Send one command or request and wait for the daemon's answer (exit 1 on error or timeout)."""
    topics = Topics(settings.mqtt.base_topic, settings.mqtt.discovery_prefix)
    transaction = uuid.uuid4().hex[:12]
    inbox: queue.Queue[tuple[str, bytes]] = queue.Queue()
    if args.command == "status":
        listen, target = topics.response("status"), topics.request("status")
        body: dict[str, Any] = {"transaction": transaction}
        if args.room:
            body["room"] = args.room
    elif args.command == "schedule":
        verb = f"schedule/{args.schedule_command}"
        listen, target = topics.response(verb), topics.request(verb)
        body = {"transaction": transaction, **_schedule_body(args)}
    else:
        listen, target = topics.event(args.room), topics.set(args.room)
        body = {"action": args.command, "transaction": transaction}
        if getattr(args, "routine", None):
            body["routine"] = args.routine
    client = _client(settings)
    subscribed = queue.Queue[bool]()
    client.on_message = lambda c, u, msg: inbox.put((msg.topic, bytes(msg.payload)))
    client.on_subscribe = lambda c, u, mid, codes, props: subscribed.put(True)
    client.on_connect = lambda c, u, flags, rc, props: c.subscribe(listen, qos=1)
    try:
        client.connect(settings.mqtt.host, settings.mqtt.port, keepalive=30)
    except (OSError, ssl.SSLError) as exc:
        print(
            f"relaxd: cannot reach the MQTT broker at {settings.mqtt.host}:{settings.mqtt.port}: {exc}", file=sys.stderr
        )
        return EX_FAILURE
    client.loop_start()
    try:
        subscribed.get(timeout=args.timeout)
        client.publish(target, json.dumps(body), qos=1)
        return _wait_answer(inbox, args, transaction)
    except queue.Empty:
        print(
            f"relaxd: no answer from the daemon within {args.timeout:g} s (is `relaxd run` running?)", file=sys.stderr
        )
        return EX_FAILURE
    finally:
        client.disconnect()
        client.loop_stop()


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


def _wait_answer(inbox: queue.Queue[tuple[str, bytes]], args: argparse.Namespace, transaction: str) -> int:
    while True:
        _topic, payload = inbox.get(timeout=args.timeout)
        try:
            message = json.loads(payload)
        except json.JSONDecodeError:
            continue
        if not isinstance(message, dict) or message.get("transaction") != transaction:
            continue
        if args.command in ("status", "schedule"):
            if message.get("status") != "ok":
                print(f"relaxd: {message.get('error')}", file=sys.stderr)
                return EX_FAILURE
            if args.command == "schedule":
                _print_schedules(args, message.get("data"))
            else:
                print(json.dumps(message.get("data"), indent=2))
            return EX_OK
        if message.get("event") == "command_rejected":
            print(f"relaxd: {args.room}: rejected: {message.get('reason')}", file=sys.stderr)
            return EX_FAILURE
        if message.get("event") in _ANSWERS[args.command]:
            routine = f" ({message['routine']})" if message.get("routine") else ""
            print(f"{args.room}: {message['event']}{routine}")
            return EX_OK
