"""The simulated bridges' certificates, as Signify makes them: a CA of its own, leaves with CN = bridge id, no SAN."""

from __future__ import annotations

import hashlib
import shutil
import ssl
import subprocess
import tempfile
import threading
from pathlib import Path

# As on a real bridge's leaf: a server certificate, and no subjectAltName (the CN is the bridge id).
_LEAF_EXTENSIONS = (
    "basicConstraints=critical,CA:FALSE\n"
    "keyUsage=critical,digitalSignature\n"
    "extendedKeyUsage=serverAuth\n"
    "subjectKeyIdentifier=hash\n"
    "authorityKeyIdentifier=keyid\n"
)
_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


class SimCertificates:
    """A CA made on first use (with the openssl binary: the project does not depend on `cryptography`)
    in a temporary directory, and a leaf certificate per bridge id, renewable. Thread-safe; no I/O
    before the first use; close() removes the files."""

    def __init__(self, subject: str = "/C=NL/O=relaxd sim/CN=relaxd sim root-bridge") -> None:
        self._subject = subject
        self._lock = threading.Lock()
        self._dir: Path | None = None
        self._renewals: dict[str, int] = {}

    def _directory(self) -> Path:
        if self._dir is None:
            if shutil.which("openssl") is None:
                raise RuntimeError("the simulated bridge's HTTPS needs the openssl program")
            directory = Path(tempfile.mkdtemp(prefix="relaxd-sim-ca-"))
            _openssl(
                "req", "-x509", *_EC, "-keyout", str(directory / "ca.key"), "-out", str(directory / "ca.pem"),
                "-days", "3650", "-subj", self._subject,
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            )  # fmt: skip
            (directory / "leaf.ext").write_text(_LEAF_EXTENSIONS)
            self._dir = directory
        return self._dir

    @property
    def ca_pem(self) -> str:
        """The CA certificate (what a client trusting this "Signify" must load)."""
        with self._lock:
            return (self._directory() / "ca.pem").read_text()

    @property
    def ca_file(self) -> Path:
        with self._lock:
            return self._directory() / "ca.pem"

    def leaf(self, bridge_id: str, renew: bool = False) -> tuple[Path, Path]:
        """(certificate, key) for bridge_id (made now if there is none, or a new key if renew)."""
        with self._lock:
            directory = self._directory()
            count = self._renewals.get(bridge_id)
            if count is None or renew:
                count = 0 if count is None else count + 1
                self._renewals[bridge_id] = count
                stem = directory / f"{bridge_id}-{count}"
                _openssl(
                    "req", "-new", *_EC, "-keyout", f"{stem}.key", "-out", f"{stem}.csr",
                    "-subj", f"/C=NL/O=Philips Hue/CN={bridge_id}",
                )  # fmt: skip
                _openssl(
                    "x509", "-req", "-in", f"{stem}.csr", "-CA", str(directory / "ca.pem"),
                    "-CAkey", str(directory / "ca.key"), "-set_serial", f"0x{bridge_id}{count:02x}",
                    "-days", "3650", "-extfile", str(directory / "leaf.ext"), "-out", f"{stem}.pem",
                )  # fmt: skip
            stem = directory / f"{bridge_id}-{count}"
            return Path(f"{stem}.pem"), Path(f"{stem}.key")

    def server_context(self, bridge_id: str, renew: bool = False) -> ssl.SSLContext:
        """A server context presenting bridge_id's leaf alone (no chain), as a bridge does."""
        cert, key = self.leaf(bridge_id, renew)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        return context

    def fingerprint(self, bridge_id: str) -> str:
        """SHA-256 of bridge_id's current leaf, `AB:CD:...` (what pairing prints)."""
        cert, _ = self.leaf(bridge_id)
        digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert.read_text())).hexdigest().upper()
        return ":".join(digest[i : i + 2] for i in range(0, 64, 2))

    def close(self) -> None:
        with self._lock:
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None
                self._renewals.clear()


class HueHttps:
    """The simulated bridge's HTTPS knobs (mixed into HueBridgeSim, which sets these attributes)."""

    bridge_id: str
    certificates: SimCertificates
    _context: ssl.SSLContext | None
    _lock: threading.RLock

    def _tls_context(self) -> ssl.SSLContext:
        with self._lock:
            if self._context is None:
                self._context = self.certificates.server_context(self.bridge_id)
            return self._context

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the certificate the bridge presents now, `AB:CD:...`."""
        self._tls_context()
        return self.certificates.fingerprint(self.bridge_id)

    def renew_certificate(self) -> str:
        """A new key and certificate (same CN, same CA), as after a reset; returns the new fingerprint."""
        with self._lock:
            self._context = self.certificates.server_context(self.bridge_id, renew=True)
        return self.fingerprint


def _openssl(*args: str) -> None:
    try:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"openssl {args[0]} failed: {exc.stderr.decode(errors='replace').strip()}") from None
