"""What the MQTT bus sends: the latest retained message per topic, the offline queue's bound, the republish."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.properties import Properties

from relaxd.adapters.mqtt_protocol import subscriptions
from relaxd.core.topics import Topics

log = logging.getLogger(__name__)


def to_json(value: dict[str, Any], what: str, room: str) -> bytes | None:
    try:
        return json.dumps(value, separators=(",", ":")).encode()
    except (TypeError, ValueError):
        log.exception("MQTT %s of room %s is not JSON-able; not published", what, room)
        return None


def wait_acknowledged(info: mqtt.MQTTMessageInfo, what: str, timeout_s: float) -> None:
    """Wait up to timeout_s for the broker's ack of one message (on shutdown); warn if none came."""
    try:
        info.wait_for_publish(timeout_s)
    except (ValueError, RuntimeError) as exc:
        log.warning("MQTT could not publish %s on shutdown: %s", what, exc)
    if not info.is_published():
        log.warning("MQTT broker did not acknowledge %s within %.1fs", what, timeout_s)


class Outbox:
    """Kept by the bus and used only under its lock, with whichever paho client is current."""

    def __init__(self, topics: Topics, max_queued: int) -> None:
        self.topics = topics
        self.max_queued = max_queued
        # The latest state and phase of each room: what the broker holds once connected, since every
        # (re)connect republishes all of it.
        self.retained: dict[str, bytes] = {}
        self.queued_offline = 0

    def keep_state(self, room: str, state: bytes, phase: bytes) -> list[tuple[str, bytes]]:
        """Remember a room's state and phase; what to send now: the state, and the phase if it changed."""
        state_topic, phase_topic = self.topics.state(room), self.topics.phase(room)
        phase_changed = self.retained.get(phase_topic) != phase
        self.retained[state_topic] = state
        self.retained[phase_topic] = phase
        return [(state_topic, state), (phase_topic, phase)] if phase_changed else [(state_topic, state)]

    def send(
        self,
        client: mqtt.Client,
        topic: str,
        payload: bytes,
        *,
        connected: bool,
        retain: bool,
        qos: int = 1,
        properties: Properties | None = None,
    ) -> mqtt.MQTTMessageInfo | None:
        """Publish now, or queue in paho while the broker is away (QoS 1, up to max_queued); never raises.
        A QoS 0 message (a breath edge) is worth only its moment: while the broker is away it is dropped."""
        offline = not connected
        if offline and qos == 0:
            log.debug("MQTT broker away; dropped a QoS 0 message on %s", topic)
            return None
        if offline and qos > 0:
            if self.queued_offline >= self.max_queued:
                log.warning(
                    "MQTT queue full (%d messages wait for the broker); dropped a message on %s", self.max_queued, topic
                )
                return None
            self.queued_offline += 1
        try:
            if properties is not None:
                info = client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
            else:
                info = client.publish(topic, payload, qos=qos, retain=retain)
        except Exception:
            log.exception("MQTT publish on %s failed", topic)
            return None
        if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and qos == 0:
            log.debug("MQTT broker just went away; dropped a QoS 0 message on %s", topic)
            return None
        if offline:
            log.debug("MQTT broker away; message on %s queued until reconnect", topic)
        return info

    def republish(self, client: mqtt.Client, topic_filters: Sequence[str], *, v5: bool) -> None:
        """On connect: subscriptions, what waited for the broker, every room's state, then `online`."""
        # paho would resend its unacknowledged messages only after this callback, i.e. after the
        # fresh state below, so a stale state could win; take them over to control the order.
        pending = client.drop_out_messages()
        self.queued_offline = 0
        # Subscribe before announcing `online`: the broker handles one connection's packets in order,
        # so whoever sees `online` can press a button or send a command and be heard. The rooms'
        # states go before `online` too, so that nobody sees a dead session as live (after a crash).
        if topic_filters:
            client.subscribe(subscriptions(topic_filters, v5=v5))
        resent = 0
        for msg in pending:
            if msg.retain and msg.topic in self.retained:
                continue  # superseded by the latest state, republished below
            properties = getattr(msg, "properties", None) if v5 else None  # a reply keeps its correlation data
            client.publish(msg.topic, msg.payload, qos=msg.qos, retain=msg.retain, properties=properties)
            resent += 1
        if resent:
            log.info("MQTT sending %d messages queued while the broker was away", resent)
        for topic, payload in self.retained.items():
            client.publish(topic, payload, qos=1, retain=True)
        client.publish(self.topics.status, b"online", qos=1, retain=True)
