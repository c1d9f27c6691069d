"""TLS of the API↔satellite channel: a satellite's own certificate, and pinned clients.

A satellite makes its key and a self-signed certificate at first start; the API records the
certificate at enrolment and from then on trusts exactly that certificate for that host
(`PinnedAdapter`): the certificate is the only trust anchor of the connection and its
SHA-256 fingerprint is asserted as well, so no CA is involved and nothing else verifies.
A satellite verifies the API by a fingerprint given in its join command, by a CA file, or by
the system's CAs (an API behind a publicly trusted TLS proxy).
"""
import datetime
import ipaddress
import logging
import os
import re
import ssl
from urllib.parse import urlsplit

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

log = logging.getLogger("boatload.tls")
CERT_DAYS = 3650


class CertificateError(ValueError):
    """Not a PEM X.509 certificate."""


def is_loopback(host):
    """True for 127.0.0.0/8, ::1 and localhost: the only places plain HTTP may go."""
    host = (host or "").strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_is_loopback(url):
    return is_loopback(urlsplit(url).hostname)


def load_certificate(pem):
    try:
        return x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem)
    except (ValueError, TypeError):
        raise CertificateError("not a PEM X.509 certificate") from None


def fingerprint(pem):
    """SHA-256 of the certificate's DER form, lower-case hex without colons."""
    return load_certificate(pem).fingerprint(hashes.SHA256()).hex()


def normal_fingerprint(value):
    """A SHA-256 fingerprint as `openssl x509 -fingerprint -sha256` or as hex: 64 lower-case hex digits."""
    digits = re.sub(r"^sha256[:=]|[:\s]", "", (value or "").strip(), flags=re.I).lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digits):
        raise ValueError("a SHA-256 fingerprint has 64 hex digits")
    return digits


def ensure_self_signed(cert_path, key_path, names):
    """Make an EC P-256 key and a self-signed certificate for `names` unless both exist; return the PEM."""
    if cert_path.exists() and key_path.exists():
        return cert_path.read_text()
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, (names[0] if names else "boatload-satellite")[:64])])
    alt = []
    for name in dict.fromkeys(n for n in names if n):
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name.strip("[]"))))
        except ValueError:
            alt.append(x509.DNSName(name))
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if alt:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    cert = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key_pem)
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    cert_path.write_text(cert_pem)
    return cert_pem


class PinnedAdapter(requests.adapters.HTTPAdapter):
    """Trusts exactly one certificate: the pinned PEM is the only trust anchor and its
    fingerprint is asserted; or, given only a fingerprint, the peer's certificate must have it.

    The hostname is not checked (the pin is stronger than a name: nothing else verifies),
    and requests' default CA bundle is never loaded.
    """

    def __init__(self, *, certificate=None, fingerprint_hex=None, **kwargs):
        self.pin_pem = certificate
        self.pin_fingerprint = fingerprint(certificate) if certificate else normal_fingerprint(fingerprint_hex)
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        kwargs["assert_fingerprint"] = self.pin_fingerprint
        if self.pin_pem:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cadata=self.pin_pem)
            kwargs["ssl_context"] = context
        super().init_poolmanager(*args, **kwargs)

    def cert_verify(self, conn, url, verify, cert):
        # No CA bundle: the pin alone decides. With only a fingerprint, the handshake can not
        # verify a chain, and urllib3 compares the fingerprint before any byte is sent.
        conn.cert_reqs = "CERT_REQUIRED" if self.pin_pem else "CERT_NONE"
        conn.ca_certs = conn.ca_cert_dir = None

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        pool_kwargs["cert_reqs"] = "CERT_REQUIRED" if self.pin_pem else "CERT_NONE"
        pool_kwargs.pop("ca_certs", None)
        pool_kwargs.pop("ca_cert_dir", None)
        return host_params, pool_kwargs
