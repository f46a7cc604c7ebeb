"""A Hue bridge's HTTPS identity: its certificate's fingerprint and CN (the bridge id), and the TLS contexts."""

from __future__ import annotations

import hashlib
import hmac
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

from relaxd.adapters.hue.signify import SIGNIFY_CAS
from relaxd.core.ports import DeviceError

DEVICE = "lights"
_CN_OID = bytes.fromhex("550403")  # 2.5.4.3, commonName


class IdentityError(DeviceError):
    """The bridge's certificate is not the one of the bridge in the config (nothing was sent)."""

    def __init__(self, message: str) -> None:
        super().__init__(DEVICE, message)


def fingerprint_of(der: bytes) -> str:
    """SHA-256 of a DER certificate as `AB:CD:...`."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _tlv(data: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start of the value, end of the value) of the DER element at `at`."""
    tag, length = data[at], data[at + 1]
    at += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[at : at + count], "big")
        at += count
    if at + length > len(data):
        raise ValueError("truncated DER")
    return tag, at, at + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    items, at = [], start
    while at < end:
        item = _tlv(data, at)
        items.append(item)
        at = item[2]
    return items


def subject_cn(der: bytes) -> str | None:
    """The subject's commonName of a DER certificate (None if it has none or does not parse)."""
    try:
        _, start, end = _tlv(der, 0)  # Certificate
        _, start, end = _children(der, start, end)[0]  # tbsCertificate
        fields = _children(der, start, end)
        if fields and fields[0][0] == 0xA0:  # [0] version
            fields = fields[1:]
        _, start, end = fields[4]  # serial, signature, issuer, validity, subject
        for _, set_start, set_end in _children(der, start, end):
            for _, pair_start, pair_end in _children(der, set_start, set_end):
                (_, oid_start, oid_end), (_, value_start, value_end) = _children(der, pair_start, pair_end)[:2]
                if der[oid_start:oid_end] == _CN_OID:
                    return der[value_start:value_end].decode("utf-8", "replace")
    except (IndexError, ValueError):
        return None
    return None


@dataclass(frozen=True)
class Identity:
    """What a bridge's certificate must show before relaxd sends it anything.

    fingerprint: the leaf certificate's SHA-256 (pinned at pairing); else bridge_id: a certificate
    signed by one of ca_pem (Signify's CAs by default) whose CN is the bridge id. verify=False checks
    nothing (labs). learn=True (pairing only): the first certificate seen is pinned for the rest.
    """

    bridge_id: str | None = None
    fingerprint: str | None = None
    verify: bool = True
    ca_pem: str | None = None
    ca_file: Path | None = None
    learn: bool = False

    @property
    def known(self) -> bool:
        return self.fingerprint is not None or self.bridge_id is not None


@dataclass
class Seen:
    """The certificate a bridge presented (what pairing records)."""

    fingerprint: str
    common_name: str | None


@dataclass
class Verifier:
    """Checks each HTTPS connection of one bridge; shared by the worker threads."""

    identity: Identity
    host: str
    learned: Seen | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _contexts: dict[bool, ssl.SSLContext] = field(default_factory=dict)

    def context(self) -> ssl.SSLContext:
        """The TLS context: the CA check for a bridge known by its id only, else none (pinned or off)."""
        by_ca = self.identity.verify and self.identity.fingerprint is None and self.identity.bridge_id is not None
        with self._lock:
            context = self._contexts.get(by_ca)
            if context is None:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                # Bridges put their id in the CN and have no subjectAltName: no hostname can match.
                context.check_hostname = False
                if by_ca:
                    context.verify_mode = ssl.CERT_REQUIRED
                    if self.identity.ca_file is not None:
                        context.load_verify_locations(cafile=str(self.identity.ca_file))
                    else:
                        context.load_verify_locations(cadata=self.identity.ca_pem or SIGNIFY_CAS)
                else:
                    context.verify_mode = ssl.CERT_NONE  # the pin is checked in check() instead
                self._contexts[by_ca] = context
            return context

    def check(self, der: bytes | None) -> None:
        """After the handshake, before anything is sent: IdentityError unless this is the bridge."""
        identity = self.identity
        if not identity.verify:
            return
        if not der:
            raise IdentityError(f"the bridge at {self.host} presented no certificate")
        seen = Seen(fingerprint_of(der), subject_cn(der))
        if identity.fingerprint is not None and not hmac.compare_digest(seen.fingerprint, identity.fingerprint):
            raise IdentityError(
                f"the bridge at {self.host} presented a different certificate (SHA-256 {seen.fingerprint}, "
                f"paired: {identity.fingerprint}); nothing was sent to it. If the bridge was replaced or "
                "reset, pair again (`relaxd hue pair`); otherwise something else answers at its address"
            )
        if identity.bridge_id is not None:
            if (seen.common_name or "").upper() != identity.bridge_id.upper():
                raise IdentityError(
                    f"the certificate of the bridge at {self.host} is for {seen.common_name or 'no bridge id'}, "
                    f"not for bridge {identity.bridge_id}; nothing was sent to it"
                )
            return
        if identity.fingerprint is not None:
            return
        if identity.learn:
            with self._lock:
                if self.learned is None:
                    self.learned = seen
                elif not hmac.compare_digest(self.learned.fingerprint, seen.fingerprint):
                    raise IdentityError(f"the bridge at {self.host} changed its certificate while pairing")
            return
        raise IdentityError(
            f"the bridge at {self.host} speaks HTTPS, but the config does not say which bridge it is, so "
            "relaxd cannot check that it is yours; nothing was sent to it. It presents bridge id "
            f"{seen.common_name or '?'} and SHA-256 {seen.fingerprint}: if that is your bridge, put "
            f'`bridge_id: {seen.common_name or "?"}` and `fingerprint: "{seen.fingerprint}"` in its config '
            "(or pair again with `relaxd hue pair`, which prints them)"
        )


def ssl_error_means_no_tls(exc: BaseException) -> bool:
    """Whether a failed handshake says the other end does not speak TLS (not that it is someone else)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return False
    # A plain HTTP server closes on (or answers) a ClientHello: EOF, a reset, or an HTTP answer.
    if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError | ConnectionResetError | ConnectionAbortedError):
        return True
    text = str(exc).upper()
    markers = (
        "WRONG_VERSION_NUMBER",
        "RECORD_LAYER_FAILURE",
        "PACKET_LENGTH_TOO_LONG",
        "HTTP_REQUEST",
        "UNEXPECTED_EOF",
    )
    return isinstance(exc, ssl.SSLError) and any(marker in text for marker in markers)
