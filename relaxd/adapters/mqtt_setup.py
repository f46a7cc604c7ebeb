"""Setting up an MQTT connection from the config: filters, credentials, TLS, and why a broker is unreachable."""

from __future__ import annotations

import logging
import socket
import ssl

import paho.mqtt.client as mqtt

from relaxd.core.config import MqttConfig
from relaxd.core.topics import filter_problem

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 3.0  # the diagnostic connection made once per outage (see unreachable_reason)


def valid_filter(topic_filter: str) -> bool:
    """An MQTT subscription filter (the rules are the core's: the config checks them too)."""
    return filter_problem(topic_filter) is None


def set_credentials(client: mqtt.Client, config: MqttConfig) -> None:
    """User name and password from the config (the secret is unwrapped only here)."""
    if config.username is not None:
        password = config.password.get_secret_value() if config.password is not None else None
        client.username_pw_set(config.username, password)


def set_tls(client: mqtt.Client, config: MqttConfig) -> None:
    """TLS from the config, if any; raises for unusable certificate files."""
    tls = config.tls
    if tls is not None:
        client.tls_set(
            ca_certs=str(tls.ca_certs) if tls.ca_certs else None,
            certfile=str(tls.certfile) if tls.certfile else None,
            keyfile=str(tls.keyfile) if tls.keyfile else None,
        )
        client.tls_insecure_set(tls.insecure)


def unreachable_reason(config: MqttConfig) -> str:
    """A second, plain attempt to find why connecting fails: refused, timed out, or TLS (paho does not say)."""
    try:
        sock = socket.create_connection((config.host, config.port), timeout=PROBE_TIMEOUT_S)
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__
    with sock:
        tls = config.tls
        if tls is None:
            return ""
        try:
            context = ssl.create_default_context(cafile=str(tls.ca_certs) if tls.ca_certs else None)
            if tls.certfile is not None:
                context.load_cert_chain(str(tls.certfile), str(tls.keyfile) if tls.keyfile else None)
            context.check_hostname = not tls.insecure
            with context.wrap_socket(sock, server_hostname=config.host):
                return ""
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            return f"TLS: {exc}"


def log_unreachable(config: MqttConfig, *, first: bool) -> None:
    """A connection attempt failed: a warning with the reason at the first of an outage, then quietly."""
    if not first:
        log.debug("MQTT broker %s:%d still unreachable", config.host, config.port)
        return
    # paho does not say why; without a reason a wrong CA looks exactly like a broker that is down.
    reason = unreachable_reason(config)
    log.warning(
        "MQTT broker %s:%d unreachable%s; retrying with backoff",
        config.host,
        config.port,
        f" ({reason})" if reason else "",
    )
