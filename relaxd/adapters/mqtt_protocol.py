"""MQTT 5 or 3.1.1: the paho client for a protocol version, subscription options, replies to a response topic."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from relaxd.adapters.mqtt_setup import set_credentials
from relaxd.core.config import MqttConfig
from relaxd.core.topics import Topics

log = logging.getLogger(__name__)

UNSUPPORTED_PROTOCOL_VERSION = 132  # CONNACK reason code; paho maps a 3.1.1 broker's "unacceptable version" to it

LIMITATION_3_1_1 = (
    "MQTT 3.1.1: a retained command or trigger published while relaxd is connected arrives like a fresh "
    "one and is acted upon; only the broker's replays of retained messages are ignored (MQTT 5 tells them apart)"
)


def new_client(
    config: MqttConfig, client_id: str, topics: Topics, *, v5: bool, reconnect_s: tuple[int, int]
) -> mqtt.Client:
    """A paho client for one protocol version, with the last will and credentials; callbacks and TLS are the caller's.

    MQTT 5 gets clean start on every connect and no session expiry (the default 0), which is what
    3.1.1's clean session means: no session outlives a connection in either."""
    if v5:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    else:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True, protocol=mqtt.MQTTv311
        )
    client.enable_logger(logging.getLogger("relaxd.adapters.mqtt.paho"))
    client.will_set(topics.status, "offline", qos=1, retain=True)
    client.reconnect_delay_set(*reconnect_s)
    set_credentials(client, config)
    return client


def describe(config: MqttConfig, client_id: str) -> str:
    """Where and how the bus connects, for the log."""
    version = config.protocol if config.protocol != "auto" else "5 (or 3.1.1 if the broker has no 5)"
    tls = " over TLS" if config.tls is not None else ""
    user = " with a user name" if config.username else ""
    return f"{config.host}:{config.port} as {client_id} with MQTT {version}{tls}{user}"


def connect_async(client: mqtt.Client, config: MqttConfig, *, v5: bool) -> None:
    keepalive_s = max(0, round(float(config.keepalive)))
    if v5:
        # paho's default (clean start on the first connect only) would resume a session on reconnects.
        client.connect_async(config.host, config.port, keepalive=keepalive_s, clean_start=True)
    else:
        client.connect_async(config.host, config.port, keepalive=keepalive_s)


def subscriptions(
    topic_filters: Sequence[str], *, v5: bool
) -> list[tuple[str, SubscribeOptions]] | list[tuple[str, int]]:
    """QoS 1; with MQTT 5 also retain-as-published, so that a live retained message says it is retained."""
    if not v5:
        return [(topic_filter, 1) for topic_filter in topic_filters]
    options = SubscribeOptions(qos=1, retainAsPublished=True)
    return [(topic_filter, options) for topic_filter in topic_filters]


def refused_version(reason: ReasonCode) -> bool:
    return reason.is_failure and reason.value == UNSUPPORTED_PROTOCOL_VERSION


def response_target(msg: mqtt.MQTTMessage) -> tuple[str, bytes | None] | None:
    """An MQTT 5 request's response topic and correlation data, or None when it names no response topic."""
    properties = getattr(msg, "properties", None)
    topic = getattr(properties, "ResponseTopic", None) if properties is not None else None
    if not isinstance(topic, str) or not topic:
        return None
    correlation = getattr(properties, "CorrelationData", None)
    return topic, bytes(correlation) if correlation is not None else None


def reply_properties(correlation: bytes | None) -> Properties:
    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    if correlation is not None:
        properties.CorrelationData = correlation
    return properties


Verdict = Literal["connected", "refused", "fall_back", "ignore"]


class ProtocolChoice:
    """Which MQTT version the bus speaks, and when `auto` gives up on 5 (for the rest of the process).

    Told about every CONNACK and every end of a connection attempt, on paho's network thread; logs
    what the user must know about the version, each thing once."""

    def __init__(self, config: MqttConfig) -> None:
        self.setting = config.protocol
        self.where = f"MQTT broker {config.host}:{config.port}"
        self.v5 = config.protocol != "3.1.1"
        self._answered = False  # a CONNACK came for the current attempt
        self._attempt = 0
        self._spoke_5 = False  # a v5 connection once succeeded: a later close is no refusal of 5
        self._falling_back = False
        self._refusal_logged = False
        self._limitation_logged = False

    def answered(self, reason: ReasonCode) -> Verdict:
        self._answered = True
        if not reason.is_failure:
            self._spoke_5 = self._spoke_5 or self.v5
            self._refusal_logged = False
            if not self.v5 and not self._limitation_logged:
                self._limitation_logged = True
                log.info(LIMITATION_3_1_1)
            return "connected"
        if self.v5 and refused_version(reason):
            return self._refused_5(f"refused MQTT 5 ({reason})")
        return "refused"

    def attempt(self) -> int:
        """A connection is open and the CONNECT goes out: the attempt's number, for overdue()."""
        self._attempt += 1
        self._answered = False
        return self._attempt

    def overdue(self, attempt: int, timeout_s: float) -> bool:
        """No CONNACK for attempt after timeout_s (a 3.1.1 broker may choke on a v5 CONNECT with a will
        and answer nothing); True: fall back now."""
        if attempt != self._attempt or self._answered or not self.v5 or self._spoke_5:
            return False
        return self._refused_5(f"did not answer an MQTT 5 CONNECT within {timeout_s:g}s") == "fall_back"

    def closed(self, was_connected: bool) -> bool:
        """The connection (attempt) ended; True: fall back now (a v5 CONNECT the broker closed unanswered)."""
        answered, self._answered = self._answered, False
        if answered or was_connected or not self.v5 or self._spoke_5:
            return False
        return self._refused_5("closed the connection on an MQTT 5 CONNECT") == "fall_back"

    def _refused_5(self, what: str) -> Verdict:
        if self.setting == "auto":
            if self._falling_back:
                return "ignore"
            self._falling_back = True
            return "fall_back"
        if self._refusal_logged:  # once per outage, not at every retry
            log.debug("%s %s again", self.where, what)
        else:
            self._refusal_logged = True
            log.error(
                "%s %s: mqtt.protocol is 5 but the broker has no MQTT 5 (auto or 3.1.1 would do); retrying",
                self.where,
                what,
            )
        return "ignore"

    def fell_back(self) -> None:
        self.v5 = False
        self._falling_back = False
        log.info("%s does not speak MQTT 5; using MQTT 3.1.1 from now on", self.where)


def hand_over(old: mqtt.Client, new: mqtt.Client) -> None:
    """The messages still waiting in old (published before any connection) wait in new instead."""
    for msg in old.drop_out_messages():
        new.publish(msg.topic, msg.payload, qos=msg.qos, retain=msg.retain)
