"""The MQTT event bus: paho-mqtt 2.x (MQTT 5 or 3.1.1) with reconnects, last will and republished retained state."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from relaxd.adapters.mqtt_outbox import Outbox, to_json, wait_acknowledged
from relaxd.adapters.mqtt_protocol import (
    ProtocolChoice,
    connect_async,
    describe,
    hand_over,
    new_client,
    reply_properties,
    response_target,
    subscriptions,
)
from relaxd.adapters.mqtt_setup import log_unreachable, set_tls, valid_filter
from relaxd.core.config import MqttConfig
from relaxd.core.topics import Topics

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes, bool], None]
# A message that names an MQTT 5 response topic, with the one way to answer it there.
RequestHandler = Callable[[str, bytes, bool, Callable[[bytes], None]], None]


class MqttBus:
    """relaxd's EventBus on a broker; every publish_* is non-blocking and never raises.

    While the broker is away, the latest retained state and phase of each room are kept here and
    republished on every (re)connect; events and other QoS 1 messages wait in paho's queue and are
    sent after the reconnect, or dropped with a warning once max_queued of them wait. (paho's own
    max_queued_messages cannot change on a live connection and would also cut the republish burst.)
    A room's phase is sent only when it changed (and on every reconnect), its state every time.
    With MQTT 5 (mqtt.protocol `5`, or `auto` until the broker refuses 5) subscriptions are
    retain-as-published, so on_message's retained flag is true for live retained messages too, and a
    message with a response topic goes to on_request, if given, with a function that answers there.
    """

    def __init__(
        self,
        config: MqttConfig,
        topics: Topics,
        on_message: MessageHandler,
        subscriptions: Sequence[str] = (),
        on_connect: Callable[[], None] | None = None,
        *,
        on_request: RequestHandler | None = None,
        max_queued: int = 1000,
        reconnect_min_s: int = 1,
        reconnect_max_s: int = 30,
        stop_timeout_s: float = 2.0,
        connack_timeout_s: float = 5.0,
    ) -> None:
        for topic_filter in subscriptions:
            if not valid_filter(topic_filter):
                raise ValueError(f"invalid MQTT subscription filter {topic_filter!r}")
        self.config = config
        self.topics = topics
        self.client_id = config.client_id or f"relaxd-{config.base_topic}"
        self.max_queued = max_queued
        self.stop_timeout_s = stop_timeout_s
        self.connack_timeout_s = connack_timeout_s
        self._handler = on_message
        self._on_request = on_request
        self._on_connect_cb = on_connect
        self._subscriptions: list[str] = list(dict.fromkeys(subscriptions))
        # Guards _outbox, _subscriptions, _client and _connected against the paho thread's on_connect,
        # so that nothing is published between the republish and the flag going up.
        self._lock = threading.RLock()
        self._connected = False
        self._connected_event = threading.Event()
        self._started = False
        self._stopping = False
        self._outage_logged = False
        self._outbox = Outbox(topics, max_queued)
        self._reconnect_s = (reconnect_min_s, reconnect_max_s)
        self._protocol = ProtocolChoice(config)
        self._client = self._new_client()

    def _new_client(self) -> mqtt.Client:
        client = new_client(
            self.config, self.client_id, self.topics, v5=self._protocol.v5, reconnect_s=self._reconnect_s
        )
        client.on_connect, client.on_disconnect = self._on_connect, self._on_disconnect
        client.on_connect_fail, client.on_message = self._on_connect_fail, self._on_message
        client.on_socket_open = self._on_socket_open
        return client

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def protocol(self) -> str:
        """The MQTT version spoken now (or tried next): `5` or `3.1.1`."""
        return "5" if self._protocol.v5 else "3.1.1"

    def wait_connected(self, timeout_s: float) -> bool:
        """Block until connected (for tools and tests; the daemon never waits for the broker)."""
        return self._connected_event.wait(timeout_s)

    def start(self) -> None:
        """Connect in the background and keep reconnecting; returns at once.

        Raises only for unusable TLS files (a configuration error), never because of the broker.
        """
        with self._lock:
            if self._started:
                return
            set_tls(self._client, self.config)
            log.info("MQTT connecting to %s", describe(self.config, self.client_id))
            connect_async(self._client, self.config, v5=self._protocol.v5)
            self._client.loop_start()
            self._started = True

    def stop(self) -> None:
        """Publish `offline` (waiting briefly for the broker's ack), disconnect, stop the loop."""
        with self._lock:
            if not self._started or self._stopping:
                return
            self._stopping = True
            info = self._send(self.topics.status, b"offline", retain=True) if self._connected else None
        if info is not None:
            wait_acknowledged(info, "offline", self.stop_timeout_s)
        # paho 2.2's loop thread may log "Client is not connected" once when the broker closes the
        # socket before the thread notices our DISCONNECT; after a deliberate stop that is noise.
        self._client.disable_logger()
        self._client.disconnect()
        self._client.loop_stop()
        self._connected = False
        self._connected_event.clear()
        log.info("MQTT stopped")

    def publish_state(self, room: str, state: dict[str, Any], phase: str) -> None:
        body = to_json(state, "state", room)
        if body is None:
            return
        with self._lock:
            now = self._outbox.keep_state(room, body, phase.encode())
            if not self._connected:
                # Not queued in paho: the reconnect republishes the latest, stale states would only
                # take queue room from events.
                log.debug("MQTT broker away; state of room %s will be republished on reconnect", room)
                return
            for topic, payload in now:
                self._send(topic, payload, retain=True)

    def publish_event(self, room: str, event: dict[str, Any]) -> None:
        body = to_json(event, "event", room)
        if body is None:
            return
        with self._lock:
            self._send(self.topics.event(room), body, retain=False)

    def publish(self, topic: str, payload: str | bytes, retain: bool = False, qos: int = 1) -> None:
        """Any other message (responses, discovery); queued while the broker is away like events."""
        body = payload.encode() if isinstance(payload, str) else payload
        with self._lock:
            self._send(topic, body, retain=retain, qos=qos)

    def subscribe(self, topic_filter: str) -> None:
        """Add a subscription (QoS 1), now if connected and again on every reconnect."""
        if not valid_filter(topic_filter):
            raise ValueError(f"invalid MQTT subscription filter {topic_filter!r}")
        with self._lock:
            if topic_filter in self._subscriptions:
                return
            self._subscriptions.append(topic_filter)
            if self._connected:
                self._client.subscribe(subscriptions([topic_filter], v5=self._protocol.v5))

    def unsubscribe(self, topic_filter: str) -> None:
        with self._lock:
            if topic_filter not in self._subscriptions:
                return
            self._subscriptions.remove(topic_filter)
            if self._connected:
                self._client.unsubscribe(topic_filter)

    def _reply(self, topic: str, correlation: bytes | None, body: bytes) -> None:
        """The answer to an MQTT 5 request, on its response topic with its correlation data."""
        with self._lock:
            self._send(topic, body, retain=False, properties=reply_properties(correlation))

    def _send(
        self, topic: str, payload: bytes, *, retain: bool, qos: int = 1, properties: Properties | None = None
    ) -> mqtt.MQTTMessageInfo | None:
        properties = properties if self._protocol.v5 else None
        return self._outbox.send(
            self._client, topic, payload, connected=self._connected, retain=retain, qos=qos, properties=properties
        )

    # paho callbacks, on paho's network thread. An exception escaping them would end that thread.
    # A client left behind by the fallback to 3.1.1 may still call one: it is not listened to.

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags, reason: ReasonCode, properties: Any
    ) -> None:
        if self._stopping or client is not self._client:
            return
        verdict = self._protocol.answered(reason)
        if verdict == "refused":
            log.warning("MQTT broker %s:%d refused the connection: %s", self.config.host, self.config.port, reason)
        elif verdict == "fall_back":
            self._start_fallback()
        if verdict != "connected":
            return
        self._outage_logged = False
        with self._lock:
            try:
                self._outbox.republish(client, self._subscriptions, v5=self._protocol.v5)
            except Exception:
                log.exception("MQTT republish after connect failed")
            finally:
                self._connected = True
                self._connected_event.set()
        log.info("MQTT connected to %s:%d with MQTT %s", self.config.host, self.config.port, self.protocol)
        if self._on_connect_cb is not None:
            try:
                self._on_connect_cb()
            except Exception:
                log.exception("MQTT on_connect handler failed")

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if client is not self._client or not self._protocol.v5:
            return
        timer = threading.Timer(self.connack_timeout_s, self._connack_overdue, (client, self._protocol.attempt()))
        timer.daemon = True
        timer.start()

    def _connack_overdue(self, client: mqtt.Client, attempt: int) -> None:
        if not self._stopping and client is self._client and self._protocol.overdue(attempt, self.connack_timeout_s):
            self._fall_back()  # on the timer's thread: not paho's

    def _start_fallback(self) -> None:
        # Not on this thread: it is the old client's, and the swap must wait for it to end.
        threading.Thread(target=self._fall_back, name="relaxd-mqtt-fallback", daemon=True).start()

    def _fall_back(self) -> None:
        """protocol auto and a broker without MQTT 5: a 3.1.1 client from now on (reconnects too)."""
        old = self._client
        old.disconnect()  # ends its reconnect loop at once
        old.loop_stop()
        with self._lock:
            if self._stopping:
                return
            self._protocol.fell_back()
            client = self._new_client()
            try:
                set_tls(client, self.config)
            except (OSError, ValueError):
                log.exception("MQTT TLS setup for MQTT 3.1.1 failed; relaxd stays offline")
                return
            hand_over(old, client)
            self._client = client
            connect_async(client, self.config, v5=False)
            client.loop_start()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: mqtt.DisconnectFlags, reason: ReasonCode, properties: Any
    ) -> None:
        if client is not self._client:
            return
        # No lock here: a publisher holding it may be waiting for a paho mutex this thread holds.
        was_connected = self._connected
        self._connected = False
        self._connected_event.clear()
        fall_back = self._protocol.closed(was_connected)
        if self._stopping:
            log.info("MQTT disconnected")
        elif was_connected:
            log.warning("MQTT connection to %s:%d lost (%s); reconnecting", self.config.host, self.config.port, reason)
        elif fall_back:
            self._start_fallback()
        else:
            log.debug("MQTT connect attempt ended: %s", reason)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        if client is not self._client:
            return
        log_unreachable(self.config, first=not self._outage_logged)
        self._outage_logged = True

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        topic = "?"
        try:
            topic = msg.topic
            target = response_target(msg) if self._on_request is not None and self._protocol.v5 else None
            if target is None or self._on_request is None:
                self._handler(topic, bytes(msg.payload), bool(msg.retain))
            else:
                self._on_request(topic, bytes(msg.payload), bool(msg.retain), partial(self._reply, *target))
        except Exception:
            log.exception("MQTT message on %s could not be handled", topic)
