"""The MQTT event bus: paho-mqtt 2.x with reconnects, last will and republished retained state."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from relaxd.adapters.mqtt_setup import set_credentials, set_tls, unreachable_reason, valid_filter
from relaxd.core.config import MqttConfig
from relaxd.core.topics import Topics

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes, bool], None]


class MqttBus:
    """relaxd's EventBus on a broker; every publish_* is non-blocking and never raises.

    While the broker is away, the latest retained state and phase of each room are kept here and
    republished on every (re)connect; events and other QoS 1 messages wait in paho's queue and are
    sent after the reconnect, or dropped with a warning once max_queued of them wait. (paho's own
    max_queued_messages cannot change on a live connection and would also cut the republish burst.)
    """

    def __init__(
        self,
        config: MqttConfig,
        topics: Topics,
        on_message: MessageHandler,
        subscriptions: Sequence[str] = (),
        on_connect: Callable[[], None] | None = None,
        *,
        max_queued: int = 1000,
        reconnect_min_s: int = 1,
        reconnect_max_s: int = 30,
        stop_timeout_s: float = 2.0,
    ) -> None:
        for topic_filter in subscriptions:
            if not valid_filter(topic_filter):
                raise ValueError(f"invalid MQTT subscription filter {topic_filter!r}")
        self.config = config
        self.topics = topics
        self.client_id = config.client_id or f"relaxd-{config.base_topic}"
        self.max_queued = max_queued
        self.stop_timeout_s = stop_timeout_s
        self._handler = on_message
        self._on_connect_cb = on_connect
        self._subscriptions: list[str] = list(dict.fromkeys(subscriptions))
        # Guards _retained, _subscriptions and _connected against the paho thread's on_connect,
        # so that nothing is published between the republish and the flag going up.
        self._lock = threading.RLock()
        self._retained: dict[str, bytes] = {}
        self._connected = False
        self._connected_event = threading.Event()
        self._started = False
        self._stopping = False
        self._outage_logged = False
        self._queued_offline = 0

        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        self._client.enable_logger(logging.getLogger(f"{__name__}.paho"))
        self._client.will_set(topics.status, "offline", qos=1, retain=True)
        set_credentials(self._client, config)
        self._client.reconnect_delay_set(reconnect_min_s, reconnect_max_s)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_message = self._on_message

    @property
    def connected(self) -> bool:
        return self._connected

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
            tls = self.config.tls
            set_tls(self._client, self.config)
            log.info(
                "MQTT connecting to %s:%d as %s%s%s",
                self.config.host,
                self.config.port,
                self.client_id,
                " over TLS" if tls is not None else "",
                " with a user name" if self.config.username else "",
            )
            self._client.connect_async(self.config.host, self.config.port, keepalive=self._keepalive())
            self._client.loop_start()
            self._started = True

    def _keepalive(self) -> int:
        return max(0, round(float(self.config.keepalive)))

    def stop(self) -> None:
        """Publish `offline` (waiting briefly for the broker's ack), disconnect, stop the loop."""
        with self._lock:
            if not self._started or self._stopping:
                return
            self._stopping = True
            info = self._send(self.topics.status, b"offline", retain=True) if self._connected else None
        if info is not None:
            try:
                info.wait_for_publish(self.stop_timeout_s)
            except (ValueError, RuntimeError) as exc:
                log.warning("MQTT could not publish offline on shutdown: %s", exc)
            if not info.is_published():
                log.warning("MQTT broker did not acknowledge offline within %.1fs", self.stop_timeout_s)
        # paho 2.2's loop thread may log "Client is not connected" once when the broker closes the
        # socket before the thread notices our DISCONNECT; after a deliberate stop that is noise.
        self._client.disable_logger()
        self._client.disconnect()
        self._client.loop_stop()
        self._connected = False
        self._connected_event.clear()
        log.info("MQTT stopped")

    def publish_state(self, room: str, state: dict[str, Any], phase: str) -> None:
        try:
            body = json.dumps(state, separators=(",", ":")).encode()
        except (TypeError, ValueError):
            log.exception("MQTT state of room %s is not JSON-able; not published", room)
            return
        pairs = ((self.topics.state(room), body), (self.topics.phase(room), phase.encode()))
        with self._lock:
            for topic, payload in pairs:
                self._retained[topic] = payload
            if not self._connected:
                # Not queued in paho: the reconnect republishes the latest, stale states would only
                # take queue room from events.
                log.debug("MQTT broker away; state of room %s will be republished on reconnect", room)
                return
            for topic, payload in pairs:
                self._send(topic, payload, retain=True)

    def publish_event(self, room: str, event: dict[str, Any]) -> None:
        try:
            body = json.dumps(event, separators=(",", ":")).encode()
        except (TypeError, ValueError):
            log.exception("MQTT event for room %s is not JSON-able; not published", room)
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
                self._client.subscribe(topic_filter, qos=1)

    def unsubscribe(self, topic_filter: str) -> None:
        with self._lock:
            if topic_filter not in self._subscriptions:
                return
            self._subscriptions.remove(topic_filter)
            if self._connected:
                self._client.unsubscribe(topic_filter)

    def _send(self, topic: str, payload: bytes, *, retain: bool, qos: int = 1) -> mqtt.MQTTMessageInfo | None:
        offline = not self._connected
        if offline and qos > 0:
            if self._queued_offline >= self.max_queued:
                log.warning(
                    "MQTT queue full (%d messages wait for the broker); dropped a message on %s", self.max_queued, topic
                )
                return None
            self._queued_offline += 1
        try:
            info = self._client.publish(topic, payload, qos=qos, retain=retain)
        except Exception:
            log.exception("MQTT publish on %s failed", topic)
            return None
        if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and qos == 0:
            log.warning("MQTT broker away; dropped a QoS 0 message on %s", topic)
            return None
        if offline:
            log.debug("MQTT broker away; message on %s queued until reconnect", topic)
        return info

    # paho callbacks, on paho's network thread. An exception escaping them would end that thread.

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags, reason: ReasonCode, properties: Any
    ) -> None:
        if self._stopping:
            return
        if reason.is_failure:
            log.warning("MQTT broker %s:%d refused the connection: %s", self.config.host, self.config.port, reason)
            return
        self._outage_logged = False
        with self._lock:
            try:
                self._republish(client)
            except Exception:
                log.exception("MQTT republish after connect failed")
            finally:
                self._connected = True
                self._connected_event.set()
        log.info("MQTT connected to %s:%d", self.config.host, self.config.port)
        if self._on_connect_cb is not None:
            try:
                self._on_connect_cb()
            except Exception:
                log.exception("MQTT on_connect handler failed")

    def _republish(self, client: mqtt.Client) -> None:
        # paho would resend its unacknowledged messages only after this callback, i.e. after the
        # fresh state below, so a stale state could win; take them over to control the order.
        pending = client.drop_out_messages()
        self._queued_offline = 0
        # Subscribe before announcing `online`: the broker handles one connection's packets in order,
        # so whoever sees `online` can press a button or send a command and be heard. The rooms'
        # states go before `online` too, so that nobody sees a dead session as live (after a crash).
        if self._subscriptions:
            client.subscribe([(t, 1) for t in self._subscriptions])
        resent = 0
        for msg in pending:
            if msg.retain and msg.topic in self._retained:
                continue  # superseded by the latest state, republished below
            client.publish(msg.topic, msg.payload, qos=msg.qos, retain=msg.retain)
            resent += 1
        if resent:
            log.info("MQTT sending %d messages queued while the broker was away", resent)
        for topic, payload in self._retained.items():
            client.publish(topic, payload, qos=1, retain=True)
        client.publish(self.topics.status, b"online", qos=1, retain=True)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: mqtt.DisconnectFlags, reason: ReasonCode, properties: Any
    ) -> None:
        # No lock here: a publisher holding it may be waiting for a paho mutex this thread holds.
        was_connected = self._connected
        self._connected = False
        self._connected_event.clear()
        if self._stopping:
            log.info("MQTT disconnected")
        elif was_connected:
            log.warning("MQTT connection to %s:%d lost (%s); reconnecting", self.config.host, self.config.port, reason)
        else:
            log.debug("MQTT connect attempt ended: %s", reason)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        if self._outage_logged:
            log.debug("MQTT broker %s:%d still unreachable", self.config.host, self.config.port)
            return
        self._outage_logged = True
        # paho does not say why; without a reason a wrong CA looks exactly like a broker that is down.
        reason = unreachable_reason(self.config)
        log.warning(
            "MQTT broker %s:%d unreachable%s; retrying with backoff",
            self.config.host,
            self.config.port,
            f" ({reason})" if reason else "",
        )

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        topic = "?"
        try:
            topic = msg.topic
            self._handler(topic, bytes(msg.payload), bool(msg.retain))
        except Exception:
            log.exception("MQTT message on %s could not be handled", topic)
